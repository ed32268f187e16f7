"""Limits (server/limits.py): frame budgets, oversize frames, connections per address."""

from __future__ import annotations

import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin

from pillarpayout_ws.server.app import App, ServerConfig
from pillarpayout_ws.server.clock import ManualClock
from pillarpayout_ws.server.limits import (
    ABUSE_LIMIT,
    FRAME_BURST,
    FrameLimiter,
    TokenBucket,
    Verdict,
)
from pillarpayout_ws.storage import Storage

from .conftest import GameServer


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
