"""The server's background tasks, each with an owner.

``Supervisor`` keeps every task it starts until it ends. A task that dies
with an exception is logged with its traceback and calls ``on_failure`` (the
server then shuts down cleanly rather than run without its flush or its
game loop). ``every`` runs a step periodically until the supervisor is told
to stop, ``repeat`` one that waits by itself, back to back; ``stop`` waits
for the tasks to end on their own, and cancels only the ones still running
after the timeout.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from ..retry import wait_for_event

__all__ = ["Supervisor"]

log = logging.getLogger("pillarpayout.server")


class Supervisor:
    def __init__(self, on_failure: Callable[[], object]) -> None:
        self._on_failure = on_failure
        self._tasks: set[asyncio.Task[None]] = set()
        self.stopping = asyncio.Event()

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def every(self, interval_s: float, step: Callable[[], Awaitable[None]], name: str) -> None:
        """Run ``step`` now and then every ``interval_s`` until ``stop``."""

        async def loop() -> None:
            while not self.stopping.is_set():
                await step()
                await wait_for_event(self.stopping, interval_s)

        self.spawn(loop(), name)

    def repeat(self, step: Callable[[], Awaitable[bool]], retry_s: float, name: str) -> None:
        """Run ``step`` again as soon as it returns, until ``stop``; ``step`` waits
        by itself (a blocking read), and after one that returns False (it failed)
        the next waits ``retry_s``."""

        async def loop() -> None:
            while not self.stopping.is_set():
                if not await step():
                    await wait_for_event(self.stopping, retry_s)

        self.spawn(loop(), name)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task %s died", task.get_name(), exc_info=task.exception())
            self._on_failure()

    async def stop(self, timeout_s: float) -> None:
        """Tell the periodic tasks to stop; wait for every task, cancelling the stuck."""
        self.stopping.set()
        if self._tasks:
            _, stuck = await asyncio.wait(set(self._tasks), timeout=timeout_s)
            for task in stuck:
                task.cancel()
            if stuck:
                await asyncio.wait(stuck)
