"""Health (server/health.py): stores down, hung or dead under a running server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
from pathlib import Path

from pillarpayout_ws.server.app import App, ServerConfig
from pillarpayout_ws.server.clock import ScaledClock
from pillarpayout_ws.settings import configure
from pillarpayout_ws.storage import Storage, open_storage

from ..serving import healthz, pid_alive, postgres_pids, server_pids
from .conftest import SPEED, GameServer, start_game


async def test_postgres_down_gives_unavailable_and_503_then_recovers(tmp_path: Path) -> None:
    storage = await open_storage(data_dir=tmp_path / "data")
    assert storage.embedded is not None
    # The app does not see the embedded servers, so it does not restart them:
    # PostgreSQL stays down until this test starts it again.
    unsupervised = Storage(db=storage.db, live=storage.live, embedded=None)
    # Short rounds with bounded crash points: the wait for the next betting
    # window below cannot outlast its timeout (a server-random chain's round
    # may run for minutes of game time).
    app = await start_game(unsupervised, betting_ms=10_000)
    try:
        game = GameServer(app)
        alice, _ = await game.register("alice")
        await asyncio.to_thread(storage.embedded.stop_postgres)
        await app.health.check()  # what the health loop runs every second
        assert await asyncio.to_thread(healthz, app.port) == 503

        other = await game.connect()
        await other.send(type="login", username="alice", password="correct horse battery", ref="l1")
        assert (await other.next("error", ref="l1"))["code"] == "unavailable"
        # The game goes on without PostgreSQL: ticks flow, bets are taken.
        betting = await alice.next("betting")
        await alice.send(type="bet", amount=100, ref="b")
        assert (await alice.next("bet_accepted", ref="b"))["round_id"] == betting["round_id"]

        await asyncio.to_thread(storage.embedded.start)
        await app.health.check()
        await app.flusher.wait_until(lambda: app.flusher.healthy)
        assert await asyncio.to_thread(healthz, app.port) == 200
        await other.send(type="login", username="alice", password="correct horse battery")
        await other.next("session")
        for player in (alice, other):
            await player.close()
    finally:
        await app.stop()
        await storage.close()


def wait_gone(pid: int) -> None:
    """Until process ``pid`` has exited (a pidfd becomes readable then)."""
    with contextlib.suppress(ProcessLookupError):
        fd = os.pidfd_open(pid)
        try:
            select.select([fd], [], [], 30)
        finally:
            os.close(fd)


async def test_a_dead_embedded_redis_is_restarted_and_the_game_goes_on(tmp_path: Path) -> None:
    storage = await open_storage(data_dir=tmp_path / "data")
    assert storage.embedded is not None
    app = App(configure(ServerConfig, port=0), storage, clock=ScaledClock(SPEED))
    await app.start()
    try:
        game = GameServer(app)
        alice, _ = await game.register("alice")
        await alice.next("betting", within=30)
        _, redis_pid = server_pids(tmp_path / "data")
        os.kill(redis_pid, signal.SIGKILL)
        await asyncio.to_thread(wait_gone, redis_pid)
        await app.health.check()  # what the health loop runs every second
        _, revived = server_pids(tmp_path / "data")
        assert revived != redis_pid and pid_alive(revived)
        # Acks need Redis: a bet in the next window is taken again.
        betting = await alice.next("betting", within=60)
        await alice.send(type="bet", amount=100, ref="after")
        accepted = await alice.next("bet_accepted", ref="after", within=30)
        assert accepted["round_id"] == betting["round_id"]
        await alice.close()
    finally:
        await app.stop()
        await storage.close()


async def test_a_hung_postgres_is_reported_within_the_ping_timeout(tmp_path: Path) -> None:
    """A stopped (SIGSTOP) PostgreSQL accepts connections and answers nothing; the
    health check must say so at once, not after asyncpg's cancel request times out."""
    storage = await open_storage(data_dir=tmp_path / "data")
    app = App(configure(ServerConfig, port=0), storage, clock=ScaledClock(SPEED))
    await app.start()
    frozen = postgres_pids(tmp_path / "data")
    try:
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        await app.health.check()
        assert app.health.state["postgres"] is False
        assert await asyncio.to_thread(healthz, app.port) == 503
        await app.health.check()  # the first ping is still hanging: no second one
        assert len([t for t in asyncio.all_tasks() if t.get_name() == "ping-postgres"]) == 1
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
        await app.storage.db.ping()
        # The hung ping ends now that PostgreSQL answers (on a busy machine maybe
        # after the check below would run); only then does a check ping anew.
        await asyncio.wait_for(app.health.wait_pings(), 60)
        await app.health.check()
        assert app.health.state["postgres"] is True
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
        await app.stop()
        await storage.close()
