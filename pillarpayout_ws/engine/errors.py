"""What can go wrong in the engine, and how a refused command is named.

Two kinds of failure, kept apart on purpose:

* A **player's** bad command (a bet in the wrong phase, a bad amount, ...) is
  not an exception that escapes the engine: ``Game`` answers it with a
  ``CommandRejected`` event carrying one of the ``RejectCode`` values below and
  changes nothing. ``Rejection`` is the internal exception that carries the
  code from the validator that found the problem to the command that reports
  it; it never leaves ``Game``.
* A **program** error (an illegal phase transition, a config that cannot
  work, an exhausted seed chain, a call the caller should never make) raises
  one of these, rooted in the project's one exception tree::

    PillarPayoutError                  (pillarpayout_ws.exceptions)
     ├── ConfigError                   a GameConfig or goal list that cannot work
     └── EngineError                   the engine was driven wrongly
          ├── TransitionError            a phase change the table does not allow
          ├── SeedChainExhausted         every seed of the chain has been played
          └── UnknownAccountError        grant() for an account never loaded
"""

from __future__ import annotations

from enum import StrEnum

from pillarpayout_ws.exceptions import ConfigError, PillarPayoutError

__all__ = [
    "ConfigError",
    "EngineError",
    "RejectCode",
    "Rejection",
    "SeedChainExhausted",
    "TransitionError",
    "UnknownAccountError",
]


class EngineError(PillarPayoutError):
    """The engine was driven in a way its caller must never drive it."""


class TransitionError(EngineError):
    """A phase change that the transition table does not allow.

    An internal error, never a player's: the game loop logs it with its
    traceback. Nothing was changed when it is raised.
    """


class SeedChainExhausted(EngineError):
    """The seed chain has no unplayed seed left: generate and publish a new one."""


class UnknownAccountError(EngineError):
    """``grant()`` named a user whose account was never loaded."""


class RejectCode(StrEnum):
    """Why a player's command was refused; the value is the wire error code."""

    UNKNOWN_ACCOUNT = "unknown_account"
    INVALID_AMOUNT = "invalid_amount"
    INVALID_AUTO_CASHOUT = "invalid_auto_cashout"
    INVALID_SLOT = "invalid_slot"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    BETTING_CLOSED = "betting_closed"
    ALREADY_BET = "already_bet"
    NO_ACTIVE_BET = "no_active_bet"
    # A cashout for a bet whose round is still in its betting phase.
    ROUND_NOT_RUNNING = "round_not_running"
    # A cashout for a bet that lost: the pillar fell first.
    ROUND_CRASHED = "round_crashed"
    # A bet whose ref named a bet of an earlier round.
    REF_REUSED = "ref_reused"


class Rejection(Exception):
    """Internal: a player's command is refused with ``code``.

    Raised by validators before any state changes and turned into a
    ``CommandRejected`` event by ``Game``; it never escapes the engine, so it
    deliberately sits outside the ``PillarPayoutError`` tree.
    """

    def __init__(self, code: RejectCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
