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

__all__ = ["Backoff", "wait_for_event"]


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
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout_s)
    return event.is_set()
