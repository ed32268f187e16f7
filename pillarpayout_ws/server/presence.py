"""Who is here: players online and spectators connected, in ``hello`` and a
``presence`` broadcast.

- **Players**: distinct logged-in users with at least one open connection to
  the game (a user on three sockets is one player).
- **Spectators**: connections not logged in, on the game and on every relay.
  Each relay writes its own count to Redis every second with a TTL of a few
  seconds (``storage.live.report_relay_spectators``); the game reads their
  sum every ``interval_s`` (``LiveStore.relay_spectators``), so a killed
  relay's spectators drop out by themselves once its key expires.

A ``presence`` frame goes out when the numbers differ from the last one sent,
at most once per ``interval_s`` however often they change (a client logging
in and out in a loop makes at most one frame a second for everyone). It is
an ordinary broadcast through the ``Hub`` (players first, in slices, behind
answers and ticks), and relays forward it like any other.

Redis down: the relays' count is unknown, so presence counts this process's
connections only (logged once, and once again when Redis is back); nothing
here raises into the game.
"""

from __future__ import annotations

import asyncio
import logging

from ..exceptions import RedisUnavailable
from ..protocol import encode_presence
from ..storage.live import LiveStore
from .clock import Clock
from .fanout import Hub

__all__ = ["PRESENCE_INTERVAL_S", "Presence"]

log = logging.getLogger("pillarpayout.server")

PRESENCE_INTERVAL_S = 1.0


class Presence:
    def __init__(
        self, hub: Hub, live: LiveStore, clock: Clock, *, interval_s: float = PRESENCE_INTERVAL_S
    ) -> None:
        self._hub = hub
        self._live = live
        self._clock = clock
        self.interval_s = interval_s
        self.relay_spectators = 0  # the relays' sum as last read (0 while Redis is down)
        self._redis_down = False
        self._sent = (0, 0)  # nobody is here before the first connection
        self._sent_at = float("-inf")
        self._wake = asyncio.Event()  # the counts may have changed, or closing
        self._closing = asyncio.Event()
        self.checks = 0  # passes of the two loops, for tests to wait on
        self._checked = asyncio.Condition()
        hub.on_presence = self._wake.set

    @property
    def players(self) -> int:
        return len(self._hub.by_user)

    @property
    def local_spectators(self) -> int:
        hub = self._hub
        return len(hub.clients) - hub.players

    def counts(self) -> tuple[int, int]:
        """(players online, spectators connected here and on the relays)."""
        return self.players, self.local_spectators + self.relay_spectators

    def close(self) -> None:
        self._closing.set()
        self._wake.set()

    async def run(self) -> None:
        """Announce changes and read the relays' counts until ``close()``."""
        await asyncio.gather(self._announce_loop(), self._poll_loop())

    async def _announce_loop(self) -> None:
        clock = self._clock
        while not self._closing.is_set():
            self._wake.clear()
            due = self._announce()
            await self._passed()
            if due is None:  # nothing waiting: until something changes
                await self._wake.wait()
            else:  # a change waits for its turn; later ones ride with it
                await clock.sleep_until(due, self._closing)

    def _announce(self) -> float | None:
        """Broadcast the counts if they changed and the last frame is old enough;
        else the instant the next one may go (``None``: nothing to send)."""
        counts = self.counts()
        if counts == self._sent:
            return None
        now = self._clock.now()
        due = self._sent_at + self.interval_s
        if now < due:
            return due
        self._sent, self._sent_at = counts, now
        self._hub.broadcast(encode_presence(*counts))
        return None

    async def _poll_loop(self) -> None:
        clock = self._clock
        while not self._closing.is_set():
            await self._poll()
            await self._passed()
            await clock.sleep_until(clock.now() + self.interval_s, self._closing)

    async def _poll(self) -> None:
        try:
            total = await self._live.relay_spectators()
        except RedisUnavailable as exc:
            if not self._redis_down:
                log.warning(
                    "presence: relays' spectators unknown, counting this process's: %s", exc
                )
                self._redis_down = True
            total = 0
        else:
            if self._redis_down:
                log.info("presence: Redis is back, relays' spectators counted again")
                self._redis_down = False
        if total != self.relay_spectators:
            self.relay_spectators = total
            self._wake.set()

    async def _passed(self) -> None:
        async with self._checked:
            self.checks += 1
            self._checked.notify_all()

    async def checked_after(self, checks: int) -> None:
        """Return once either loop (announcing, reading the relays) has made a pass
        after the ``checks``-th pass of the two."""
        async with self._checked:
            await self._checked.wait_for(lambda: self.checks > checks)
