"""Background tasks and their owner (server/tasks.py)."""

from __future__ import annotations

import asyncio

from pillarpayout_ws.server.tasks import Supervisor


async def test_a_task_that_dies_is_reported_and_stops_the_server() -> None:
    failed = asyncio.Event()
    supervisor = Supervisor(on_failure=failed.set)

    async def broken() -> None:
        raise RuntimeError("a bug")

    supervisor.spawn(broken(), "broken")
    await asyncio.wait_for(failed.wait(), 30)
    await supervisor.stop(1.0)


async def test_every_runs_until_stop_and_stop_cancels_only_the_stuck() -> None:
    supervisor = Supervisor(on_failure=lambda: None)
    steps = 0
    stepped = asyncio.Event()

    async def step() -> None:
        nonlocal steps
        steps += 1
        stepped.set()

    async def forever() -> None:
        await asyncio.Event().wait()

    supervisor.every(3600, step, "periodic")
    stuck = supervisor.spawn(forever(), "stuck")
    await stepped.wait()
    await supervisor.stop(0.05)
    assert steps == 1  # it ran once, then stopped at once instead of waiting an hour
    assert stuck.cancelled()
