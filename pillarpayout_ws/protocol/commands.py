"""Client to server: the commands a player may send, and their decoder.

``decode_command`` turns one received WebSocket message into one of the
frozen command dataclasses below, or raises ``FrameError`` with the wire code
to answer with. It checks the *shape* of a frame (a JSON object, a known
``type``, field types, lengths and formats); whether the command is allowed
right now (logged in, betting open, enough funds, ...) is for the server and
the engine to say.

=========  ===================================================  ==========
type       fields                                               command
=========  ===================================================  ==========
register   ``username``, ``email``, ``password``                Register
login      ``username``, ``password``                           Login
resume     ``token``                                            Resume
logout     (none)                                               Logout
logout_all (none)                                               LogoutAll
bet        ``amount`` (cents), ``auto_cashout`` (number|null),  PlaceBet
           ``slot`` (0|1, default 0)
cashout    ``slot`` (0|1, default 0)                            CashOut
cancel_bet ``slot`` (0|1, default 0)                            CancelBet
chat       ``text``                                             Chat
ping       (none)                                               Ping
mute       ``username``, ``minutes``, ``reason`` (optional)     Mute
unmute     ``username``, ``reason`` (optional)                  Unmute
ban        ``username``, ``reason`` (optional)                  Ban
unban      ``username``, ``reason`` (optional)                  Unban
delete_chat ``id``, ``reason`` (optional)                       DeleteChat
set_limits ``limits`` (object: name -> cents|null, optional),   SetLimits
           ``cool_off_days`` (1-42), ``self_exclusion_months``
           (6-1200), each optional
limits     (none): the player's limits, as ``set_limits``       GetLimits
           answers them
=========  ===================================================  ==========

The moderation commands (the last five) are for moderators and admins; who
may act on whom is the server's to say (``server/moderation.py``).

Rules every frame shares:

* Unknown extra fields are ignored, so newer clients can talk to this server.
* ``ref`` is an optional client string of at most 64 characters (no U+0000),
  or null, on any command. Once it has been read, every ``FrameError`` carries it so
  the client can match the error with what it sent.
* A missing required field, or a field of the wrong JSON type, is
  ``bad_frame``; except ``amount``, ``auto_cashout`` and ``slot``, whose own
  codes (``invalid_amount``, ``invalid_auto_cashout``, ``invalid_slot``) cover
  any value they cannot take.

Units are converted here, and only here: ``auto_cashout`` arrives as a number
(``2.35``) and leaves as integer hundredths (``235``), the engine's unit; the
engine takes it as it is. Its lower bound (``MIN_AUTO_CASHOUT``, 1.01x) is the
engine's constant; the upper bound is the game's config, checked by the engine.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final, cast

import orjson

from pillarpayout_ws.engine.config import MIN_AUTO_CASHOUT, SLOTS
from pillarpayout_ws.engine.limits import (
    COOL_OFF_DAYS,
    LIMIT_NAMES,
    MAX_EXCLUSION_MONTHS,
    MIN_EXCLUSION_MONTHS,
)
from pillarpayout_ws.protocol.errors import FrameCode, FrameError

__all__ = [
    "COMMAND_TYPES",
    "MAX_AMOUNT",
    "MAX_CHAT_LENGTH",
    "MAX_EMAIL_LENGTH",
    "MAX_MUTE_MINUTES",
    "MAX_PASSWORD_LENGTH",
    "MAX_REASON_LENGTH",
    "MAX_REF_LENGTH",
    "MAX_TOKEN_LENGTH",
    "MAX_USERNAME_LENGTH",
    "MIN_AUTO_CASHOUT",
    "MIN_PASSWORD_LENGTH",
    "MIN_USERNAME_LENGTH",
    "Ban",
    "CancelBet",
    "CashOut",
    "Chat",
    "Command",
    "DeleteChat",
    "GetLimits",
    "Login",
    "Logout",
    "LogoutAll",
    "ModerationCommand",
    "Mute",
    "Ping",
    "PlaceBet",
    "Register",
    "Resume",
    "SetLimits",
    "Unban",
    "Unmute",
    "decode_command",
]

# Limits, in characters (code points) for strings.
MIN_USERNAME_LENGTH: Final = 3
MAX_USERNAME_LENGTH: Final = 32
MAX_EMAIL_LENGTH: Final = 254
MIN_PASSWORD_LENGTH: Final = 8
MAX_PASSWORD_LENGTH: Final = 256
MAX_TOKEN_LENGTH: Final = 128
MAX_REF_LENGTH: Final = 64
MAX_CHAT_LENGTH: Final = 280
MAX_REASON_LENGTH: Final = 200
# A mute is 1 minute to 30 days; longer is a ban.
MAX_MUTE_MINUTES: Final = 30 * 24 * 60
# Chat ids beyond this cannot name a line (the largest exact JSON integer).
_MAX_CHAT_ID: Final = 2**53
# Cents: the largest integer every JSON client (JavaScript included) holds exactly.
MAX_AMOUNT: Final = 2**53
# Hundredths are kept in the same exactly-representable range as money.
_MAX_AUTO_CASHOUT_HUNDREDTHS: Final = 2**53

_USERNAME = re.compile(r"[A-Za-z0-9_.\-]+")
# Deliberately simple: local@domain.tld, no whitespace, one @, no empty labels.
_EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(?:\.[^@\s.]+)+")
# Control and format characters (Cc, Cf), surrogates, and the line/paragraph
# separators: none of them belongs in a one-line chat message or an address.
_FORBIDDEN_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


@dataclass(frozen=True, slots=True)
class Register:
    """Create an account and log in (``register``); answered with ``session``."""

    username: str
    email: str
    password: str = field(repr=False)
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class Login:
    """Log in with a username and password (``login``); answered with ``session``."""

    username: str
    password: str = field(repr=False)
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class Resume:
    """Log in again with a session token (``resume``); answered with ``session``."""

    token: str = field(repr=False)
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class Logout:
    """End the session (``logout``); answered with ``logged_out``."""

    ref: str | None = None


@dataclass(frozen=True, slots=True)
class LogoutAll:
    """End every session of the user, on every device (``logout_all``); answered
    with ``logged_out``, the user's other sockets closed with 4002."""

    ref: str | None = None


@dataclass(frozen=True, slots=True)
class PlaceBet:
    """Bet ``amount`` cents on the open round (``bet``).

    ``auto_cashout`` is in hundredths (``235`` = 2.35x), at least 1.01x, or
    ``None`` for none. ``slot`` is which of the user's two bets of the round
    this is (0 or 1).
    """

    amount: int
    auto_cashout: int | None
    ref: str | None = None
    slot: int = 0


@dataclass(frozen=True, slots=True)
class CashOut:
    """Cash out the running bet in ``slot`` now (``cashout``)."""

    ref: str | None = None
    slot: int = 0


@dataclass(frozen=True, slots=True)
class CancelBet:
    """Take back the bet in ``slot`` while betting is open (``cancel_bet``)."""

    ref: str | None = None
    slot: int = 0


@dataclass(frozen=True, slots=True)
class Chat:
    """Say ``text`` to everyone (``chat``): trimmed, 1 to 280 characters."""

    text: str
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class Ping:
    """Ask for a ``pong`` (``ping``): a liveness and latency check."""

    ref: str | None = None


@dataclass(frozen=True, slots=True)
class Mute:
    """Refuse ``username``'s chat for ``minutes`` (``mute``); moderators only."""

    username: str
    minutes: int
    reason: str = ""
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class SetLimits:
    """Set limits on oneself (``set_limits``): ``limits`` maps the names that
    change (``daily_loss``, ... ``monthly_wager``) to cents, or ``None`` to
    remove; ``cool_off_days`` and ``exclusion_months`` start a cool-off or a
    self-exclusion. The rules (tighter at once, looser after 24 hours) are
    the engine's (``engine/limits.py``)."""

    limits: Mapping[str, int | None]
    cool_off_days: int | None = None
    exclusion_months: int | None = None
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class Unmute:
    """End ``username``'s mute (``unmute``); moderators only."""

    username: str
    reason: str = ""
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class Ban:
    """Ban ``username`` until an unban (``ban``): no login, no resume, their
    sockets closed with 4003; moderators only."""

    username: str
    reason: str = ""
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class Unban:
    """Lift ``username``'s ban (``unban``); moderators only."""

    username: str
    reason: str = ""
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class DeleteChat:
    """Delete chat line ``id`` (``delete_chat``): broadcast ``chat_deleted``; moderators only."""

    id: int
    reason: str = ""
    ref: str | None = None


ModerationCommand = Mute | Unmute | Ban | Unban | DeleteChat


@dataclass(frozen=True, slots=True)
class GetLimits:
    """Ask for one's limits (``limits``)."""

    ref: str | None = None


Command = (
    Register
    | Login
    | Resume
    | Logout
    | LogoutAll
    | PlaceBet
    | CashOut
    | CancelBet
    | Chat
    | Ping
    | Mute
    | Unmute
    | Ban
    | Unban
    | DeleteChat
    | SetLimits
    | GetLimits
)

_Frame = Mapping[str, object]


def decode_command(data: str | bytes) -> Command:
    """The command in one received message, or ``FrameError`` saying why not.

    ``data`` is the message as the WebSocket library hands it over: ``str``
    for a text frame, ``bytes`` for a binary frame (always refused). Nothing
    but ``FrameError`` escapes, whatever the input.
    """
    if not isinstance(data, str):
        raise FrameError(FrameCode.BAD_FRAME, "binary frames are not accepted")
    try:
        # orjson refuses NaN, Infinity, numbers that overflow a double, lone
        # surrogates and nesting deeper than 1024.
        frame = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise FrameError(FrameCode.BAD_FRAME, "the frame is not valid JSON") from None
    if not isinstance(frame, dict):
        raise FrameError(FrameCode.BAD_FRAME, "a frame must be a JSON object")
    ref = _ref(frame)
    kind = frame.get("type")
    if not isinstance(kind, str):
        raise FrameError(FrameCode.BAD_FRAME, "a frame needs a string 'type'", ref)
    decoder = _DECODERS.get(kind)
    if decoder is None:
        raise FrameError(FrameCode.UNKNOWN_TYPE, f"unknown frame type {kind[:32]!r}", ref)
    return decoder(frame, ref)


# --- one decoder per type ------------------------------------------------------


def _register(frame: _Frame, ref: str | None) -> Register:
    username = _string(frame, "username", ref)
    if not (
        MIN_USERNAME_LENGTH <= len(username) <= MAX_USERNAME_LENGTH
        and _USERNAME.fullmatch(username)
    ):
        raise FrameError(
            FrameCode.INVALID_USERNAME,
            f"a username is {MIN_USERNAME_LENGTH} to {MAX_USERNAME_LENGTH} characters "
            "of A-Z a-z 0-9 _ . -",
            ref,
        )
    email = _string(frame, "email", ref)
    if len(email) > MAX_EMAIL_LENGTH or not _EMAIL.fullmatch(email) or _has_forbidden(email):
        raise FrameError(
            FrameCode.INVALID_EMAIL,
            f"an email is local@domain.tld, at most {MAX_EMAIL_LENGTH} characters",
            ref,
        )
    password = _string(frame, "password", ref)
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise FrameError(
            FrameCode.INVALID_PASSWORD,
            f"a password is {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters",
            ref,
        )
    return Register(username, email, password, ref)


def _login(frame: _Frame, ref: str | None) -> Login:
    # No format checks: a wrong username is the server's invalid_credentials.
    username = _string(frame, "username", ref, max_length=MAX_USERNAME_LENGTH)
    password = _string(frame, "password", ref, max_length=MAX_PASSWORD_LENGTH)
    return Login(username, password, ref)


def _resume(frame: _Frame, ref: str | None) -> Resume:
    return Resume(_string(frame, "token", ref, max_length=MAX_TOKEN_LENGTH), ref)


def _logout(frame: _Frame, ref: str | None) -> Logout:
    return Logout(ref)


def _logout_all(frame: _Frame, ref: str | None) -> LogoutAll:
    return LogoutAll(ref)


def _bet(frame: _Frame, ref: str | None) -> PlaceBet:
    if "amount" not in frame:
        raise FrameError(FrameCode.BAD_FRAME, "missing field 'amount'", ref)
    amount = frame["amount"]
    # bool is an int in Python, never in JSON; a float (even 10.0) is not whole cents,
    # and orjson hands integers beyond 64 bits over as floats.
    if not isinstance(amount, int) or isinstance(amount, bool) or not 1 <= amount <= MAX_AMOUNT:
        raise FrameError(
            FrameCode.INVALID_AMOUNT,
            f"amount is a whole number of cents from 1 to {MAX_AMOUNT}",
            ref,
        )
    auto_cashout = _auto_cashout(frame.get("auto_cashout"), ref)
    return PlaceBet(amount, auto_cashout, ref, _slot(frame.get("slot"), ref))


def _cashout(frame: _Frame, ref: str | None) -> CashOut:
    return CashOut(ref, _slot(frame.get("slot"), ref))


def _cancel_bet(frame: _Frame, ref: str | None) -> CancelBet:
    return CancelBet(ref, _slot(frame.get("slot"), ref))


def _chat(frame: _Frame, ref: str | None) -> Chat:
    raw = _string(frame, "text", ref)
    # Checked before trimming: control characters are refused, never silently cut.
    if _has_forbidden(raw):
        raise FrameError(FrameCode.INVALID_TEXT, "chat text has control characters", ref)
    text = raw.strip()
    if not 1 <= len(text) <= MAX_CHAT_LENGTH:
        raise FrameError(
            FrameCode.INVALID_TEXT,
            f"chat text is 1 to {MAX_CHAT_LENGTH} characters after trimming",
            ref,
        )
    if not any(_visible(char) for char in text):
        raise FrameError(FrameCode.INVALID_TEXT, "chat text has nothing to see", ref)
    return Chat(text, ref)


def _ping(frame: _Frame, ref: str | None) -> Ping:
    return Ping(ref)


def _target(frame: _Frame, ref: str | None) -> str:
    return _string(frame, "username", ref, max_length=MAX_USERNAME_LENGTH)


def _reason(frame: _Frame, ref: str | None) -> str:
    """The optional ``reason``: absent or null is ""; at most 200 characters of one line."""
    value = frame.get("reason")
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > MAX_REASON_LENGTH or _has_forbidden(value):
        raise FrameError(
            FrameCode.BAD_FRAME,
            f"reason is a string of at most {MAX_REASON_LENGTH} characters on one line, or null",
            ref,
        )
    return value.strip()


def _mute(frame: _Frame, ref: str | None) -> Mute:
    username = _target(frame, ref)
    minutes = frame.get("minutes")
    if type(minutes) is not int or not 1 <= minutes <= MAX_MUTE_MINUTES:
        raise FrameError(
            FrameCode.INVALID_MINUTES,
            f"minutes is a whole number from 1 to {MAX_MUTE_MINUTES} (30 days)",
            ref,
        )
    return Mute(username, minutes, _reason(frame, ref), ref)


def _unmute(frame: _Frame, ref: str | None) -> Unmute:
    return Unmute(_target(frame, ref), _reason(frame, ref), ref)


def _ban(frame: _Frame, ref: str | None) -> Ban:
    return Ban(_target(frame, ref), _reason(frame, ref), ref)


def _unban(frame: _Frame, ref: str | None) -> Unban:
    return Unban(_target(frame, ref), _reason(frame, ref), ref)


def _delete_chat(frame: _Frame, ref: str | None) -> DeleteChat:
    if "id" not in frame:
        raise FrameError(FrameCode.BAD_FRAME, "missing field 'id'", ref)
    chat_id = frame["id"]
    if type(chat_id) is not int:
        raise FrameError(FrameCode.BAD_FRAME, "'id' must be an integer (a chat line's id)", ref)
    return DeleteChat(chat_id, _reason(frame, ref), ref)


def _whole(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _set_limits(frame: _Frame, ref: str | None) -> SetLimits:
    raw = frame.get("limits", {})
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise FrameError(FrameCode.INVALID_LIMIT, "limits is an object: name -> cents or null", ref)
    limits: dict[str, int | None] = {}
    for name, value in raw.items():
        if name not in LIMIT_NAMES:
            raise FrameError(
                FrameCode.INVALID_LIMIT,
                f"unknown limit {str(name)[:32]!r}; limits are {', '.join(LIMIT_NAMES)}",
                ref,
            )
        if value is not None and not _whole(value, 1, MAX_AMOUNT):
            raise FrameError(
                FrameCode.INVALID_LIMIT,
                f"{name} is a whole number of cents from 1 to {MAX_AMOUNT}, or null",
                ref,
            )
        limits[name] = value
    cool_off = frame.get("cool_off_days")
    low, high = COOL_OFF_DAYS
    if cool_off is not None and not _whole(cool_off, low, high):
        raise FrameError(
            FrameCode.INVALID_LIMIT, f"cool_off_days is a whole number from {low} to {high}", ref
        )
    months = frame.get("self_exclusion_months")
    if months is not None and not _whole(months, MIN_EXCLUSION_MONTHS, MAX_EXCLUSION_MONTHS):
        raise FrameError(
            FrameCode.INVALID_LIMIT,
            f"self_exclusion_months is a whole number from {MIN_EXCLUSION_MONTHS} "
            f"to {MAX_EXCLUSION_MONTHS}",
            ref,
        )
    return SetLimits(limits, cast("int | None", cool_off), cast("int | None", months), ref)


def _get_limits(frame: _Frame, ref: str | None) -> GetLimits:
    return GetLimits(ref)


_DECODERS: Final[Mapping[str, Callable[[_Frame, str | None], Command]]] = {
    "register": _register,
    "login": _login,
    "resume": _resume,
    "logout": _logout,
    "logout_all": _logout_all,
    "bet": _bet,
    "cashout": _cashout,
    "cancel_bet": _cancel_bet,
    "chat": _chat,
    "ping": _ping,
    "mute": _mute,
    "unmute": _unmute,
    "ban": _ban,
    "unban": _unban,
    "delete_chat": _delete_chat,
    "set_limits": _set_limits,
    "limits": _get_limits,
}

#: The ``type`` values ``decode_command`` understands.
COMMAND_TYPES: Final = frozenset(_DECODERS)


# --- fields ----------------------------------------------------------------------


def _ref(frame: _Frame) -> str | None:
    ref = frame.get("ref")
    # A bet's ref is stored, and PostgreSQL text cannot hold U+0000: one such ref
    # in the write-ahead would make its round (and every round flushed with it)
    # impossible to flush.
    if ref is None or (isinstance(ref, str) and len(ref) <= MAX_REF_LENGTH and "\x00" not in ref):
        return ref
    raise FrameError(
        FrameCode.BAD_FRAME,
        f"ref is a string of at most {MAX_REF_LENGTH} characters without U+0000, or null",
    )


def _string(frame: _Frame, name: str, ref: str | None, *, max_length: int | None = None) -> str:
    """The required string field ``name``; ``max_length`` also refuses "" as bad_frame."""
    if name not in frame:
        raise FrameError(FrameCode.BAD_FRAME, f"missing field {name!r}", ref)
    value = frame[name]
    if not isinstance(value, str):
        raise FrameError(FrameCode.BAD_FRAME, f"{name!r} must be a string", ref)
    if max_length is not None and not 1 <= len(value) <= max_length:
        raise FrameError(FrameCode.BAD_FRAME, f"{name!r} must be 1 to {max_length} characters", ref)
    return value


def _auto_cashout(value: object, ref: str | None) -> int | None:
    """``value`` (a JSON number with at most two decimals, or null) in hundredths."""
    if value is None:
        return None
    hundredths: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        hundredths = value * 100
    elif isinstance(value, float) and abs(value) <= _MAX_AUTO_CASHOUT_HUNDREDTHS / 100:
        # The number as the client wrote it (the shortest text of the double, so
        # 2.35 is "2.35", not 2.35000000000000008882): at most two decimals,
        # exactly; 2.3400000001 is refused, not rounded. The bound refuses NaN
        # and infinities, were they ever to come.
        scaled = Decimal(repr(value)) * 100
        if scaled == scaled.to_integral_value():
            hundredths = int(scaled)
    if hundredths is None or not MIN_AUTO_CASHOUT <= hundredths <= _MAX_AUTO_CASHOUT_HUNDREDTHS:
        raise FrameError(
            FrameCode.INVALID_AUTO_CASHOUT,
            "auto_cashout is null or a number of at least 1.01 with at most two decimals",
            ref,
        )
    return hundredths


def _slot(value: object, ref: str | None) -> int:
    """``value`` (absent or null: slot 0) as one of the slots, 0 or 1."""
    if value is None:
        return 0
    if type(value) is not int or not 0 <= value < SLOTS:
        raise FrameError(FrameCode.INVALID_SLOT, f"slot is 0 to {SLOTS - 1}, or absent", ref)
    return value


# Letters that render as nothing: Hangul fillers, the blank Braille pattern.
_BLANK_LETTERS: Final = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def _visible(char: str) -> bool:
    """A letter, digit, punctuation mark or symbol that shows (a line of spaces,
    fillers or combining marks alone renders blank)."""
    return unicodedata.category(char)[0] in "LNPS" and char not in _BLANK_LETTERS


def _has_forbidden(text: str) -> bool:
    return any(unicodedata.category(char) in _FORBIDDEN_CATEGORIES for char in text)
