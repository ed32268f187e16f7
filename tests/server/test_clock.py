"""Injected time (server/clock.py)."""

from __future__ import annotations

import asyncio
import time

import pytest

from pillarpayout_ws.server.clock import ManualClock, MonotonicClock, ScaledClock


async def test_a_manual_clock_wakes_sleepers_in_order_when_moved() -> None:
    clock = ManualClock(start=10.0)
    never = asyncio.Event()
    woke: list[str] = []

    async def sleep(name: str, until: float) -> None:
        await clock.sleep_until(until, never)
        woke.append(name)

    tasks = {n: asyncio.create_task(sleep(n, t)) for n, t in (("b", 12.0), ("a", 11.0))}
    await asyncio.sleep(0)  # both asleep
    clock.advance(0.5)
    done, _ = await asyncio.wait(tasks.values(), timeout=0.05)
    assert done == set()
    clock.advance_to(11.0)
    await asyncio.wait_for(tasks["a"], 30)
    assert woke == ["a"] and not tasks["b"].done()
    clock.advance_to(5.0)  # never backwards
    assert clock.now() == 11.0
    clock.advance(1.0)
    await asyncio.wait_for(tasks["b"], 30)
    assert woke == ["a", "b"]
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1)


async def test_a_wake_event_ends_any_sleep_early() -> None:
    wake = asyncio.Event()
    for clock in (ManualClock(), MonotonicClock(), ScaledClock(10)):
        wake.clear()
        asyncio.get_running_loop().call_soon(wake.set)
        await asyncio.wait_for(clock.sleep_until(clock.now() + 3600, wake), 30)


async def test_a_scaled_clock_runs_faster() -> None:
    clock = ScaledClock(1000)
    before = clock.now()
    await clock.sleep_until(before + 5.0, asyncio.Event())  # 5 ms of real time
    assert clock.now() >= before + 5.0
    with pytest.raises(ValueError, match="positive"):
        ScaledClock(0)


def test_the_real_clocks_count_from_unix_time() -> None:
    # The game stores its times (bets' placed_at, rounds' started_at) as Unix times.
    for clock in (MonotonicClock(), ScaledClock(10)):
        assert abs(clock.now() - time.time()) < 60
