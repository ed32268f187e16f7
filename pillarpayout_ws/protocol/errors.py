"""Why a received frame was refused, and the wire code that says so.

A frame the codec cannot turn into a command raises ``FrameError``; the
server answers it with an ``error`` frame carrying ``code``, ``message`` and
``ref`` and keeps the connection open. It sits in the project's one exception
tree::

    PillarPayoutError                  (pillarpayout_ws.exceptions)
     └── FrameError                    a client frame that is not a valid command

Whether a well-formed command is *allowed* (logged in, betting open, enough
funds, ...) is not decided here: the engine answers that with
``CommandRejected`` and its own ``RejectCode``.
"""

from __future__ import annotations

from enum import StrEnum

from pillarpayout_ws.exceptions import PillarPayoutError

__all__ = ["FrameCode", "FrameError"]


class FrameCode(StrEnum):
    """Every code ``decode_command`` raises; the value is the wire error code."""

    # Not JSON, not an object, a binary frame, no string ``type``, a missing
    # field or one of the wrong JSON type, a string over its length limit.
    BAD_FRAME = "bad_frame"
    # ``type`` is a string that names no command.
    UNKNOWN_TYPE = "unknown_type"
    # ``bet.amount`` is not a whole number of cents in 1..2**53.
    INVALID_AMOUNT = "invalid_amount"
    # ``bet.auto_cashout`` is not null and not a number >= 1.01 with two decimals.
    INVALID_AUTO_CASHOUT = "invalid_auto_cashout"
    # ``bet.slot`` or ``cashout.slot`` is not absent, null, 0 or 1.
    INVALID_SLOT = "invalid_slot"
    # ``register`` fields that fail their format checks.
    INVALID_USERNAME = "invalid_username"
    INVALID_EMAIL = "invalid_email"
    INVALID_PASSWORD = "invalid_password"
    # ``chat.text`` empty, too long, or with control characters.
    INVALID_TEXT = "invalid_text"
    # ``mute.minutes`` not an integer from 1 to ``MAX_MUTE_MINUTES``.
    INVALID_MINUTES = "invalid_minutes"


class FrameError(PillarPayoutError):
    """A client frame was refused with ``code``; answer with an ``error`` frame.

    ``ref`` is the frame's ``ref`` when it had been read and was valid, so the
    client can match the error with what it sent; ``None`` otherwise. The
    ``message`` is for people and never repeats a password or a token.
    """

    def __init__(self, code: FrameCode, message: str, ref: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.ref = ref

    def __repr__(self) -> str:
        return f"FrameError({self.code.value!r}, {self.message!r}, {self.ref!r})"
