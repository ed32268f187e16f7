"""Frames to relays (server/publish.py), on a real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson
import redis.asyncio as aioredis

from pillarpayout_ws.server.publish import Publisher
from pillarpayout_ws.storage import Storage
from pillarpayout_ws.storage.live import ACTIVE_BETS, GAME_STATE, HELLO, LiveStore

from .conftest import ManualGame


async def test_frames_go_out_in_order_with_the_snapshot_after_what_it_shows(
    storage: Storage,
) -> None:
    live = storage.live
    client = aioredis.Redis.from_url(live.url)
    pubsub = client.pubsub()
    await pubsub.subscribe(live.channel)
    greetings: list[Callable[[bytes], object]] = []
    asked = asyncio.Event()

    def greet(answer: Callable[[bytes], object]) -> None:  # answered by hand below
        greetings.append(answer)
        asked.set()

    publisher = Publisher(live, greet)
    task = asyncio.create_task(publisher.run())
    try:
        publisher.frame(b'{"type":"betting"}', False)
        publisher.frame(b'{"type":"tick"}', True)
        await asyncio.wait_for(asked.wait(), 30)
        publisher.frame(b'{"type":"running"}', False)
        greetings[0](b'{"type":"hello"}')  # the game answers after the running frame
        messages: list[bytes] = []
        async with asyncio.timeout(30):
            while len(messages) < 4:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
                if message is not None:
                    messages.append(message["data"])
        assert messages == [
            b'F1 {"type":"betting"}',
            b'F2 {"type":"tick"}',
            b'F3 {"type":"running"}',
            b'H4 {"type":"hello"}',
        ]
        assert await client.get(HELLO) == b'{"type":"hello"}'
        assert publisher.published == 4 and publisher.dropped == 0
    finally:
        publisher.close()
        await task
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await client.aclose()


async def test_frames_redis_does_not_take_are_dropped_and_counted() -> None:
    live = LiveStore("redis://127.0.0.1:1/0")  # nothing listens there

    def greet(answer: Callable[[bytes], object]) -> None:
        answer(b"{}")

    publisher = Publisher(live, greet)
    for _ in range(3):
        publisher.frame(b'{"type":"tick"}', True)
    publisher.close()  # one pass, then it returns
    await asyncio.wait_for(publisher.run(), 30)
    await live.close()
    assert (publisher.published, publisher.dropped) == (0, 4)  # three frames and the snapshot


async def test_game_state_follows_the_ticks_and_phases(manual_game: ManualGame) -> None:
    app = manual_game.app
    publisher = app.publisher
    client = aioredis.Redis.from_url(app.storage.live.url)
    alice, _ = await manual_game.register("alice")
    await alice.send(type="bet", amount=1000, ref="b")
    await alice.next("bet_accepted", ref="b")

    async def state() -> dict[str, str]:
        raw = await client.hgetall(GAME_STATE)
        return {_text(k): _text(v) for k, v in raw.items()}

    try:
        round_id = str(app.runner.round_id)
        await manual_game.to_phase("running")
        await manual_game.advance(1000)
        last = await alice.next("tick", elapsed_ms=1000)
        expected = {
            "round_id": round_id,
            "multiplier": f"{last['m']:.2f}",
            "integrity": f"{last['integrity']:.2f}",
            "state": "running",
            "active_players": "1",
        }
        await publisher.wait_until(lambda: publisher.state_written == expected)
        assert await state() == expected
        await manual_game.to_phase("crashed")
        crashed = await alice.next("crashed")
        await publisher.wait_until(lambda: (publisher.state_written or {})["state"] == "crashed")
        assert (await state())["multiplier"] == f"{crashed['crash_point']:.2f}"
        await manual_game.to_phase("betting")
        await publisher.wait_until(lambda: (publisher.state_written or {})["state"] == "betting")
        fresh = await state()
        assert (fresh["round_id"], fresh["multiplier"], fresh["active_players"]) == (
            str(app.runner.round_id),
            "1.00",
            "0",
        )
    finally:
        await client.aclose()
        await alice.close()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def test_active_bets_follow_the_round(manual_game: ManualGame) -> None:
    app = manual_game.app
    publisher = app.publisher
    client = aioredis.Redis.from_url(app.storage.live.url)
    alice, session = await manual_game.register("alice")
    bob, _ = await manual_game.register("bob")
    user = str(session["user"]["id"])

    async def active() -> dict[str, Any]:
        raw = await client.hgetall(ACTIVE_BETS)
        return {_text(k): orjson.loads(v) for k, v in raw.items()}

    def written() -> bool:
        return publisher.state_written is not None and not publisher.pending

    try:
        await alice.send(type="bet", amount=1000, ref="a")
        await bob.send(type="bet", amount=700, auto_cashout=50.0, ref="b")
        await alice.next("bet_accepted", ref="a")
        await bob.next("bet_accepted", ref="b")
        await manual_game.to_phase("running")
        await manual_game.advance(1000)
        await alice.send(type="cashout", ref="c")
        cashed = await alice.next("cashed_out", ref="c")
        await publisher.wait_until(written)
        bets = await active()
        assert bets[user]["amount"] == 1000
        assert bets[user]["cashout_multiplier"] == cashed["multiplier"]
        assert [b["cashout_multiplier"] for u, b in bets.items() if u != user] == [None]
        await manual_game.to_phase("betting")
        await publisher.wait_until(
            lambda: written() and (publisher.state_written or {}).get("state") == "betting"
        )
        assert await active() == {}
    finally:
        await client.aclose()
        for player in (alice, bob):
            await player.close()
