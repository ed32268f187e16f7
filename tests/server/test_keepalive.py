"""Keepalive (server/keepalive.py): one timer pings every connection; the silent are closed.

The first test drives the cohorts by hand with stand-in connections; the
second runs the game server with a short interval against a raw client that
answers pings only with pongs it made up, and a websockets client that echoes
them.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any, cast

from pillarpayout_ws.server.keepalive import PING_HEADER, Keepalive
from pillarpayout_ws.server.routes import metrics_response

from .conftest import CLOSE, PING, PONG, GameServer, RawClient


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
    raw = await RawClient.open(app.port)
    # websockets' own keepalive task is off for every connection.
    assert all(c.connection.keepalive_task is None for c in hub.clients)

    pings = 0
    async with asyncio.timeout(30):
        while True:
            opcode, payload = await raw.next_frame()
            if opcode == PING:  # answered with pongs it made up, not with the ping's payload
                pings += 1
                raw.writer.write(RawClient.frame(PONG, b"made up"))
                raw.writer.write(RawClient.frame(PONG, bytes(b ^ 0xFF for b in payload)))
            if opcode == CLOSE:
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
    raw.close()
