"""Who is here (server/presence.py): ``hello`` and the ``presence`` frame, on a game
whose time moves only when the test says, so "at most once a second" is checked
by moving the clock, never by waiting."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from pillarpayout_ws.server.clock import ManualClock
from pillarpayout_ws.storage import Storage
from pillarpayout_ws.storage.embedded import EmbeddedServers
from pillarpayout_ws.storage.live import LiveStore, report_relay_spectators

from ..conftest import Servers, fresh_storage
from .conftest import ManualGame, Player, start_game

# Also run against Debian's PostgreSQL and Redis (python -m tests.external, in make test).
pytestmark = pytest.mark.external

PASSWORD = "correct horse battery"


def presence(players: int, spectators: int) -> dict[str, Any]:
    return {"type": "presence", "players": players, "spectators": spectators}


async def presence_frames_until_pong(player: Player, ref: str) -> list[dict[str, Any]]:
    """The ``presence`` frames ``player`` got from now until the answer to a ping:
    what the server had sent it before answering."""
    start = len(player.frames)
    await player.send(type="ping", ref=ref)
    await player.answer(ref)
    end = next(i for i, f in enumerate(player.frames) if f.get("ref") == ref)
    return [f for f in player.frames[start:end] if f["type"] == "presence"]


async def test_hello_carries_presence_and_a_change_follows_at_most_once_a_second(
    manual_game: ManualGame,
) -> None:
    counter = manual_game.app.presence
    watcher = await manual_game.connect()
    hello = await watcher.next("hello")
    assert hello["presence"] == {"players": 0, "spectators": 0}  # the newcomer not yet in
    assert await watcher.next("presence") == presence(0, 1)
    checks = counter.checks
    alice, _ = await manual_game.register("alice")
    assert alice.frames[0]["presence"] == {"players": 0, "spectators": 1}
    await counter.checked_after(checks)  # it saw the change, within the same second
    assert await presence_frames_until_pong(watcher, "p1") == []
    await manual_game.advance(1000)
    assert await watcher.next("presence") == presence(1, 1)
    # Nothing changed since: another second, and no frame.
    checks = counter.checks
    await manual_game.advance(1000)
    await counter.checked_after(checks)
    assert await presence_frames_until_pong(watcher, "p2") == []
    for player in (alice, watcher):
        await player.close()


async def test_a_user_counts_once_whatever_their_connections_and_leaving_lowers_the_counts(
    manual_game: ManualGame,
) -> None:
    app = manual_game.app
    watcher = await manual_game.connect()
    await watcher.next("hello")
    assert await watcher.next("presence") == presence(0, 1)
    alice, session = await manual_game.register("alice")
    await manual_game.advance(1000)
    assert await watcher.next("presence") == presence(1, 1)
    again = await manual_game.resume(session["token"])  # alice's second socket
    assert (app.presence.counts(), app.hub.players) == ((1, 1), 2)
    checks = app.presence.checks
    await manual_game.advance(1000)
    await app.presence.checked_after(checks)
    assert await presence_frames_until_pong(watcher, "p1") == []  # still (1, 1): no frame
    await again.close()
    assert app.presence.counts() == (1, 1)
    await alice.close()
    await manual_game.advance(1000)
    assert await watcher.next("presence") == presence(0, 1)
    bob, _ = await manual_game.register("bob")
    await manual_game.advance(1000)
    assert await watcher.next("presence") == presence(1, 1)
    await bob.send(type="logout")
    await bob.next("logged_out")
    await manual_game.advance(1000)
    assert await watcher.next("presence") == presence(0, 2)
    for player in (bob, watcher):
        await player.close()


async def test_logging_in_and_out_in_a_loop_makes_at_most_one_frame_a_second(
    manual_game: ManualGame,
) -> None:
    watcher = await manual_game.connect()
    await watcher.next("hello")
    await watcher.next("presence")
    mallory, _ = await manual_game.register("mallory")
    for i in range(4):
        await mallory.send(type="logout")
        await mallory.next("logged_out")
        await mallory.send(type="login", username="mallory", password=PASSWORD, ref=f"l{i}")
        await mallory.next("session")
    await mallory.send(type="logout")
    await mallory.next("logged_out")
    assert await presence_frames_until_pong(watcher, "p1") == []  # the same game second
    await manual_game.advance(1000)
    assert await watcher.next("presence") == presence(0, 2)
    assert await presence_frames_until_pong(watcher, "p2") == []  # one frame for them all
    for player in (mallory, watcher):
        await player.close()


async def test_with_redis_down_presence_counts_the_local_ones_and_the_game_goes_on(
    servers: Servers, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    own = EmbeddedServers(tmp_path / "redis")
    own.start(postgres=False, redis=True)
    base = await fresh_storage(servers)
    await base.live.close()
    storage = Storage(db=base.db, live=LiveStore(own.redis_url), embedded=None)
    relay_side = aioredis.Redis.from_url(own.redis_url)
    clock = ManualClock()
    app = await start_game(storage, clock=clock, stop_timeout_s=0, betting_ms=600_000)
    game = ManualGame(app, clock)
    try:
        await report_relay_spectators(relay_side, "r1", 5, ttl_s=600)  # a relay's report
        watcher = await game.connect()
        await watcher.next("hello")
        clock.advance(1)
        assert await watcher.next("presence", spectators=6) == presence(0, 6)
        caplog.set_level(logging.INFO, logger="pillarpayout.server")
        await asyncio.to_thread(own.stop)
        clock.advance(1)
        assert await watcher.next("presence") == presence(0, 1)  # this process's only
        checks = app.presence.checks
        clock.advance(1)
        await app.presence.checked_after(checks)  # read Redis again, and failed again
        down = [r for r in caplog.records if "relays' spectators unknown" in r.getMessage()]
        assert len(down) == 1  # said once
        await asyncio.to_thread(own.start, postgres=False, redis=True)
        clock.advance(1)
        assert await watcher.next("presence", within=30) == presence(0, 6)
        assert any("Redis is back" in r.getMessage() for r in caplog.records)
        assert not app._stopping.is_set()  # no task died
        await watcher.close()
    finally:
        await relay_side.aclose()
        await app.stop()
        await storage.close()
        own.stop()
