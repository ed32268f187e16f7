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


async def test_repeat_runs_back_to_back_and_waits_only_after_a_failure() -> None:
    """A desk's step blocks by itself: it runs again at once after it returns,
    and only after a failed step (Redis down) waits ``retry_s`` first."""
    supervisor = Supervisor(on_failure=lambda: None)
    outcomes = [True, True, True, False]  # True: done, False: failed
    ran = 0
    failed = asyncio.Event()

    async def step() -> bool:
        nonlocal ran
        ran += 1
        if ran == len(outcomes):
            failed.set()
        return outcomes[ran - 1] if ran <= len(outcomes) else True

    supervisor.repeat(step, 3600, "desk")
    await asyncio.wait_for(failed.wait(), 30)  # no wait between the first four
    for _ in range(20):
        await asyncio.sleep(0)  # loop turns, in which an immediate retry would run
    assert ran == 4  # the failure's hour-long wait
    await supervisor.stop(30)  # ends that wait at once
    assert ran == 4


async def test_repeat_stops_a_step_that_waits_for_stop() -> None:
    supervisor = Supervisor(on_failure=lambda: None)
    ran = 0

    async def step() -> bool:
        nonlocal ran
        ran += 1
        await supervisor.stopping.wait()  # as a desk's wait gives up when told
        return True

    supervisor.repeat(step, 3600, "desk")
    await asyncio.sleep(0)
    await supervisor.stop(30)
    assert ran == 1
