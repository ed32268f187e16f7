"""Relays: the same stream as the game, read-only, and back after a restart of either
the relay or Redis. Real game, real Redis pub/sub, real sockets; the relays log in
as a Redis user that can read only the channel and the snapshot (README, "Relays")."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
import pytest
import redis.asyncio as aioredis
from redis.exceptions import NoPermissionError
from websockets.asyncio.client import connect

from pillarpayout_ws.server.app import App
from pillarpayout_ws.server.relay import Relay, RelayConfig
from pillarpayout_ws.storage import Storage
from pillarpayout_ws.storage.embedded import EmbeddedServers
from pillarpayout_ws.storage.live import LiveStore

from ..conftest import Servers, fresh_storage
from ..server.conftest import Player, start_game

STREAM = {"betting", "running", "tick", "crashed", "bets"}
RELAY_USER = "pp-relay-test"
# README, "Relays": the ACL a relay's Redis user gets.
RELAY_ACL = (
    "on >relay-secret resetkeys %R~pp:hello resetchannels &pp:broadcast:* -@all "
    "+subscribe +unsubscribe +ping +get +select +client|setinfo"
)


@pytest.fixture
async def relay_url(servers: Servers) -> str:
    """The game's Redis, as the relays' restricted user."""
    admin = aioredis.Redis.from_url(servers.redis_url)
    try:
        command = ("ACL", "SETUSER", RELAY_USER, *RELAY_ACL.split())
        await admin.execute_command(*command)  # type: ignore[no-untyped-call]
    finally:
        await admin.aclose()
    parts = urlsplit(servers.redis_url)
    return urlunsplit(parts._replace(netloc=f"{RELAY_USER}:relay-secret@{parts.netloc}"))


async def start_relay(redis_url: str) -> Relay:
    """A relay that has its first snapshot (before that it answers 503)."""
    relay = Relay(RelayConfig(port=0), redis_url)
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
        await watcher.ws.send("not json")
        assert (await watcher.next("error"))["code"] == "read_only"
        await watcher.close()
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
        ):
            with pytest.raises(NoPermissionError):
                await forbidden
    finally:
        await client.aclose()
