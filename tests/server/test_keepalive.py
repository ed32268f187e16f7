"""Keepalive (server/keepalive.py): one timer pings every connection; the silent are closed.

The first test drives the cohorts by hand with stand-in connections; the
second runs the game server with a short interval against a raw client that
never answers a ping and a websockets client that does.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
from typing import Any, cast

from pillarpayout_ws.server.keepalive import PING_HEADER, Keepalive
from pillarpayout_ws.server.routes import metrics_response

from .conftest import GameServer


class Writes:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)


class Connection:
    """Stands in for a GameConnection: a transport and the last ping not answered."""

    unanswered_ping: bytes | None = None

    def __init__(self) -> None:
        self.transport = Writes()

    def pings(self) -> int:
        assert all(w.startswith(PING_HEADER) and len(w) == 6 for w in self.transport.written)
        return len(self.transport.written)

    def pong(self) -> None:
        """As GameConnection does with a pong that echoes the last ping."""
        assert self.unanswered_ping == self.transport.written[-1][2:]
        self.unanswered_ping = None


async def test_each_connection_is_pinged_once_an_interval_and_the_silent_are_handed_over() -> None:
    silent: list[Connection] = []
    keepalive = Keepalive(cast(Any, silent.append), interval_s=1000, steps=4)
    connections = [Connection() for _ in range(10)]
    for connection in connections:
        keepalive.add(cast(Any, connection.transport), cast(Any, connection))
    left = connections.pop()
    keepalive.discard(cast(Any, left.transport))

    for _ in range(4):  # one interval
        keepalive.turn()
    assert [c.pings() for c in connections] == [1] * 9
    assert left.pings() == 0 and silent == []

    answering = connections[::2]
    for connection in answering:
        connection.pong()
    for _ in range(4):
        keepalive.turn()
    quiet = [c for c in connections if c not in answering]
    assert set(silent) == set(quiet) and len(silent) == len(quiet)
    assert [c.pings() for c in answering] == [2] * len(answering)
    assert all(c.pings() == 1 for c in silent)  # no ping after being handed over

    for connection in answering:
        connection.pong()
    for _ in range(4):  # the silent are out of the cohorts: handed over once, never pinged
        keepalive.turn()
    assert len(silent) == len(quiet) and all(c.pings() == 1 for c in silent)
    assert [c.pings() for c in answering] == [3] * len(answering)


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One unmasked server frame: its opcode and payload."""
    first, second = await reader.readexactly(2)
    size = second & 0x7F
    if size == 126:
        (size,) = struct.unpack("!H", await reader.readexactly(2))
    elif size == 127:
        (size,) = struct.unpack("!Q", await reader.readexactly(8))
    return first & 0x0F, await reader.readexactly(size)


def masked_pong(payload: bytes) -> bytes:
    mask = os.urandom(4)
    return (
        bytes((0x8A, 0x80 | len(payload)))
        + mask
        + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    )


async def test_a_client_that_does_not_echo_pings_is_closed_with_1011(
    game_server: GameServer,
) -> None:
    app = game_server.app
    hub = app.hub
    turns = 0
    turned = asyncio.Event()
    keepalive = Keepalive(hub._silent, interval_s=0.2, steps=2)

    def counting_turn(turn: Any = keepalive.turn) -> None:
        nonlocal turns
        turns += 1
        turned.set()
        turn()

    keepalive.turn = counting_turn  # type: ignore[method-assign]
    hub.keepalive = keepalive

    healthy = await game_server.connect()  # websockets answers pings by itself
    await healthy.next("hello")
    reader, writer = await asyncio.open_connection("127.0.0.1", app.port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    await reader.readuntil(b"\r\n\r\n")
    # websockets' own keepalive task is off for every connection.
    assert all(c.connection.keepalive_task is None for c in hub.clients)

    pings = 0
    async with asyncio.timeout(30):
        while True:
            opcode, payload = await read_frame(reader)
            if opcode == 0x9:  # answered with pongs it made up, not with the ping's payload
                pings += 1
                writer.write(masked_pong(b"made up"))
                writer.write(masked_pong(bytes(b ^ 0xFF for b in payload)))
            if opcode == 0x8:
                break
    assert pings >= 1  # it was pinged...
    assert struct.unpack("!H", payload[:2])[0] == 1011  # ...then closed
    assert payload[2:] == b"keepalive ping timeout"
    assert hub.stats.keepalive_timeouts == 1
    metrics = metrics_response(app.metrics.registry).body.decode()
    assert "pillarpayout_keepalive_timeouts 1.0" in metrics

    # The answering client went through its cohort's turns meanwhile and after.
    seen = turns
    async with asyncio.timeout(30):
        while turns < seen + 4:
            turned.clear()
            await turned.wait()
    assert hub.stats.keepalive_timeouts == 1
    await healthy.send(type="ping", ref="still")
    await healthy.next("pong", ref="still")
    await healthy.close()
    writer.close()
