"""Waiting and retrying: the one backoff every loop of the project uses.

The group commit, the flush, the relays' publisher, a relay's subscription
and the periodic server tasks all wait the same way: for an event, at most
some seconds (``wait_for_event``), and after a failure a little longer each
time (``Backoff``: doubling from ``first_s`` up to ``max_s``, back to
``first_s`` after a success).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")

__all__ = ["Backoff", "unless_set", "wait_for_event"]


class Backoff:
    """Delays after consecutive failures: ``first_s``, doubled each time up to ``max_s``."""

    def __init__(self, first_s: float, max_s: float) -> None:
        if not 0 < first_s <= max_s:
            raise ValueError(f"need 0 < first_s <= max_s, got {first_s}, {max_s}")
        self.first_s = first_s
        self.max_s = max_s
        self._next = first_s
        self.failures = 0  # in a row, since the last success

    def failed(self) -> float:
        """Another failure: the seconds to wait before the next try."""
        self.failures += 1
        delay = self._next
        self._next = min(self.max_s, delay * 2)
        return delay

    def succeeded(self) -> None:
        self.failures = 0
        self._next = self.first_s


async def wait_for_event(event: asyncio.Event, timeout_s: float) -> bool:
    """Wait until ``event`` is set or ``timeout_s`` passed; whether it was set."""
    if not event.is_set():
        # A deadline on this task, not asyncio.wait_for: no task per wait.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await event.wait()
    return event.is_set()


async def unless_set(event: asyncio.Event, awaitable: Awaitable[T]) -> T | None:
    """Await ``awaitable``, unless ``event`` is set first: then cancel it and return None
    (or what it returned, had it just finished)."""
    if event.is_set():
        if asyncio.iscoroutine(awaitable):
            awaitable.close()
        return None
    task = asyncio.ensure_future(awaitable)
    stop = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait((task, stop), return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        task.cancel()
        raise
    finally:
        stop.cancel()
    if not task.done():
        task.cancel()
    try:
        return await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise  # we are cancelled ourselves
        return None
