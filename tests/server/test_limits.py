"""Rate limits, oversize frames and slow consumers."""

from __future__ import annotations

import asyncio
import base64
import os
import socket

import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin

from pillarpayout_ws.server.app import App, ServerConfig
from pillarpayout_ws.storage import Storage

from .conftest import GameServer


async def test_chat_is_broadcast_stored_and_rate_limited(game_server: GameServer) -> None:
    alice, _ = await game_server.register("alice")
    spectator = await game_server.connect()
    await alice.send(type="chat", text="  hello pillar  ")
    line = await spectator.next("chat")
    assert (line["username"], line["text"]) == ("alice", "hello pillar")
    for i in range(5):
        await alice.send(type="chat", text=f"line {i}", ref=f"c{i}")
    limited = await alice.next("error")  # the burst is 5: the first line used one
    assert (limited["code"], limited["ref"]) == ("rate_limited", "c4")
    app = game_server.app
    await app._save_chat()
    rows = await app.storage.db.fetch("SELECT message FROM chat_messages ORDER BY id")
    assert rows[0]["message"] == "hello pillar"
    newcomer = await game_server.connect()
    hello = await newcomer.next("hello")
    assert hello["chat"][0]["text"] == "hello pillar"
    for player in (alice, spectator, newcomer):
        await player.close()


async def test_a_flood_is_limited_then_closed(game_server: GameServer) -> None:
    flooder = await game_server.connect()
    calm = await game_server.connect()
    await flooder.next("hello")
    frame = orjson.dumps({"type": "ping"}).decode()
    for _ in range(200):
        await flooder.ws.send(frame)
    await flooder.next("error", code="rate_limited")
    await flooder.closed
    assert flooder.ws.close_code == 1008
    await calm.send(type="ping", ref="fine")
    await calm.next("pong", ref="fine")
    await calm.close()


async def test_an_oversize_frame_closes_with_1009(game_server: GameServer) -> None:
    player = await game_server.connect()
    await player.ws.send("x" * 5000)
    await player.closed
    assert player.ws.close_code == 1009


async def test_a_slow_consumer_skips_ticks_then_is_disconnected(game_server: GameServer) -> None:
    app = game_server.app
    hub = app.hub
    hub.tick_buffer_limit, hub.hard_buffer_limit = 1024, 64 * 1024
    # A raw client that completes the handshake and then never reads.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", app.port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    healthy = await game_server.connect()
    await healthy.next("hello")
    assert len(hub.clients) == 2
    (slow,) = [c for c in hub.clients if c.connection.remote_address[1] == sock.getsockname()[1]]
    big = orjson.dumps({"type": "crashed", "padding": "x" * 30_000})
    async with asyncio.timeout(30):
        # Fill the kernel's buffers until frames queue up in the transport...
        while slow.connection.transport.get_write_buffer_size() <= hub.tick_buffer_limit:
            hub.broadcast(big)  # never droppable
            await asyncio.sleep(0)  # let the loop hand the kernel what it takes
        # ...so the next ticks skip the slow client (the healthy one gets them)...
        skipped = hub.stats.ticks_skipped
        while hub.stats.ticks_skipped == skipped:
            app.runner.turn_done.clear()
            await app.runner.turn_done.wait()
        # ...and a frame that must not be skipped, past the hard limit, disconnects it.
        while hub.stats.slow_disconnects == 0:
            hub.broadcast(big)
            await asyncio.sleep(0)
    assert hub.stats.slow_disconnects == 1
    metrics = app._metrics_response().body.decode()
    assert "pillarpayout_slow_disconnects 1.0" in metrics
    # The healthy client is untouched.
    await healthy.send(type="ping", ref="ok")
    await healthy.next("pong", ref="ok")
    await healthy.close()
    sock.close()


async def test_connections_per_ip_are_capped(storage_for_game: Storage) -> None:
    app = App(ServerConfig(port=0, max_connections_per_ip=2, limit_loopback=True), storage_for_game)
    await app.start()
    try:
        url = f"ws://127.0.0.1:{app.port}/ws"
        first, second = await connect(url), await connect(url)
        with pytest.raises(InvalidStatus) as refused:
            await connect(url)
        assert refused.value.response.status_code == 429
        await first.close()
        third = await connect(url)  # a slot is free again
        for ws in (second, third):
            await ws.close()
    finally:
        await app.stop()


async def test_the_origin_allowlist(storage_for_game: Storage) -> None:
    app = App(ServerConfig(port=0, allowed_origins=("https://play.example",)), storage_for_game)
    await app.start()
    try:
        url = f"ws://127.0.0.1:{app.port}/ws"
        with pytest.raises(InvalidStatus) as refused:
            await connect(url, origin=Origin("https://evil.example"))
        assert refused.value.response.status_code == 403
        ok = await connect(url, origin=Origin("https://play.example"))
        await ok.close()
        no_origin = await connect(url)  # not a browser
        await no_origin.close()
    finally:
        await app.stop()


async def test_a_closed_connection_leaves_the_fanout_at_once(game_server: GameServer) -> None:
    hub = game_server.app.hub
    player = await game_server.connect()
    await player.next("hello")
    (client,) = hub.clients
    assert client.transport in hub._open
    await player.close()
    # Gone from the write loop as soon as its closing frame went out, so no
    # tick can follow it; gone from the hub once the handler has finished.
    assert client.transport not in hub._open
