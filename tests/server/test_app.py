"""The server's lifecycle (server/app.py): one server per database, and a clean stop."""

from __future__ import annotations

import asyncio

import pytest

from pillarpayout_ws.exceptions import ConfigError
from pillarpayout_ws.server import app as app_module
from pillarpayout_ws.server.app import App
from pillarpayout_ws.server.clock import ManualClock
from pillarpayout_ws.storage import Storage
from pillarpayout_ws.storage.postgres import SERVER_LOCK_KEY

from ..conftest import another_process
from .conftest import ManualGame, fast_config, start_game


async def test_a_second_server_on_the_same_database_is_refused(manual_game: ManualGame) -> None:
    other = await another_process(manual_game.app.storage)
    try:
        second = App(fast_config(), other)
        with pytest.raises(ConfigError, match="already running on this database"):
            await second.start()
    finally:
        await other.close()


async def test_a_dead_background_task_stops_the_server(manual_game: ManualGame) -> None:
    app = manual_game.app

    async def broken() -> None:
        raise RuntimeError("a bug in a background task")

    app.tasks.spawn(broken(), "broken")
    await asyncio.wait_for(app.wait_stopping(), 30)


async def test_stop_voids_the_running_round_flushes_and_says_goodbye(
    manual_game: ManualGame,
) -> None:
    """``stop`` on a round that will not end (time stands still): the round is
    voided, the bet refunded through the ledger, and every socket closed with 1001."""
    app = manual_game.app
    alice, session = await manual_game.register("alice")
    spectator = await manual_game.connect()
    await spectator.next("hello")
    await alice.send(type="bet", amount=1000, ref="b")
    await alice.next("bet_accepted", ref="b")
    await manual_game.to_phase("running")
    await app.stop()
    for player in (alice, spectator):
        await player.closed
        assert player.ws.close_code == 1001
    # Alice heard of her refund before the server went away.
    refund = await alice.next("balance")
    assert (refund["reason"], refund["amount"], refund["balance"]) == ("refund", 1000, 100_000)
    assert refund["round_id"] == app.runner.round_id
    assert not [f for f in spectator.frames if f["type"] == "balance"]
    rows = await app.storage.db.fetch(
        "SELECT kind, amount FROM ledger WHERE user_id = $1 ORDER BY id", session["user"]["id"]
    )
    assert [(r["kind"], r["amount"]) for r in rows][-2:] == [("bet", -1000), ("refund", 1000)]
    assert await app.storage.live.pending_round_ids() == []


async def end_lock_session(other: Storage) -> None:
    """End the PostgreSQL session that holds the server lock, as a PostgreSQL
    restart, a failover or an idle timeout would, and wait until it is gone."""
    ended = await other.db._pool.fetchval(
        "SELECT bool_and(pg_terminate_backend(pid, 10000)) FROM pg_locks "
        "WHERE locktype = 'advisory' AND objid = $1 AND granted",
        SERVER_LOCK_KEY,
    )
    assert ended


async def test_a_server_lock_whose_session_ended_is_taken_again(
    storage_for_game: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without it, the command line's `grant` would take the free lock and write
    to PostgreSQL beside the running game (whose balances would not know)."""
    monkeypatch.setattr(app_module, "LOCK_CHECK_S", 3600.0)  # checked by hand below
    app = await start_game(storage_for_game, clock=ManualClock(), stop_timeout_s=0)
    other = await another_process(storage_for_game)
    try:
        await end_lock_session(other)
        await app.keep_lock()
        assert not await other.db.try_server_lock()  # the running server's again
        assert not app.lost_lock
    finally:
        await other.close()
        await app.stop()


async def test_a_server_whose_lock_another_process_took_stops(
    storage_for_game: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app_module, "LOCK_CHECK_S", 3600.0)
    monkeypatch.setattr(app_module, "LOCK_LOST_S", 0.0)
    app = await start_game(storage_for_game, clock=ManualClock(), stop_timeout_s=0)
    other = await another_process(storage_for_game)
    try:
        await end_lock_session(other)
        assert await other.db.try_server_lock()  # as a `grant` with no server would
        await app.keep_lock()
        assert app.lost_lock
        await asyncio.wait_for(app.wait_stopping(), 10)
    finally:
        await other.db.release_server_lock()
        await other.close()
        await app.stop()


async def test_a_stop_after_the_game_loop_died_still_flushes_what_redis_holds(
    storage_for_game: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loop died of a bug mid-round: the stop asked the dead loop for its open
    bets (an assertion), raised, and flushed nothing; the next start settled the
    round. Now the stop flushes the write-ahead (the open round void, the bet
    refunded) without asking the loop."""
    clock = ManualClock()
    app = await start_game(storage_for_game, clock=clock, stop_timeout_s=0)
    game = ManualGame(app, clock)
    alice, _ = await game.register("alice")
    await alice.send(type="bet", amount=1000, ref="b")
    await alice.next("bet_accepted", ref="b")

    async def broken() -> None:
        raise RuntimeError("a bug in the game loop")

    monkeypatch.setattr(app.runner, "_turn", broken)
    clock.advance(5.0)  # past the betting window: the loop takes a turn
    await asyncio.wait_for(app.wait_stopping(), 30)
    await app.stop()
    assert await storage_for_game.live.pending_round_ids() == []
    user = await storage_for_game.db.user_by_name("alice")
    assert user is not None and user.balance == 100_000  # refunded
    await alice.close()
