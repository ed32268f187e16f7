"""The project's one exception tree.

::

    PillarPayoutError
     ├── ConfigError              bad flag, URL, data dir or port: a one-line message
 │                            (also a ValueError: a setting's value is wrong)
     ├── EmbeddedServerError      an embedded PostgreSQL/Redis could not start or stop
     ├── StorageError             asyncpg/redis errors, translated at the storage boundary
     │    ├── DatabaseUnavailable   PostgreSQL cannot be reached right now
     │    ├── RedisUnavailable      Redis cannot be reached right now
     │    ├── UnknownUser           a user named by an operator does not exist
     │    └── InsufficientBalance   an operator's debit would take a balance below zero
     ├── EngineError              engine/errors.py: a broken rule inside the engine
     │    ├── TransitionError       an illegal phase change (a bug, not a player error)
     │    ├── SeedChainExhausted    the seed chain has no rounds left
     │    └── UnknownAccountError   a command for a user the engine has not loaded
     └── FrameError               protocol/errors.py: a client frame that cannot be decoded

A player's refused command is not an exception past the engine: it becomes a
``CommandRejected`` event with a code.

Errors from asyncpg and redis never travel past ``storage/``: callers catch
these. Every message is fit to print to an operator as it is.
"""

from __future__ import annotations


class PillarPayoutError(Exception):
    """Root of every error this package raises on purpose."""


class ConfigError(PillarPayoutError, ValueError):
    """The operator gave something unusable: fix the flag or the environment.

    ``setting`` names the configuration field at fault when there is one
    (``house_edge``); the command line words it as its flag (``--house-edge``).
    """

    def __init__(self, message: str, *, setting: str | None = None) -> None:
        super().__init__(message if setting is None else f"{setting} {message}")
        self.setting = setting
        self.reason = message


class EmbeddedServerError(PillarPayoutError):
    """An embedded PostgreSQL or Redis server failed to start, answer or stop."""


class StorageError(PillarPayoutError):
    """A storage operation failed."""


class DatabaseUnavailable(StorageError):
    """PostgreSQL could not be reached or the transaction failed on the way."""


class RedisUnavailable(StorageError):
    """Redis could not be reached; nothing was acknowledged."""


class UnknownUser(StorageError):
    """No account has that username."""


class InsufficientBalance(StorageError):
    """An operator's adjustment (a debit) would take a balance below zero; nothing changed."""
