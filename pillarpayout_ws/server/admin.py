"""Operator commands that must not race a running server: ``adjust``, ``void-round``.

The same two halves as ``grants.py``, on their own Redis keys
(``pp:admin_requests``, ``pp:admin_reply:{k}``): the CLI tries the server's
advisory lock;

- it gets it: no server runs, and the command is one PostgreSQL transaction;
- it does not: the command is queued in Redis for the running server, whose
  ``AdminDesk`` hands it to the game loop; the engine applies it like any
  other action (write-ahead in Redis, then flushed to PostgreSQL) and the desk
  answers through Redis. A request that has not reached the game loop by its
  deadline is refused, never applied (``grants.py`` says when "no answer" can
  still hide an applied one).

``adjust USERNAME AMOUNT --reason TEXT`` credits or debits (a negative
AMOUNT) a balance through the ledger (kind ``adjust``, with the reason). A
debit below zero is refused: in PostgreSQL against the stored balance, and by
the engine against the balance it holds (which includes unflushed bets and
payouts). An adjust flushed before the round whose payout it debits would
take PostgreSQL's balance below zero: that flush is refused and the
adjustment stays in Redis until the round is flushed with it (never lost).

``void-round`` needs the running server: the engine voids the round under way
(``Game.void_round``: cash-outs stand, the other bets are refunded, players
get ``balance`` refund frames and everyone ``round_voided``) and opens the
next; the flusher settles the voided round through ``settle_round``'s void
path, as recovery would. With no server running there is no round to void
(recovery voids an unfinished one at the next start).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ..engine.errors import EngineError
from ..exceptions import InsufficientBalance, PillarPayoutError, StorageError, UnknownUser
from ..storage import Storage
from ..storage.live import ADMIN_DESK
from .runner import AdjustCommand, GameRunner, LoadAccount

ANSWER_TIMEOUT_S = 10.0
MAX_REASON_LENGTH = 500


async def _through_server(storage: Storage, request: dict[str, Any]) -> dict[str, Any]:
    request = {**request, "deadline": time.time() + ANSWER_TIMEOUT_S}
    answer = await storage.live.request(ADMIN_DESK, request, timeout_s=ANSWER_TIMEOUT_S + 2)
    if answer is None:
        raise StorageError(
            f"the running server did not answer the {request['command']} within "
            f"{ANSWER_TIMEOUT_S:.0f} s; nothing was done (unless its Redis failed at the "
            "moment it applied it: check before trying again)"
        )
    if answer.get("error") == "unknown_user":
        raise UnknownUser(f"no user named {request.get('username')!r}")
    if answer.get("error") == "insufficient_balance":
        raise InsufficientBalance(str(answer["message"]))
    if "error" in answer:
        raise StorageError(
            f"the running server refused the {request['command']}: {answer['error']}"
        )
    return answer


async def adjust(
    storage: Storage, username: str, amount: int, reason: str, *, key: str
) -> tuple[int, int, str]:
    """Adjust ``username``'s balance by ``amount`` cents (signed); returns (user id,
    new balance, how it was applied)."""
    if await storage.db.try_server_lock():
        try:
            user_id, balance = await storage.db.adjust(username, amount, key, reason)
        finally:
            await storage.db.release_server_lock()
        return user_id, balance, "in PostgreSQL (no server running)"
    answer = await _through_server(
        storage,
        {
            "command": "adjust",
            "key": key,
            "username": username,
            "amount": amount,
            "reason": reason,
        },
    )
    return int(answer["user_id"]), int(answer["balance"]), "through the running server"


async def void_round(storage: Storage, *, key: str) -> tuple[int, int]:
    """Void the running server's round; returns (its id, how many bets were refunded)."""
    if await storage.db.try_server_lock():
        await storage.db.release_server_lock()
        raise StorageError(
            "no server is running, so no round is under way (the next start voids a "
            "round left unfinished)"
        )
    answer = await _through_server(storage, {"command": "void_round", "key": key})
    return int(answer["round_id"]), int(answer["refunded"])


class AdminDesk:
    """The server's half: takes queued operator commands and answers them."""

    def __init__(self, storage: Storage, runner: GameRunner) -> None:
        self._storage = storage
        self._runner = runner

    async def take(self, wait_s: float = 0.0, until: asyncio.Event | None = None) -> bool:
        """Apply the commands queued since the last call, each through the game loop."""
        return await self._storage.live.answer_requests(ADMIN_DESK, self._command, wait_s, until)

    async def _command(self, request: dict[str, Any], key: str) -> dict[str, Any]:
        try:
            if request.get("command") == "adjust":
                return await self._adjust(request, key)
            if request.get("command") == "void_round":
                return await self._void_round(float(request["deadline"]))
            return {"error": f"unknown command {request.get('command')!r}"}
        except PillarPayoutError as exc:
            return {"error": str(exc)}

    async def _void_round(self, deadline: float) -> dict[str, Any]:
        try:
            round_id, refunded = await self._runner.void_round(deadline)
        except EngineError as exc:
            return {"error": f"no round to void ({exc})"}
        return {"round_id": round_id, "refunded": refunded}

    async def _adjust(self, request: dict[str, Any], key: str) -> dict[str, Any]:
        user = await self._storage.db.user_by_name(str(request["username"]))
        if user is None:
            return {"error": "unknown_user"}
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        account = LoadAccount(user.id, user.username, user.balance, done)
        self._runner.submit(
            AdjustCommand(
                account,
                int(request["amount"]),
                key,
                str(request["reason"]),
                float(request["deadline"]),
            )
        )
        try:
            return {"user_id": user.id, "balance": await done}
        except ValueError as exc:
            if "below zero" in str(exc):
                return {"error": "insufficient_balance", "message": str(exc)}
            return {"error": str(exc)}
