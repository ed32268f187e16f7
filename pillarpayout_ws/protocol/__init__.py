"""The wire protocol: frame types and the JSON codec between clients and server.

``decode_command`` turns a client's text frame into a frozen command
dataclass (``Register``, ``Login``, ``Resume``, ``Logout``, ``PlaceBet``,
``CashOut``, ``Chat``, ``Ping``, ``LogoutAll``) or raises ``FrameError`` with the wire error
code to answer; the ``encode_*`` functions turn engine events and server
answers into the bytes of one JSON frame, converting units from the engine's
(hundredths) to the wire's (two-decimal numbers) on the way. The package is
pure: no I/O, no clock (every ``ts`` is passed in), no asyncio. The repo's
``protocol.md`` lists every frame with an example and every error code.
"""

from __future__ import annotations

from pillarpayout_ws.protocol.commands import (
    COMMAND_TYPES,
    MAX_AMOUNT,
    MAX_CHAT_LENGTH,
    MAX_EMAIL_LENGTH,
    MAX_PASSWORD_LENGTH,
    MAX_REF_LENGTH,
    MAX_TOKEN_LENGTH,
    MAX_USERNAME_LENGTH,
    MIN_AUTO_CASHOUT,
    MIN_PASSWORD_LENGTH,
    MIN_USERNAME_LENGTH,
    CashOut,
    Chat,
    Command,
    Login,
    Logout,
    LogoutAll,
    Ping,
    PlaceBet,
    Register,
    Resume,
    decode_command,
)
from pillarpayout_ws.protocol.errors import FrameCode, FrameError
from pillarpayout_ws.protocol.frames import (
    LIVE_BETS_LIMIT,
    Fairness,
    encode_balance,
    encode_bets,
    encode_chat,
    encode_error,
    encode_event,
    encode_fairness,
    encode_hello,
    encode_logged_out,
    encode_pong,
    encode_presence,
    encode_session,
)

__all__ = [
    "COMMAND_TYPES",
    "LIVE_BETS_LIMIT",
    "MAX_AMOUNT",
    "MAX_CHAT_LENGTH",
    "MAX_EMAIL_LENGTH",
    "MAX_PASSWORD_LENGTH",
    "MAX_REF_LENGTH",
    "MAX_TOKEN_LENGTH",
    "MAX_USERNAME_LENGTH",
    "MIN_AUTO_CASHOUT",
    "MIN_PASSWORD_LENGTH",
    "MIN_USERNAME_LENGTH",
    "CashOut",
    "Chat",
    "Command",
    "Fairness",
    "FrameCode",
    "FrameError",
    "Login",
    "Logout",
    "LogoutAll",
    "Ping",
    "PlaceBet",
    "Register",
    "Resume",
    "decode_command",
    "encode_balance",
    "encode_bets",
    "encode_chat",
    "encode_error",
    "encode_event",
    "encode_fairness",
    "encode_hello",
    "encode_logged_out",
    "encode_pong",
    "encode_presence",
    "encode_session",
]
