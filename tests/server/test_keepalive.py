"""Keepalive (server/keepalive.py): one timer pings every connection; the silent are closed.

The first test drives the cohorts by hand with stand-in connections; the
second runs the game server with a short interval against a raw client that
answers pings only with pongs it made up, and a websockets client that echoes
them.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Callable
from typing import Any, cast

import orjson
import pytest

from pillarpayout_ws.server.fanout import GameConnection
from pillarpayout_ws.server.keepalive import PING_HEADER, Keepalive
from pillarpayout_ws.server.routes import metrics_response

from .conftest import CLOSE, PING, PONG, TEXT, GameServer, RawClient


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


async def until(done: Callable[[], bool]) -> None:
    """Return once ``done()`` holds: what the server did with bytes it read, where
    no frame comes back to tell (10 s at most)."""
    deadline = time.monotonic() + 10
    while not done():
        assert time.monotonic() < deadline, "it never happened"
        await asyncio.sleep(0.001)


async def raw_client_and_its_connection(
    game_server: GameServer,
) -> tuple[RawClient, GameConnection]:
    raw = await RawClient.open(game_server.app.port)
    opcode, hello = await raw.next_frame()
    assert opcode == TEXT and orjson.loads(hello)["type"] == "hello"
    (client,) = game_server.app.hub.clients
    return raw, cast(GameConnection, client.connection)


async def next_text(raw: RawClient, kind: str) -> dict[str, Any]:
    """The next text frame of type ``kind``; broadcasts (presence, ticks) go by."""
    async with asyncio.timeout(10):
        while True:
            opcode, payload = await raw.next_frame()
            frame = orjson.loads(payload) if opcode == TEXT else {}
            if frame.get("type") == kind:
                return cast(dict[str, Any], frame)


async def test_a_pong_that_echoes_the_ping_answers_it_without_websockets_parser(
    game_server: GameServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsed: list[bytes] = []
    monkeypatch.setattr(GameConnection, "acknowledge_pings", lambda _, data: parsed.append(data))
    raw, connection = await raw_client_and_its_connection(game_server)
    budget = connection._frames
    budget.rate = 0  # no refill: each frame read takes one token for good
    connection.unanswered_ping = b"\x00\xffab"
    raw.writer.write(RawClient.frame(PONG, b"\x00\xffab"))
    await until(lambda: connection.unanswered_ping is None)
    assert parsed == []  # read apart: a whole frame where a frame starts
    spent = budget.tokens
    connection.unanswered_ping = b"ping"
    # A pong that echoes something else answers nothing.
    raw.writer.write(RawClient.frame(PONG, b"made"))
    await until(lambda: budget.tokens < spent)  # read, and spent from the frame budget
    assert connection.unanswered_ping == b"ping" and parsed == []
    raw.writer.write(RawClient.frame(TEXT, b'{"type":"ping","ref":"r"}'))
    assert (await next_text(raw, "pong"))["ref"] == "r"  # the connection works on
    raw.close()


async def test_ten_bytes_that_look_like_a_pong_inside_a_frame_are_that_frame(
    game_server: GameServer,
) -> None:
    """The attack: a text frame's header first, then ten bytes whose start looks
    like a pong's header. They are the frame's mask and payload, not a pong."""
    raw, connection = await raw_client_and_its_connection(game_server)
    body = b'"pong"'  # the text frame's payload: valid JSON, not a command
    mask = b"\x8a\x84\x10\x20"  # so the ten bytes begin as a pong would
    rest = mask + bytes(b ^ mask[i % 4] for i, b in enumerate(body))
    assert len(rest) == 10 and rest.startswith(b"\x8a\x84")
    # Read as a pong, these ten bytes would echo this: make it the ping due.
    connection.unanswered_ping = bytes(a ^ b for a, b in zip(rest[6:], rest[2:6], strict=True))
    raw.writer.write(b"\x81\x86")  # FIN, text; masked, 6 bytes of payload
    await until(lambda: not connection._between_frames())  # the header is read
    raw.writer.write(rest)
    error = await next_text(raw, "error")  # the frame, parsed: not a command
    assert error["code"] == "bad_frame", error
    assert connection.unanswered_ping is not None  # and no pong
    raw.close()


async def test_a_pong_past_the_frame_budget_closes_the_connection_with_1008(
    game_server: GameServer,
) -> None:
    raw, connection = await raw_client_and_its_connection(game_server)
    connection._frames.rate = connection._frames.tokens = 0  # the budget spent
    connection.unanswered_ping = b"ping"
    raw.writer.write(RawClient.frame(PONG, b"ping"))
    async with asyncio.timeout(10):
        frames = await raw.frames()
    assert frames[-1][0] == CLOSE and struct.unpack("!H", frames[-1][1][:2])[0] == 1008
    assert connection.unanswered_ping == b"ping"  # not answered: the frame was not read
    raw.close()
