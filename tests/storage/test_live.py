from __future__ import annotations

import redis.asyncio as aioredis

from pillarpayout_ws.engine.records import BetPlaced, Granted, RoundOpened
from pillarpayout_ws.storage import Storage
from pillarpayout_ws.storage.live import decode_record, encode_record

from .helpers import round_records


def test_records_survive_the_codec() -> None:
    for record in round_records(3, 1, {5: 1000}, {5: 100}, {5: 150}, 200, goal_id=1):
        assert decode_record(encode_record(record)) == record
    grant = Granted(1, 100, "k", 100)
    assert decode_record(encode_record(grant)) == grant


async def test_group_commit_writes_the_batch_and_nothing_else(storage: Storage) -> None:
    opened = RoundOpened(1, 1, 1, "00" * 32, "ab" * 32, "salt", 1.0)
    bets = [BetPlaced(1, u, None, 100, 200, 900) for u in range(1, 1001)]
    await storage.live.commit([opened, *bets])
    assert await storage.live.pending_round_ids() == [1]
    records = (await storage.live.round_records([1]))[1]
    assert records == [opened, *bets]
    client = aioredis.Redis.from_url(storage.live.url)
    try:
        assert sorted(await client.keys("*")) == [b"pp:round:1", b"pp:rounds"]
    finally:
        await client.aclose()


async def test_forget_flushed_removes_the_round(storage: Storage) -> None:
    await storage.live.commit(round_records(4, 1, {1: 100}, {1: 10}, {}, 120))
    await storage.live.commit([Granted(1, 5, "g1", 95)])
    assert len(await storage.live.pending_grants()) == 1
    await storage.live.forget_flushed([4], ["g1"])
    assert await storage.live.pending_round_ids() == []
    assert await storage.live.pending_grants() == []
