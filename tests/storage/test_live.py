from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest
import redis.asyncio as aioredis

from pillarpayout_ws.engine.records import BetPlaced, Granted, RoundOpened
from pillarpayout_ws.exceptions import RedisUnavailable
from pillarpayout_ws.storage import Storage
from pillarpayout_ws.storage import live as live_module
from pillarpayout_ws.storage.embedded import EmbeddedServers
from pillarpayout_ws.storage.live import (
    ACTIVE_BETS,
    GAME_STATE,
    PRESENCE_RELAYS,
    ActiveBets,
    Desk,
    LiveStore,
    active_bet,
    decode_record,
    encode_record,
    forget_relay,
    relay_presence_key,
    report_relay_spectators,
)

from ..serving import redis_pid
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
        assert sorted(await client.keys("*")) == [
            b"pp:committed",
            b"pp:played",
            b"pp:round:1",
            b"pp:rounds",
        ]
    finally:
        await client.aclose()


Tamper = Callable[[int, bytes, bytes], bytes | None]


@contextlib.asynccontextmanager
async def redis_proxy(url: str, tamper: Tamper) -> AsyncIterator[str]:
    """A proxy to the Redis at ``url``; yields its URL. Each piece of a reply
    passes ``tamper(n, sent, reply)`` on its way (``n`` counts the proxy's
    connections from 0, ``sent`` is all the client sent on this one): the
    bytes to pass on, or None to cut the connection there."""
    target = urlsplit(url)
    if target.scheme == "unix":  # the embedded Redis
        db = parse_qs(target.query).get("db", ["0"])[0]
    else:
        db = target.path.lstrip("/") or "0"
    relays: list[asyncio.Task[Any]] = []

    async def relay(client: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        relays.append(cast("asyncio.Task[Any]", asyncio.current_task()))
        number = len(relays) - 1
        if target.scheme == "unix":
            upstream, up_writer = await asyncio.open_unix_connection(target.path)
        else:
            upstream, up_writer = await asyncio.open_connection(target.hostname, target.port)
        sent = bytearray()

        async def forward() -> None:
            while data := await client.read(65536):
                sent.extend(data)
                up_writer.write(data)
            up_writer.close()

        pump = asyncio.create_task(forward())
        while data := await upstream.read(65536):
            passed = tamper(number, bytes(sent), data)
            if passed is None:
                break
            writer.write(passed)
        writer.close()
        up_writer.close()
        pump.cancel()
        await asyncio.gather(pump, return_exceptions=True)

    proxy = await asyncio.start_server(relay, "127.0.0.1", 0)
    port = proxy.sockets[0].getsockname()[1]
    auth = f"{target.username or ''}:{target.password}@" if target.password else ""
    try:
        yield f"redis://{auth}127.0.0.1:{port}/{db}"
    finally:
        # The caller closed its connections by now, and so their relays end.
        await asyncio.wait_for(asyncio.gather(*relays), 10)
        proxy.close()


async def test_a_commit_whose_answer_is_lost_is_not_sent_again(storage: Storage) -> None:
    """Between the server and Redis, a proxy that lets the first connection's
    transaction through and then cuts it before the answer (as a reset or a
    timeout would): the commit fails and is not sent again by itself (redis-py's
    pipeline retried it, which wrote the records twice), and ``committed`` tells
    that it was applied."""

    def lose_the_answer(number: int, sent: bytes, reply: bytes) -> bytes | None:
        return None if number == 0 and b"EXEC" in sent else reply  # Redis has run it

    bet = BetPlaced(6, 1, None, 100, None, 900)
    async with redis_proxy(storage.live.url, lose_the_answer) as url:
        via = LiveStore(url)
        try:
            with pytest.raises(RedisUnavailable):
                await via.commit([RoundOpened(6, 1, 6, "00" * 32, "salt", 1.0), bet], "k6")
            assert await via.committed("k6")
            assert not await via.committed("another")
        finally:
            await via.close()
    assert (await storage.live.round_records([6]))[6].count(bet) == 1


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


async def test_a_refused_publish_leaves_no_reply_behind_for_the_next(storage: Storage) -> None:
    """Commands of the round trip refused (here ``game_state`` and ``active_bets``
    are not hashes): the publish fails as a whole, and the next publish on the
    same pool reads its own replies, not the failed one's second error."""
    live = storage.live
    client = aioredis.Redis.from_url(live.url)
    try:
        await client.set(GAME_STATE, "not a hash")
        await client.set(ACTIVE_BETS, "nor this")
        bets = ActiveBets(False, {"7": active_bet(500, 1.5, None)})
        with pytest.raises(RedisUnavailable, match="WRONGTYPE"):
            await live.publish([b"F1 x"], None, {"state": "running"}, bets)
        await client.delete(GAME_STATE, ACTIVE_BETS)
        for round_id in range(3):
            await live.publish([b"F2 y"], None, {"round_id": str(round_id)}, ActiveBets(True))
            assert await client.hget(GAME_STATE, "round_id") == str(round_id).encode()
        assert await client.hlen(ACTIVE_BETS) == 0
    finally:
        await client.aclose()


async def test_publishes_at_once_each_read_their_own_replies(storage: Storage) -> None:
    """The mirror's connection is shared: publishes made at the same time go one
    after the other, or one would read the other's replies and the other wait."""
    live = storage.live
    client = aioredis.Redis.from_url(live.url)
    try:
        await live.publish([], None, {"round_id": "first"})  # its connection is open
        async with asyncio.timeout(5):
            await asyncio.gather(
                *(live.publish([b"F%d x" % i], None, {"round_id": str(i)}) for i in range(20))
            )
            await live.publish([], None, {"round_id": "last"})
        assert await client.hget(GAME_STATE, "round_id") == b"last"
    finally:
        await client.aclose()


async def test_publish_goes_on_after_redis_closed_its_connection(storage: Storage) -> None:
    """Redis dropped the mirror's connection (a restart, ``CLIENT KILL``): at most
    the next publish fails, with ``RedisUnavailable``; the one after writes."""
    live = storage.live
    client = aioredis.Redis.from_url(live.url)
    try:
        await live.publish([b"F1 x"], None, {"round_id": "1"})
        assert await client.client_kill_filter(_type="normal", skipme=True) >= 1
        with contextlib.suppress(RedisUnavailable):
            await live.publish([b"F2 x"], None, {"round_id": "2"})
        await live.publish([b"F3 x"], None, {"round_id": "3"})
        assert await client.hget(GAME_STATE, "round_id") == b"3"
    finally:
        await client.aclose()


async def test_a_hung_redis_fails_the_publish_within_the_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stopped (SIGSTOP) Redis answers nothing: the publish fails at its
    deadline, and once Redis runs again the next ones read their own replies on
    a new connection, not the stopped one's late ones."""
    servers = EmbeddedServers(tmp_path)
    servers.start(postgres=False)
    live = LiveStore(servers.redis_url)
    client = aioredis.Redis.from_url(servers.redis_url)
    pid = redis_pid(tmp_path)
    try:
        await live.publish([b"F1 x"], None, {"round_id": "1"})
        monkeypatch.setattr(live_module, "SOCKET_TIMEOUT_S", 0.5)
        os.kill(pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            with pytest.raises(RedisUnavailable, match="publish failed"):
                await live.publish([b"F2 x"], None, {"round_id": "2"})
            assert time.monotonic() - started < 5
        finally:
            os.kill(pid, signal.SIGCONT)
        # The stopped round trip's two replies come now. Read as this one's, they
        # would hide its refused third command.
        await client.set(ACTIVE_BETS, "not a hash")
        refused = ActiveBets(False, {"7": active_bet(500, 1.5, None)})
        with pytest.raises(RedisUnavailable, match="WRONGTYPE"):
            await live.publish([b"F3 x"], None, {"round_id": "3"}, refused)
        await live.publish([b"F4 x"], None, {"round_id": "4", "state": "running"})
        assert await client.hgetall(GAME_STATE) == {b"round_id": b"4", b"state": b"running"}
    finally:
        await client.aclose()
        await live.close()
        servers.stop()


async def test_a_reply_that_is_not_redis_fails_the_publish_and_the_next_goes_on(
    storage: Storage,
) -> None:
    """Something not speaking Redis's protocol answers the mirror's round trip
    (here a proxy spoiling one reply): that publish fails with
    ``RedisUnavailable`` (not a parser's error out of the publisher's task),
    and the next one writes on a new connection."""

    def spoil(number: int, sent: bytes, reply: bytes) -> bytes | None:
        return b"?not redis\r\n" if b"F2 spoiled" in sent else reply

    client = aioredis.Redis.from_url(storage.live.url)
    async with redis_proxy(storage.live.url, spoil) as url:
        via = LiveStore(url)
        try:
            await via.publish([b"F1 x"], None, {"round_id": "1"})
            with pytest.raises(RedisUnavailable, match="publish failed"):
                await via.publish([b"F2 spoiled"], None, {"round_id": "2"})
            await via.publish([b"F3 x"], None, {"round_id": "3"})
            assert await client.hget(GAME_STATE, "round_id") == b"3"
        finally:
            await via.close()
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


TEST_DESK = Desk("pp:test_requests", "pp:test_reply")


async def until_blocked(client: aioredis.Redis, count: int) -> None:
    """Return once Redis has ``count`` clients blocked in a pop (10 s at most)."""
    deadline = time.monotonic() + 10
    while (await client.info("clients"))["blocked_clients"] != count:
        assert time.monotonic() < deadline, f"never {count} blocked clients"
        await asyncio.sleep(0.01)


async def test_a_waiting_desk_takes_a_request_as_it_arrives(storage: Storage) -> None:
    """A desk blocks in Redis for its next request (no poll): a request queued
    while it waits is taken and answered by that same wait."""
    handled: list[dict[str, Any]] = []

    async def handle(request: dict[str, Any], key: str) -> dict[str, Any]:
        handled.append(request)
        return {"ok": key}

    client = aioredis.Redis.from_url(storage.live.url)
    try:
        waiting = asyncio.ensure_future(storage.live.answer_requests(TEST_DESK, handle, 30))
        await until_blocked(client, 1)
        request = {"key": "k1", "deadline": time.time() + 60}
        await client.rpush(TEST_DESK.requests, orjson.dumps(request))
        await asyncio.wait_for(waiting, 10)
        assert handled == [request]
        assert await client.lrange(TEST_DESK.reply_key("k1"), 0, -1) == [b'{"ok":"k1"}']
    finally:
        await client.aclose()


async def test_a_waiting_desk_stops_when_told_and_leaves_later_requests_queued(
    storage: Storage,
) -> None:
    """Told to stop (the server shutting down), the desk gives its wait up at once
    and Redis no longer holds it: a request queued afterwards stays for the next
    server, instead of being popped for a connection that is gone."""
    handled: list[dict[str, Any]] = []

    async def handle(request: dict[str, Any], key: str) -> dict[str, Any]:
        handled.append(request)
        return {}

    stop = asyncio.Event()
    client = aioredis.Redis.from_url(storage.live.url)
    try:
        waiting = asyncio.ensure_future(
            storage.live.answer_requests(TEST_DESK, handle, 30, until=stop)
        )
        await until_blocked(client, 1)
        stop.set()
        await asyncio.wait_for(waiting, 5)
        await until_blocked(client, 0)
        await client.rpush(TEST_DESK.requests, orjson.dumps({"key": "k2", "deadline": 0}))
        assert await client.llen(TEST_DESK.requests) == 1
        assert handled == []
    finally:
        await client.aclose()


async def test_a_queued_request_that_is_not_a_json_object_is_dropped(
    storage: Storage, caplog: pytest.LogCaptureFixture
) -> None:
    handled: list[dict[str, Any]] = []

    async def handle(request: dict[str, Any], key: str) -> dict[str, Any]:
        handled.append(request)
        return {}

    good = {"key": "good", "deadline": time.time() + 60}
    client = aioredis.Redis.from_url(storage.live.url)
    try:
        await client.rpush(TEST_DESK.requests, b"not json", b"[1, 2]", orjson.dumps(good))
        with caplog.at_level(logging.ERROR, logger="pillarpayout.storage"):
            await storage.live.answer_requests(TEST_DESK, handle)
    finally:
        await client.aclose()
    assert handled == [good]
    assert len([r for r in caplog.records if "not a JSON object" in r.getMessage()]) == 2
