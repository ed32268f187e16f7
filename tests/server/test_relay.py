"""Relays: the same stream as the game, read-only, and back after a restart of either
the relay or Redis. Real game, real Redis pub/sub, real sockets; the relays log in
as a Redis user that can read only the channel and the snapshot (README, "Relays")."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
import pytest
import redis.asyncio as aioredis
from redis.exceptions import NoPermissionError
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from pillarpayout_ws.server.app import App
from pillarpayout_ws.server.clock import ManualClock
from pillarpayout_ws.server.relay import Relay, RelayConfig
from pillarpayout_ws.settings import configure
from pillarpayout_ws.storage import Storage
from pillarpayout_ws.storage.embedded import EmbeddedServers
from pillarpayout_ws.storage.live import LiveStore, report_relay_spectators

from ..conftest import Servers, fresh_storage
from ..server.conftest import Player, start_game

STREAM = {"betting", "running", "tick", "crashed", "bets"}
RELAY_USER = "pp-relay-test"
# README, "Relays": the ACL a relay's Redis user gets.
RELAY_ACL = (
    "on >relay-secret resetkeys %R~pp:hello %W~pp:presence:* resetchannels &pp:broadcast:* "
    "-@all +subscribe +unsubscribe +ping +get +set +sadd +del +select +client|setinfo"
)


async def redis_user(servers: Servers, name: str, acl: str) -> str:
    """The game's Redis, as user ``name`` with ``acl``."""
    admin = aioredis.Redis.from_url(servers.redis_url)
    try:
        command = ("ACL", "SETUSER", name, *acl.split())
        await admin.execute_command(*command)  # type: ignore[no-untyped-call]
    finally:
        await admin.aclose()
    parts = urlsplit(servers.redis_url)
    return urlunsplit(parts._replace(netloc=f"{name}:relay-secret@{parts.netloc}"))


@pytest.fixture
async def relay_url(servers: Servers) -> str:
    """The game's Redis, as the relays' restricted user."""
    return await redis_user(servers, RELAY_USER, RELAY_ACL)


async def start_relay(redis_url: str, config: RelayConfig | None = None, **options: Any) -> Relay:
    """A relay that has its first snapshot (before that it answers 503)."""
    relay = Relay(config or RelayConfig(port=0), redis_url, **options)
    await relay.start()
    await asyncio.wait_for(relay.ready.wait(), 30)
    return relay


async def spectator(port: int) -> Player:
    player = Player(await connect(f"ws://127.0.0.1:{port}/ws"))
    await player.next("hello")
    return player


def stream(player: Player, round_id: int) -> list[dict[str, Any]]:
    """The frames of rounds from ``round_id``'s betting frame on, as received."""
    frames = [f for f in player.frames if f["type"] in STREAM]
    start = next(
        i for i, f in enumerate(frames) if f["type"] == "betting" and f["round_id"] == round_id
    )
    return frames[start:]


def sample(relay: Relay, name: str) -> float:
    return relay.metrics.registry.get_sample_value(name) or 0.0


@pytest.fixture
async def game(servers: Servers) -> AsyncIterator[App]:
    storage = await fresh_storage(servers)
    app = await start_game(storage)
    try:
        yield app
    finally:
        await app.stop()
        await storage.close()


async def test_spectators_on_two_relays_see_the_game_frame_for_frame(
    game: App, relay_url: str
) -> None:
    relays = [await start_relay(relay_url) for _ in range(2)]
    try:
        watchers = [await spectator(game.port)] + [await spectator(r.port) for r in relays]
        first = await watchers[0].next("betting", within=30)
        round_id = first["round_id"] + 1  # a whole round all three were there for
        for w in watchers:
            await w.next("crashed", within=60, round_id=round_id + 1)
        seen = [stream(w, round_id) for w in watchers]
        cut = min(len(s) for s in seen)
        assert cut > 20
        assert seen[1][:cut] == seen[0][:cut]
        assert seen[2][:cut] == seen[0][:cut]
        assert [f["type"] for f in seen[0][:cut]].count("crashed") == 2
        for relay in relays:
            assert sample(relay, "pillarpayout_relay_gaps_total") == 0
        for w in watchers:
            await w.close()
    finally:
        for relay in relays:
            await relay.stop()


async def test_a_relay_is_read_only_and_says_where_to_play(game: App, relay_url: str) -> None:
    relay = await start_relay(relay_url)
    try:
        watcher = await spectator(relay.port)
        for frame in (
            {"type": "bet", "amount": 100, "ref": "b-1"},
            {"type": "login", "username": "ada", "password": "x" * 12},
            {"type": "chat", "text": "hi"},
        ):
            await watcher.send(**frame)
            error = await watcher.next("error")
            assert error["code"] == "read_only"
            assert error["ref"] == frame.get("ref")
            assert "ws://127.0.0.1:8765/ws" in error["message"]
        assert (await watcher.next("tick"))["type"] == "tick"  # still watching
        (client,) = relay.hub.clients  # it keeps nothing of its handshake's headers
        assert client.connection.request is not None and not client.connection.request.headers
        assert client.connection.response is None
        await watcher.ws.send("not json")
        assert (await watcher.next("error"))["code"] == "read_only"
        await watcher.close()
    finally:
        await relay.stop()


async def test_a_relay_caps_the_connections_of_one_address(game: App, relay_url: str) -> None:
    """As the game does: past ``--max-connections-per-ip`` a handshake gets 429, so
    one client cannot take every file descriptor of a relay."""
    relay = await start_relay(relay_url, configure(RelayConfig, port=0, max_connections_per_ip=2))
    try:
        first, second = await spectator(relay.port), await spectator(relay.port)
        with pytest.raises(InvalidStatus) as refused:
            await connect(f"ws://127.0.0.1:{relay.port}/ws")
        assert refused.value.response.status_code == 429
        refusals = relay.metrics.registry.get_sample_value(
            "pillarpayout_relay_refused_total", {"reason": "too_many_connections"}
        )
        assert refusals == 1
        await first.close()
        third = await spectator(relay.port)  # a slot is free again
        for player in (second, third):
            await player.close()
    finally:
        await relay.stop()


async def test_a_new_relay_greets_with_the_current_round(game: App, relay_url: str) -> None:
    old = await start_relay(relay_url)
    watcher = await spectator(old.port)
    await watcher.next("tick", within=30)
    await old.stop()
    await watcher.closed  # its relay is gone: so is the connection
    new = await start_relay(relay_url)
    try:
        again = await spectator(new.port)
        hello = again.frames[0]
        live = game.runner.game.snapshot().round_id
        assert live is not None and hello["round_id"] in (live, live - 1)
        tick = await again.next("tick", within=30)
        assert tick["round_id"] >= hello["round_id"]
        await again.close()
    finally:
        await new.stop()


async def test_after_a_redis_restart_the_relay_resends_the_snapshot_and_carries_on(
    servers: Servers, tmp_path: Path
) -> None:
    own = EmbeddedServers(tmp_path / "redis")
    own.start(postgres=False, redis=True)
    base = await fresh_storage(servers)
    await base.live.close()
    storage = Storage(db=base.db, live=LiveStore(own.redis_url), embedded=None)
    app = await start_game(storage)
    relay = await start_relay(own.redis_url)
    try:
        watcher = await spectator(relay.port)
        await watcher.next("tick", within=30)
        await asyncio.to_thread(own.stop)
        await asyncio.to_thread(own.start, postgres=False, redis=True)
        hello = await watcher.next("hello", within=30)  # the resync
        assert hello["round_id"] >= 1
        after = await watcher.next("tick", within=60)
        assert after["round_id"] >= hello["round_id"]
        assert sample(relay, "pillarpayout_relay_gaps_total") >= 1
        assert sample(relay, "pillarpayout_relay_resyncs_total") >= 1
        assert not watcher.closed.done()  # the spectator never noticed more than a pause
        await watcher.close()
    finally:
        await relay.stop()
        await app.stop()
        await storage.close()
        own.stop()


async def test_healthz_and_metrics(game: App, relay_url: str) -> None:
    relay = await start_relay(relay_url)
    try:
        watcher = await spectator(relay.port)

        def get(path: str) -> tuple[int, bytes]:
            import urllib.request

            with urllib.request.urlopen(f"http://127.0.0.1:{relay.port}{path}") as resp:
                return int(resp.status), resp.read()

        status, body = await asyncio.to_thread(get, "/healthz")
        assert status == 200 and orjson.loads(body)["redis"] is True
        await watcher.next("tick", within=30)
        status, text = await asyncio.to_thread(get, "/metrics")
        assert b"pillarpayout_relay_connections 1.0" in text
        assert b"pillarpayout_relay_frames_total" in text
        await watcher.close()
    finally:
        await relay.stop()


async def test_the_relay_user_reads_only_the_stream(game: App, relay_url: str) -> None:
    """Nothing of the write-ahead (the round's records, its bets) and no write."""
    client = aioredis.Redis.from_url(relay_url)
    try:
        assert await client.get("pp:hello") is not None
        for forbidden in (
            client.lrange(f"pp:round:{game.runner.round_id}", 0, -1),
            client.zrange("pp:rounds", 0, -1),
            client.hgetall("active_bets"),
            client.keys("*"),
            client.set("pp:hello", b"forged"),
            client.publish("pp:broadcast:0", b"F1 {}"),
            client.get("pp:presence:relays"),  # presence keys: written, never read
            client.set("game_state", b"forged"),
        ):
            with pytest.raises(NoPermissionError):
                await forbidden
        await report_relay_spectators(client, "test-relay", 0)  # its own count: allowed
    finally:
        await client.aclose()


async def test_a_relays_spectators_count_in_the_game_and_leave_with_it(
    game: App, relay_url: str
) -> None:
    """The relay reports its count (here when its clock says so); the game adds it;
    the relay's clients get the game's presence frames; a relay stopping cleanly
    takes its count away at once."""
    clock = ManualClock()
    relay = await start_relay(relay_url, clock=clock)
    stopped = False
    try:
        here = await spectator(game.port)
        there = [await spectator(relay.port) for _ in range(2)]
        clock.advance(1)  # the relay's next report: 2
        assert await here.next("presence", within=30, spectators=3) == {
            "type": "presence",
            "players": 0,
            "spectators": 3,
        }
        await there[0].next("presence", within=30, spectators=3)  # forwarded as it is
        late = await spectator(relay.port)
        assert set(late.frames[0]["presence"]) == {"players", "spectators"}  # the game's
        await relay.stop()
        stopped = True
        await here.next("presence", within=30, spectators=1)
        assert await game.storage.live.relay_spectators() == 0
        await here.close()
    finally:
        if not stopped:
            await relay.stop()


async def test_a_killed_relays_count_expires_by_itself(game: App, relay_url: str) -> None:
    """A relay that stops refreshing (its clock frozen here, as if killed) is out of
    the game's count once its key's TTL (1 s here) has passed."""
    clock = ManualClock()
    relay = await start_relay(relay_url, clock=clock, presence_ttl_s=1.0)
    try:
        here = await spectator(game.port)
        there = await spectator(relay.port)
        clock.advance(1)
        await here.next("presence", within=30, spectators=2)
        await here.next("presence", within=30, spectators=1)  # the TTL, nothing else
        assert not there.closed.done()
    finally:
        await relay.stop()


async def test_a_relay_that_may_not_report_still_relays(
    game: App, servers: Servers, caplog: pytest.LogCaptureFixture
) -> None:
    """A relay user made before presence (no write at all): the relay says so once."""
    old_acl = RELAY_ACL.replace(" %W~pp:presence:*", "").replace(" +set +sadd +del", "")
    url = await redis_user(servers, "pp-relay-old", old_acl)
    caplog.set_level(logging.INFO, logger="pillarpayout.relay")
    clock = ManualClock()
    relay = await start_relay(url, clock=clock)
    try:
        watcher = await spectator(relay.port)
        for _ in range(3):
            await relay.report_now()
        await watcher.next("tick", within=30)
        failed = [r for r in caplog.records if "cannot report" in r.getMessage()]
        assert len(failed) == 1 and "pp:presence" in failed[0].getMessage()
        await watcher.close()
    finally:
        await relay.stop()
