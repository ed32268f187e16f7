"""Operator grants that never race a running server's balances.

A running ``serve`` holds a PostgreSQL advisory lock for its whole life and
keeps the live balances of its players in memory. ``grant`` tries that lock:

- it gets it: no server runs, so the grant is one PostgreSQL transaction
  (ledger row + balance delta), and the lock is released;
- it does not: the grant is queued in Redis for the server, which applies it
  like any other action (write-ahead, then flush) and answers. A request the
  server has not taken by its deadline is never applied, so "no answer"
  reliably means "nothing happened".
"""

from __future__ import annotations

import time

from ..exceptions import StorageError, UnknownUser
from ..storage import Storage

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
    answer = await storage.live.request_grant(request, timeout_s=ANSWER_TIMEOUT_S + 2)
    if answer is None:
        raise StorageError(
            f"the running server did not take the grant within {ANSWER_TIMEOUT_S:.0f} s; "
            "nothing was granted"
        )
    if answer.get("error") == "unknown_user":
        raise UnknownUser(f"no user named {username!r}")
    if "error" in answer:
        raise StorageError(f"the running server refused the grant: {answer['error']}")
    return int(answer["user_id"]), int(answer["balance"]), "through the running server"
