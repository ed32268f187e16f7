"""Players' totals (``player_stats``): summed from the flushed bets after each flush.

The flush itself never touches them (it is the game's write path, and
already tight): ``PlayerStats.run`` is a loop of its own that the flusher
pokes after every flush that wrote rounds, and that also looks every
``interval_s`` and once at start-up. Each turn is ``Database.summarise_bets``:
one short transaction that adds the bets above a watermark, so a summary
missed by a crash is caught up by the next and nothing is added twice.

``generation`` moves whenever a summary added bets: ``/api/leaderboard``
keeps its answers until it does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ..exceptions import PillarPayoutError
from ..retry import Backoff, wait_for_event
from .postgres import Database

__all__ = ["PlayerStats"]

log = logging.getLogger("pillarpayout.storage")


class PlayerStats:
    def __init__(self, db: Database, *, interval_s: float = 10.0, max_backoff_s: float = 10.0):
        self._db = db
        self._interval_s = interval_s
        self._max_backoff_s = max_backoff_s
        self._wake = asyncio.Event()
        self._wake.set()  # catch up at start-up
        self._closed = False
        self._attempted = asyncio.Condition()  # notified after every summary
        self.generation = 0
        self.bets_summarised = 0

    def poke(self) -> None:
        """A flush wrote bets: summarise them soon."""
        self._wake.set()

    def close(self) -> None:
        """Make ``run()`` return at its next turn."""
        self._closed = True
        self._wake.set()

    async def summarise_now(self) -> int:
        """Add every flushed bet not summed yet (in transactions of at most about
        ``SUMMARY_CHUNK`` bets); how many. Raises ``PillarPayoutError``."""
        total = 0
        try:
            while added := await self._db.summarise_bets():
                self.generation += 1
                self.bets_summarised += added
                total += added
            return total
        finally:
            async with self._attempted:
                self._attempted.notify_all()

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Return once ``predicate()`` holds, checking it after every summary."""
        async with self._attempted:
            await self._attempted.wait_for(predicate)

    async def run(self) -> None:
        backoff = Backoff(min(1.0, self._max_backoff_s), self._max_backoff_s)
        wait_s = self._interval_s
        while not self._closed:
            await wait_for_event(self._wake, wait_s)
            self._wake.clear()
            if self._closed:
                return
            try:
                await self.summarise_now()
            except PillarPayoutError as exc:
                wait_s = backoff.failed()
                log.warning("player totals not summed (retry in %.1f s): %s", wait_s, exc)
                continue
            backoff.succeeded()
            wait_s = self._interval_s
