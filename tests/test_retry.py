"""The one backoff (pillarpayout_ws/retry.py)."""

from __future__ import annotations

import asyncio

import pytest

from pillarpayout_ws.retry import Backoff, wait_for_event


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
