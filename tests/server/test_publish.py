"""Frames to relays (server/publish.py), on a real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import redis.asyncio as aioredis

from pillarpayout_ws.server.publish import Publisher
from pillarpayout_ws.storage import Storage
from pillarpayout_ws.storage.live import HELLO, LiveStore


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
