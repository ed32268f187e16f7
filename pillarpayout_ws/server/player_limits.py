"""Limits players set on themselves, over the wire: ``set_limits`` and ``limits``.

The rules are the engine's (``engine/limits.py``); this module moves them
between PostgreSQL (where they survive a restart: ``player_limits`` and
``player_exclusions``), the engine (which checks every bet against them) and
the player.

* At login, ``load`` reads the stored limits and the player's flushed bets
  since the start of the earliest period in force (the ISO week or the
  calendar month, whichever began first) per UTC day; the engine takes them
  if it does not hold the account's limits already (then its own totals,
  which include unflushed bets, are kept).
* ``set_limits``: one change at a time per player (a lock), computed from
  the limits the engine holds, stored in PostgreSQL, and only then installed
  in the engine and answered with a ``limits`` frame. A tightening is
  therefore durable before it is announced; if storing fails, nothing
  changed and the player gets ``unavailable``.
"""

from __future__ import annotations

import asyncio
import weakref

from ..engine.limits import DAY_MS, Activity, Limits, day_of, period_bounds
from ..protocol import SetLimits, encode_limits
from ..storage.postgres import Database
from .runner import GameRunner

__all__ = ["LimitsDesk"]


def activity_since(now_ms: int) -> int:
    """The first instant whose bets can still count against a limit at ``now_ms``."""
    day = day_of(now_ms)
    return min(period_bounds("weekly", day)[0], period_bounds("monthly", day)[0]) * DAY_MS


class LimitsDesk:
    """Loads, changes and shows a player's limits (one per server)."""

    def __init__(self, db: Database, runner: GameRunner) -> None:
        self._db = db
        self._runner = runner
        self._locks: weakref.WeakValueDictionary[int, asyncio.Lock] = weakref.WeakValueDictionary()

    async def load(self, user_id: int) -> tuple[Limits, Activity]:
        """What the engine needs at ``user_id``'s login."""
        now = self._runner.now_ms()
        limits = await self._db.limits(user_id)
        days = await self._db.activity(user_id, activity_since(now))
        return limits, Activity(days)

    def frame(self, user_id: int, ref: str | None) -> bytes:
        """The ``limits`` frame for a logged-in player."""
        limits, usage = self._runner.limits_of(user_id)
        return encode_limits(limits or Limits(), usage or {}, ref, now_ms=self._runner.now_ms())

    async def set_limits(self, user_id: int, command: SetLimits) -> bytes:
        """Apply ``command`` for ``user_id``; the ``limits`` frame to answer with."""
        lock = self._locks.get(user_id)
        if lock is None:
            lock = self._locks[user_id] = asyncio.Lock()
        async with lock:
            held, _ = self._runner.limits_of(user_id)
            current = held if held is not None else await self._db.limits(user_id)
            changed = current.request(
                self._runner.now_ms(),
                command.limits,
                cool_off_days=command.cool_off_days,
                exclusion_months=command.exclusion_months,
            )
            await self._db.save_limits(user_id, changed)
            await self._runner.set_limits(user_id, changed)
        return self.frame(user_id, command.ref)
