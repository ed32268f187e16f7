"""Limits (server/limits.py): frame budgets, oversize frames, connections per address."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin

from pillarpayout_ws.server import fanout
from pillarpayout_ws.server.app import App, ServerConfig
from pillarpayout_ws.server.clock import ManualClock
from pillarpayout_ws.server.fanout import HARD_BUFFER_LIMIT
from pillarpayout_ws.server.limits import (
    ABUSE_LIMIT,
    ADDRESS_BURST,
    ALL_FRAMES_BURST,
    FRAME_BURST,
    HANDSHAKE_SLACK,
    FrameLimiter,
    TokenBucket,
    Verdict,
    limit_key,
)
from pillarpayout_ws.settings import configure
from pillarpayout_ws.storage import Storage

from .conftest import (
    CLOSE,
    CONT,
    PING,
    PONG,
    TEXT,
    GameServer,
    HeldCommits,
    ManualGame,
    RawClient,
    start_game,
)


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


async def test_connections_per_ip_are_capped(storage_for_game: Storage) -> None:
    app = App(configure(ServerConfig, port=0, max_connections_per_ip=2), storage_for_game)
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


def test_a_token_bucket_refills_on_its_clock() -> None:
    clock = ManualClock()
    bucket = TokenBucket(2.0, 3.0, clock.now)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    assert not bucket.full
    clock.advance(0.5)  # one token back
    assert [bucket.take() for _ in range(2)] == [True, False]
    clock.advance(10)
    assert bucket.full  # capped at the burst
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]


def test_a_frame_limiter_refuses_then_closes() -> None:
    clock = ManualClock()
    limiter = FrameLimiter(clock.now)
    verdicts = [limiter.check() for _ in range(int(FRAME_BURST) + ABUSE_LIMIT)]
    assert verdicts[: int(FRAME_BURST)] == [Verdict.PASS] * int(FRAME_BURST)
    assert verdicts[int(FRAME_BURST) : -1] == [Verdict.REFUSE] * (ABUSE_LIMIT - 1)
    assert verdicts[-1] is Verdict.CLOSE


@pytest.mark.parametrize(
    "flood",
    [
        RawClient.frame(PING, b"x" * 100) * 5000,  # pongs owed
        RawClient.frame(PONG, b"y") * 20_000,  # nothing to answer, all to parse
        # One message in 10,000 one-byte fragments, never finished.
        RawClient.frame(TEXT, b"{", fin=False) + RawClient.frame(CONT, b" ", fin=False) * 10_000,
    ],
    ids=["pings", "pongs", "fragments"],
)
async def test_a_frame_flood_is_closed_with_1008_after_a_bounded_number(
    manual_game: ManualGame, flood: bytes
) -> None:
    raw = await RawClient.open(manual_game.app.port)
    calm = await manual_game.connect()
    await calm.next("hello")
    raw.writer.write(flood)
    frames = await asyncio.wait_for(raw.frames(), 30)
    close = [payload for opcode, payload in frames if opcode == CLOSE]
    assert close and int.from_bytes(close[0][:2], "big") == 1008
    pongs = sum(opcode == PONG for opcode, _ in frames)
    assert pongs <= ALL_FRAMES_BURST + 10  # the budget, not the flood
    raw.close()
    await calm.send(type="ping", ref="fine")  # the others never noticed
    await calm.next("pong", ref="fine")
    await calm.close()


async def test_a_client_that_does_not_read_what_it_asked_for_is_cut_off(
    manual_game: ManualGame,
) -> None:
    """Past HARD_BUFFER_LIMIT waiting for a client, its next frame ends it (a
    client that pings and never reads its pongs holds no more than that)."""
    hub = manual_game.app.hub
    raw = await RawClient.open(manual_game.app.port)
    raw.writer.write(RawClient.frame(PING, b"first"))
    frames = raw.frames()
    (client,) = hub.clients
    transport = client.connection.transport
    transport.get_write_buffer_size = lambda: HARD_BUFFER_LIMIT + 1  # type: ignore[method-assign]
    raw.writer.write(RawClient.frame(PING, b"second"))
    got = await asyncio.wait_for(frames, 30)
    # Cut off (the TCP connection aborted), not closed politely: no close frame.
    assert (PONG, b"first") in got and not [f for f in got if f[0] == CLOSE]
    raw.close()


async def test_a_client_that_never_reads_does_not_hold_up_a_stop(
    storage_for_game: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stop closes every connection, and a close waits until the closing frame
    is written: behind a backlog the client never reads, that was forever (and
    so were a logout's, a ban's and a flood's closes). Now the client is dropped
    SLOW_ABORT_S after its closing frame was queued."""
    monkeypatch.setattr(fanout, "SLOW_ABORT_S", 0.5)
    app = App(configure(ServerConfig, port=0), storage_for_game)
    await app.start()
    raw = await RawClient.open(app.port, buffer=4096)
    stopped = False
    try:
        await raw.next_frame()  # hello: it is in the fan-out
        (client,) = app.hub.clients
        app.hub.send(client, b'"' + b"x" * 16_000_000 + b'"')  # more than the kernel holds
        assert client.transport.get_write_buffer_size() > 0
        await asyncio.wait_for(app.stop(), 30)
        stopped = True
    finally:
        raw.close()
        if not stopped:
            await app.stop()


async def test_a_refused_message_is_forgiven_with_time() -> None:
    """A long-lived client that sometimes bursts is never closed for it."""
    clock = ManualClock()
    limiter = FrameLimiter(clock.now)
    for _ in range(50):  # a burst now and then, for hours
        verdicts = [limiter.check() for _ in range(int(FRAME_BURST) + 10)]
        assert Verdict.CLOSE not in verdicts
        clock.advance(60)
    assert limiter.refused < ABUSE_LIMIT


async def test_behind_a_trusted_proxy_each_client_is_its_own_address(
    storage_for_game: Storage,
) -> None:
    app = App(
        configure(ServerConfig, port=0, max_connections_per_ip=1, trusted_proxies=("127.0.0.1",)),
        storage_for_game,
    )
    await app.start()
    try:

        def via_proxy(client: str) -> str:
            return f"X-Forwarded-For: {client}\r\n"

        first = await RawClient.open(app.port, via_proxy("203.0.113.5"))
        other = await RawClient.open(app.port, via_proxy("198.51.100.7, 203.0.113.9"))
        with pytest.raises(AssertionError, match="429"):
            await RawClient.open(app.port, via_proxy("203.0.113.5"))
        # A hop the client wrote itself, left of the address the proxy saw, is not believed.
        with pytest.raises(AssertionError, match="429"):
            await RawClient.open(app.port, via_proxy("10.9.9.9, 203.0.113.9"))
        for raw in (first, other):
            raw.close()
    finally:
        await app.stop()


async def test_an_ipv6_network_counts_as_one_address(storage_for_game: Storage) -> None:
    """Every address of an IPv6 /64 is one for the limits: whoever holds a /64
    (the least a host is given) would otherwise have 2**64 of them."""
    app = App(
        configure(ServerConfig, port=0, max_connections_per_ip=1, trusted_proxies=("127.0.0.1",)),
        storage_for_game,
    )
    await app.start()
    try:
        first = await RawClient.open(app.port, "X-Forwarded-For: 2001:db8:0:7::1\r\n")
        with pytest.raises(AssertionError, match="429"):
            await RawClient.open(app.port, "X-Forwarded-For: 2001:db8:0:7:ffff::9\r\n")
        other = await RawClient.open(app.port, "X-Forwarded-For: 2001:db8:0:8::1\r\n")
        for raw in (first, other):
            raw.close()
    finally:
        await app.stop()


async def test_connections_waiting_for_their_hello_count_against_the_cap(
    storage_for_game: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection counts from its handshake on, not from when it joins the
    fan-out: while the game loop waits on Redis, newcomers wait for their
    ``hello``, and they used to count for nothing (one address could open any
    number then)."""
    clock = ManualClock()
    app = await start_game(
        storage_for_game, clock=clock, max_connections_per_ip=3, exempt_loopback=False
    )
    game = ManualGame(app, clock)
    live = app.storage.live
    held = HeldCommits(live)
    opened: list[Any] = []
    try:
        alice, _ = await game.register("alice")
        monkeypatch.setattr(live, "commit", held)
        await alice.send(type="bet", amount=1000, ref="b")
        await held.committing.wait()  # the loop waits on Redis: no hello goes out now
        url = f"ws://127.0.0.1:{app.port}/ws"
        opened += [await connect(url), await connect(url)]
        with pytest.raises(InvalidStatus) as refused:
            await connect(url)
        assert refused.value.response.status_code == 429
        held.release.set()
        await alice.next("bet_accepted", ref="b")
        await alice.close()
    finally:
        held.release.set()
        for ws in opened:
            await ws.close()
        await app.stop()


async def test_the_connections_of_one_address_share_a_message_budget(
    storage_for_game: Storage,
) -> None:
    """Each connection has its own FRAME_BURST, and many connections are not many
    budgets: together an address gets ADDRESS_BURST (its time stands still here)."""
    app = await start_game(storage_for_game, clock=ManualClock(), exempt_loopback=False)
    try:
        server = GameServer(app)
        players = [await server.connect() for _ in range(11)]
        for player in players:
            await player.next("hello")
        for k, player in enumerate(players):
            for i in range(int(FRAME_BURST)):
                await player.send(type="ping", ref=f"{k}-{i}")
        answers = [
            await player.next_where(lambda f: f["type"] in ("pong", "error"))
            for player in players
            for _ in range(int(FRAME_BURST))
        ]
        refused = [a for a in answers if a["type"] == "error"]
        assert len(answers) - len(refused) == ADDRESS_BURST
        assert {(a["code"], a["message"]) for a in refused} == {
            ("rate_limited", "too many messages from your address")
        }
        for player in players:
            await player.close()
    finally:
        await app.stop()


async def test_connections_that_never_send_a_request_are_capped_too(
    storage_for_game: Storage,
) -> None:
    """TCP connections that never send their handshake's request held a file
    descriptor each for websockets' 10 s open timeout and counted for nothing:
    one address opening them fast enough could take every descriptor. They
    count from the moment they are accepted; past the cap and a slack for
    handshakes (each of which gets 429), a new one is dropped at once."""
    app = App(configure(ServerConfig, port=0, max_connections_per_ip=1), storage_for_game)
    await app.start()
    silent: list[asyncio.StreamWriter] = []
    try:
        for _ in range(1 + HANDSHAKE_SLACK):
            _, writer = await asyncio.open_connection("127.0.0.1", app.port)
            silent.append(writer)
        reader, writer = await asyncio.open_connection("127.0.0.1", app.port)
        silent.append(writer)
        with contextlib.suppress(ConnectionResetError):
            # Dropped now, not closed by the open timeout 10 s later.
            assert await asyncio.wait_for(reader.read(), 5) == b""
        assert app._gate is not None
        assert app._gate.per_ip("127.0.0.1") == 1 + HANDSHAKE_SLACK  # the others are held
    finally:
        for writer in silent:
            writer.close()
        await app.stop()


def test_the_address_the_limits_count() -> None:
    assert limit_key("203.0.113.5") == "203.0.113.5"
    assert limit_key("2001:db8:0:7:1:2:3:4") == "2001:db8:0:7::/64"
    assert limit_key("::ffff:203.0.113.5") == "203.0.113.5"
    assert limit_key("::1") == "::1"
    assert limit_key("?") == "?"


async def test_without_a_trusted_proxy_the_header_is_ignored(storage_for_game: Storage) -> None:
    app = App(configure(ServerConfig, port=0, max_connections_per_ip=1), storage_for_game)
    await app.start()
    try:
        first = await RawClient.open(app.port, "X-Forwarded-For: 203.0.113.5\r\n")
        with pytest.raises(AssertionError, match="429"):
            await RawClient.open(app.port, "X-Forwarded-For: 198.51.100.1\r\n")
        first.close()
    finally:
        await app.stop()
