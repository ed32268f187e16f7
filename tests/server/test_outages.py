"""PostgreSQL down under a running server, and bets during shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
from pathlib import Path

import pytest

from pillarpayout_ws.engine.fairness import ChainSeedSource, SeedChain
from pillarpayout_ws.engine.game import Game, GameConfig, Phase
from pillarpayout_ws.server.app import App, ServerConfig
from pillarpayout_ws.server.fanout import Hub
from pillarpayout_ws.server.metrics import Metrics
from pillarpayout_ws.server.runner import GameRunner
from pillarpayout_ws.storage import Storage, open_storage
from pillarpayout_ws.storage.flush import Flusher

from ..serving import healthz, pid_alive, postgres_pids, server_pids
from .conftest import CLIENT_SEED, SPEED, GameServer, Player, chain_with_crashes


async def test_postgres_down_gives_unavailable_and_503_then_recovers(tmp_path: Path) -> None:
    storage = await open_storage(data_dir=tmp_path / "data")
    assert storage.embedded is not None
    # The app does not see the embedded servers, so it does not restart them:
    # PostgreSQL stays down until this test starts it again.
    unsupervised = Storage(db=storage.db, live=storage.live, embedded=None)
    app = App(ServerConfig(port=0), unsupervised, time_scale=SPEED)
    await app.start()
    try:
        game = GameServer(app)
        alice, _ = await game.register("alice")
        await asyncio.to_thread(storage.embedded.stop_postgres)
        await app._check_health()  # what the health loop runs every second
        assert await asyncio.to_thread(healthz, app.port) == 503

        other = await game.connect()
        await other.send(type="login", username="alice", password="correct horse battery", ref="l1")
        assert (await other.next("error", ref="l1"))["code"] == "unavailable"
        # The game goes on without PostgreSQL: ticks flow, bets are taken.
        betting = await alice.next("betting")
        await alice.send(type="bet", amount=100, ref="b")
        assert (await alice.next("bet_accepted", ref="b"))["round_id"] == betting["round_id"]

        await asyncio.to_thread(storage.embedded.start)
        await app._check_health()
        await app.flusher.wait_until(lambda: app.flusher.healthy)
        assert await asyncio.to_thread(healthz, app.port) == 200
        await other.send(type="login", username="alice", password="correct horse battery")
        await other.next("session")
        for player in (alice, other):
            await player.close()
    finally:
        await app.stop()
        await storage.close()


async def test_bets_are_refused_once_shutdown_begins(game_server: GameServer) -> None:
    alice, _ = await game_server.register("alice")
    await alice.next("betting")
    # The first step of App.stop(): no new bets, the running round may finish.
    waiting = asyncio.create_task(game_server.app.runner.wait_round_over(0.0))
    await alice.send(type="bet", amount=100, ref="late")
    assert (await alice.next("error", ref="late"))["code"] == "shutting_down"
    await waiting
    await alice.close()


async def test_a_bug_in_one_frame_reaches_only_that_client(
    game_server: GameServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, _ = await game_server.register("alice")
    bob: Player = (await game_server.register("bob"))[0]

    def broken(*args: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr("pillarpayout_ws.server.handler.ConnectionHandler.chat", broken)
    await alice.send(type="chat", text="hello", ref="c")
    assert (await alice.next("error", ref="c"))["code"] == "internal_error"
    # Both connections and the game loop carry on.
    await alice.send(type="ping", ref="p1")
    await alice.next("pong", ref="p1")
    await bob.send(type="ping", ref="p2")
    await bob.next("pong", ref="p2")
    await bob.next("tick", within=30)
    for player in (alice, bob):
        await player.close()


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
    app = App(ServerConfig(port=0), storage, time_scale=SPEED)
    await app.start()
    try:
        game = GameServer(app)
        alice, _ = await game.register("alice")
        await alice.next("betting", within=30)
        _, redis_pid = server_pids(tmp_path / "data")
        os.kill(redis_pid, signal.SIGKILL)
        await asyncio.to_thread(wait_gone, redis_pid)
        await app._check_health()  # what the health loop runs every second
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


async def test_stopping_waits_for_the_running_round_not_for_a_pause_between_rounds(
    storage: Storage,
) -> None:
    """On a fast clock a whole cooldown and betting window can pass between two
    wake-ups of the stop; it must see that the round it waited for is over,
    even if the next one is already running (it used to wait for its timeout)."""
    seed = chain_with_crashes(150, 400, 2)
    chain = SeedChain.from_top(seed, 20)
    source = ChainSeedSource(chain, chain_id=1, client_seed=CLIENT_SEED)
    game = Game(GameConfig(betting_ms=100, cooldown_ms=100), source, next_round_id=1)
    flusher = Flusher(storage.live, storage.db)
    runner = GameRunner(game, storage.live, flusher, Hub(), Metrics())
    game.start(0)
    game.advance(100)  # round 1 runs
    assert game.phase is Phase.RUNNING
    waiting = asyncio.create_task(runner.wait_round_over(30.0))
    await asyncio.sleep(0)  # the stop begins while round 1 runs
    game.advance(100 + 60_000)  # round 1 crashed, round 2 opened...
    game.advance(game.next_due_ms() or 0)  # ...and runs
    assert (game.round_id, game.phase) == (2, Phase.RUNNING)
    runner.turn_done.set()
    assert await waiting


async def test_a_hung_postgres_is_reported_within_the_ping_timeout(tmp_path: Path) -> None:
    """A stopped (SIGSTOP) PostgreSQL accepts connections and answers nothing; the
    health check must say so at once, not after asyncpg's cancel request times out."""
    storage = await open_storage(data_dir=tmp_path / "data")
    app = App(ServerConfig(port=0), storage, time_scale=SPEED)
    await app.start()
    frozen = postgres_pids(tmp_path / "data")
    try:
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        await app._check_health()
        assert app.health["postgres"] is False
        assert await asyncio.to_thread(healthz, app.port) == 503
        await app._check_health()  # the first ping is still hanging: no second one
        assert len([t for t in asyncio.all_tasks() if t.get_name() == "ping-postgres"]) == 1
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
        await app.storage.db.ping()
        # The hung ping ends now that PostgreSQL answers (on a busy machine maybe
        # after the check below would run); only then does a check ping anew.
        await asyncio.wait({app._pings["postgres"]}, timeout=60)
        await app._check_health()
        assert app.health["postgres"] is True
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
        await app.stop()
        await storage.close()
