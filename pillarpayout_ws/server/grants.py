"""Operator grants that never race a running server's balances: both halves.

A running ``serve`` holds a PostgreSQL advisory lock for its whole life and
keeps the live balances of its players in memory. ``grant`` (the CLI's half)
tries that lock:

- it gets it: no server runs, so the grant is one PostgreSQL transaction
  (ledger row + balance delta), and the lock is released;
- it does not: the grant is queued in Redis for the server, whose
  ``GrantDesk`` (the server's half) takes it and hands it to the game loop,
  which applies it like any other action (write-ahead, then flush); the desk
  answers through Redis. A request that has not reached the game loop by its
  deadline is refused, never applied, so "no answer" means "nothing
  happened", but for one case: the loop applied it just in time and its
  commit to Redis then failed for longer than the command line waits.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ..exceptions import PillarPayoutError, StorageError, UnknownUser
from ..storage import Storage
from ..storage.live import GRANT_DESK
from .runner import GameRunner, GrantCommand, LoadAccount

ANSWER_TIMEOUT_S = 10.0


async def grant(storage: Storage, username: str, amount: int, *, key: str) -> tuple[int, int, str]:
    """Credit ``username``; returns (user id, new balance, how it was applied)."""
    if await storage.db.try_server_lock():
        try:
            user_id, balance = await storage.db.grant(username, amount, key)
        finally:
            await storage.db.release_server_lock()
        return user_id, balance, "in PostgreSQL (no server running)"
    request = {
        "key": key,
        "username": username,
        "amount": amount,
        "deadline": time.time() + ANSWER_TIMEOUT_S,
    }
    answer = await storage.live.request(GRANT_DESK, request, timeout_s=ANSWER_TIMEOUT_S + 2)
    if answer is None:
        raise StorageError(
            f"the running server did not answer within {ANSWER_TIMEOUT_S:.0f} s; nothing was "
            "granted (unless its Redis failed at the moment it applied it: check the "
            "balance before granting again)"
        )
    if answer.get("error") == "unknown_user":
        raise UnknownUser(f"no user named {username!r}")
    if "error" in answer:
        raise StorageError(f"the running server refused the grant: {answer['error']}")
    return int(answer["user_id"]), int(answer["balance"]), "through the running server"


class GrantDesk:
    """The server's half: takes queued requests and answers them (module docstring)."""

    def __init__(self, storage: Storage, runner: GameRunner) -> None:
        self._storage = storage
        self._runner = runner

    async def take(self, wait_s: float = 0.0, until: asyncio.Event | None = None) -> bool:
        """Apply the grants queued since the last call, each through the game loop."""
        return await self._storage.live.answer_requests(GRANT_DESK, self._grant, wait_s, until)

    async def _grant(self, request: dict[str, Any], key: str) -> dict[str, Any]:
        try:
            user = await self._storage.db.user_by_name(str(request["username"]))
        except PillarPayoutError as exc:
            return {"error": str(exc)}
        if user is None:
            return {"error": "unknown_user"}
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        account = LoadAccount(user.id, user.username, user.balance, done)
        self._runner.submit(
            GrantCommand(account, int(request["amount"]), key, float(request["deadline"]))
        )
        try:
            return {"user_id": user.id, "balance": await done}
        except (ValueError, PillarPayoutError) as exc:
            return {"error": str(exc)}
