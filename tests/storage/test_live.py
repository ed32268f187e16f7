from __future__ import annotations

from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from pillarpayout_ws.engine.records import BetPlaced, Granted, RoundOpened
from pillarpayout_ws.storage import Storage
from pillarpayout_ws.storage.live import (
    ACTIVE_BETS,
    GAME_STATE,
    PRESENCE_RELAYS,
    ActiveBets,
    active_bet,
    decode_record,
    encode_record,
    forget_relay,
    relay_presence_key,
    report_relay_spectators,
)

from .helpers import round_records

# Also run against Debian's PostgreSQL and Redis (python -m tests.external, in make test).
pytestmark = pytest.mark.external


def test_a_record_of_an_older_version_still_reads() -> None:
    """A RoundOpened written when the write-ahead still held the seed loses it."""
    old = (
        b'{"t":"RoundOpened","round_id":3,"chain_id":1,"nonce":3,"seed_hash":"aa",'
        b'"server_seed":"bb","client_seed":"s","house_edge":1.0}'
    )
    assert decode_record(old) == RoundOpened(3, 1, 3, "aa", "s", 1.0, None)


def test_records_survive_the_codec() -> None:
    for record in round_records(3, 1, {5: 1000}, {5: 100}, {5: 150}, 200, goal_id=1):
        assert decode_record(encode_record(record)) == record
    grant = Granted(1, 100, "k", 100)
    assert decode_record(encode_record(grant)) == grant


async def test_group_commit_writes_the_batch_and_nothing_else(storage: Storage) -> None:
    opened = RoundOpened(1, 1, 1, "00" * 32, "salt", 1.0)
    bets = [BetPlaced(1, u, None, 100, 200, 900) for u in range(1, 1001)]
    await storage.live.commit([opened, *bets])
    assert await storage.live.pending_round_ids() == [1]
    records = (await storage.live.round_records([1]))[1]
    assert records == [opened, *bets]
    client = aioredis.Redis.from_url(storage.live.url)
    try:
        assert sorted(await client.keys("*")) == [b"pp:played", b"pp:round:1", b"pp:rounds"]
    finally:
        await client.aclose()


async def test_forget_flushed_removes_the_round(storage: Storage) -> None:
    await storage.live.commit(round_records(4, 1, {1: 100}, {1: 10}, {}, 120))
    await storage.live.commit([Granted(1, 5, "g1", 95)])
    assert len(await storage.live.pending_grants()) == 1
    await storage.live.forget_flushed([4], ["g1"])
    assert await storage.live.pending_round_ids() == []
    assert await storage.live.pending_grants() == []


async def test_publish_writes_the_mirror_in_one_round_trip(storage: Storage) -> None:
    live = storage.live
    client = aioredis.Redis.from_url(live.url)

    async def active() -> dict[int, Any]:
        raw = await client.hgetall(ACTIVE_BETS)
        return {int(k): orjson.loads(v) for k, v in raw.items()}

    try:
        first = ActiveBets(True, {"7": active_bet(500, 1.5, None), "8": active_bet(300, 1.6, 200)})
        await live.publish([], None, {"round_id": "1", "state": "betting"}, first)
        assert await active() == {
            7: {"amount": 500, "cashout_multiplier": None, "timestamp": 1.5},
            8: {"amount": 300, "cashout_multiplier": 2.0, "timestamp": 1.6},
        }
        assert await client.hget(GAME_STATE, "state") == b"betting"
        await live.publish([], None, None, ActiveBets(True, {"9": active_bet(10, 2.0, None)}))
        assert list(await active()) == [9]  # emptied for the new round first
    finally:
        await client.aclose()


async def test_relay_spectators_sum_the_live_reports_and_drop_the_gone(storage: Storage) -> None:
    client = aioredis.Redis.from_url(storage.live.url)
    try:
        assert await storage.live.relay_spectators() == 0
        await report_relay_spectators(client, "a", 40)
        await report_relay_spectators(client, "b", 2)
        await report_relay_spectators(client, "c", 7)
        assert 0 < await client.pttl(relay_presence_key("a")) <= 5000
        assert await storage.live.relay_spectators() == 49
        await forget_relay(client, "b")
        await client.set(relay_presence_key("c"), b"lots")  # not a count: counts nothing
        assert await storage.live.relay_spectators() == 40
        assert await client.smembers(PRESENCE_RELAYS) == {b"a", b"c"}  # b is gone
    finally:
        await client.aclose()
