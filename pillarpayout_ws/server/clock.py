"""Game time for the server: injected, like the engine's ``now``.

The game loop and the rate limiters never read ``time.monotonic`` themselves;
they hold a ``Clock``:

- ``MonotonicClock``: production, real monotonic seconds from the Unix time
  it was made at (so the game's stored times are Unix times).
- ``ScaledClock(speed)``: real time run ``speed`` times faster, for tests
  about sockets and concurrency that still want a 40 s round in 4 s.
- ``ManualClock``: time moves only when a test says so (``advance``), so a
  test about game logic plays a round on real sockets without any sleep, the
  way the engine's tests pass ``now`` by hand (trio's ``MockClock`` is the
  model).

A clock answers ``now()`` in seconds and can ``sleep_until`` an instant of its
own time, returning early when a wake-up event is set.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol

from ..retry import wait_for_event

__all__ = ["Clock", "ManualClock", "MonotonicClock", "ScaledClock"]


class Clock(Protocol):
    def now(self) -> float:
        """Seconds on this clock (monotonic, any origin)."""
        ...

    async def sleep_until(self, deadline: float, wake: asyncio.Event) -> None:
        """Return once ``now() >= deadline`` or ``wake`` is set, whichever comes first."""
        ...


class MonotonicClock:
    """Monotonic seconds counted from the Unix time at its creation: the times the
    game stores (a bet's ``placed_at``, a round's ``started_at``) are Unix times,
    and a step of the system clock never moves the game."""

    def __init__(self) -> None:
        self._offset = time.time() - time.monotonic()

    def now(self) -> float:
        return time.monotonic() + self._offset

    async def sleep_until(self, deadline: float, wake: asyncio.Event) -> None:
        await wait_for_event(wake, max(0.0, deadline - self.now()))


class ScaledClock:
    """Real time, ``speed`` times faster."""

    def __init__(self, speed: float) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        self.speed = speed
        self._origin = time.monotonic()
        self._start = time.time()  # Unix time, like MonotonicClock's

    def now(self) -> float:
        return self._start + (time.monotonic() - self._origin) * self.speed

    async def sleep_until(self, deadline: float, wake: asyncio.Event) -> None:
        await wait_for_event(wake, max(0.0, deadline - self.now()) / self.speed)


class ManualClock:
    """Time that moves only by ``advance``; sleepers wake when it passes their deadline."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._order = itertools.count()
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward and wake every sleeper whose deadline it reached."""
        if seconds < 0:
            raise ValueError("time does not run backwards")
        self.advance_to(self._now + seconds)

    def advance_to(self, instant: float) -> None:
        """Move time to ``instant`` (never backwards) and wake the sleepers it reached."""
        self._now = max(self._now, instant)
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, woken = heapq.heappop(self._sleepers)
            if not woken.done():
                woken.set_result(None)

    async def sleep_until(self, deadline: float, wake: asyncio.Event) -> None:
        if deadline <= self._now or wake.is_set():
            return
        reached = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (deadline, next(self._order), reached))
        woken = asyncio.ensure_future(wake.wait())
        try:
            await asyncio.wait({reached, woken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            woken.cancel()
            reached.cancel()
