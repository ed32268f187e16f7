"""The one backoff (pillarpayout_ws/retry.py)."""

from __future__ import annotations

import asyncio

import pytest

from pillarpayout_ws.retry import Backoff, unless_set, wait_for_event


def test_backoff_doubles_up_to_its_cap_and_resets() -> None:
    backoff = Backoff(0.05, 0.3)
    assert [backoff.failed() for _ in range(5)] == [0.05, 0.1, 0.2, 0.3, 0.3]
    assert backoff.failures == 5
    backoff.succeeded()
    assert (backoff.failures, backoff.failed()) == (0, 0.05)


@pytest.mark.parametrize(("first", "most"), [(0, 1), (-1, 1), (2, 1)])
def test_backoff_refuses_a_range_that_cannot_work(first: float, most: float) -> None:
    with pytest.raises(ValueError, match="first_s"):
        Backoff(first, most)


async def test_wait_for_event_says_whether_it_was_set() -> None:
    event = asyncio.Event()
    assert await wait_for_event(event, 0) is False
    asyncio.get_running_loop().call_soon(event.set)
    assert await wait_for_event(event, 30) is True


async def test_unless_set_returns_what_it_awaited_when_that_came_first() -> None:
    assert await unless_set(asyncio.Event(), asyncio.sleep(0, "done")) == "done"


async def test_unless_set_gives_up_the_wait_when_the_event_comes_first() -> None:
    event = asyncio.Event()
    never: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(event.set)
    assert await unless_set(event, never) is None
    assert never.cancelled()


async def test_unless_set_does_not_start_when_the_event_is_already_set() -> None:
    event = asyncio.Event()
    event.set()
    started = []

    async def work() -> str:
        started.append(1)
        return "ran"

    assert await unless_set(event, work()) is None
    assert started == []


async def test_unless_set_passes_its_own_cancellation_on() -> None:
    never: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    waiting = asyncio.ensure_future(unless_set(asyncio.Event(), never))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert never.cancelled()
