"""Redis: the live mirror of the game and the write-ahead of accepted actions.

Keys (``pp:`` is the prefix of everything this project writes)::

    pp:round:{id}      list   the round's write-ahead records, in order (orjson)
    pp:rounds          zset   ids of rounds in Redis not yet flushed to PostgreSQL
    pp:grants          hash   idem key -> Granted record not yet flushed
    pp:committed       string the key of the last group commit Redis applied (``commit``)
    pp:grant_requests  list   grants queued by `pillarpayout grant` for a running server
    pp:grant_reply:{k} list   the server's answer to grant request k
    pp:admin_requests  list   operator commands (`adjust`, `void-round`) queued for a
                              running server (``server/admin.py``)
    pp:admin_reply:{k} list   the server's answer to operator command k
    pp:hello           string the latest ``hello`` snapshot, for relays greeting newcomers
    pp:played          hash   seed chain id -> {"nonce", "seed_hash", "round_id"} of the
                              last round opened on it; never deleted, so a PostgreSQL
                              restored to an earlier point is caught (``server/seeds.py``)
    game_state         hash   round_id, multiplier, integrity, state, active_players: the
                              game as of its last tick or phase change
    active_bets        hash   user id -> {"amount", "cashout_multiplier", "timestamp"}: the
                              current round's bets, cashed out ones with their multiplier
                              (both written by ``publish``, off the acks' path)
    pp:presence:relays set    ids of relays that reported their spectators lately
    pp:presence:relay:{id}
                       string that relay's connected spectators, with a TTL of a few
                              seconds: refreshed every second by the relay, so a killed
                              relay's count expires by itself

Pub/sub channel ``pp:broadcast:{db}`` (pub/sub ignores database numbers, so
the channel names its own): every broadcast frame, for relays (see
``server/relay.py`` for the message format).

``commit()`` is the group commit: one MULTI/EXEC transaction for every record
of a loop turn, returning only after Redis acknowledged it. Redis runs with
``appendonly yes``, so what it acknowledged survives a kill of either process.
A commit that failed may still have been applied (the EXEC ran, its reply was
lost); ``committed()`` tells, so the same records are never written twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import hiredis
import orjson
import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import RedisError, ResponseError

from ..engine.records import (
    BetCancelled,
    BetPlaced,
    CashedOut,
    GoalAdvanced,
    Granted,
    Record,
    RoundCrashed,
    RoundOpened,
    RoundRecord,
)
from ..exceptions import RedisUnavailable
from ..retry import unless_set

log = logging.getLogger("pillarpayout.storage")

_RECORD_TYPES: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (
        RoundOpened,
        BetPlaced,
        BetCancelled,
        CashedOut,
        RoundCrashed,
        GoalAdvanced,
        Granted,
    )
}
_FIELDS = {
    cls: frozenset(f.name for f in dataclasses.fields(cls)) for cls in _RECORD_TYPES.values()
}

ROUNDS = "pp:rounds"
GRANTS = "pp:grants"
COMMITTED = "pp:committed"
HELLO = "pp:hello"
PLAYED = "pp:played"
HELLO_TTL_S = 60  # a snapshot no game refreshes is gone within a minute
PRESENCE_RELAYS = "pp:presence:relays"
PRESENCE_TTL_S = 5.0  # a relay's count outlives the relay by at most this much
GAME_STATE = "game_state"
ACTIVE_BETS = "active_bets"
SOCKET_TIMEOUT_S = 10.0  # a read Redis does not answer within this fails
MIRROR_READ_BYTES = 65536


def round_key(round_id: int) -> str:
    return f"pp:round:{round_id}"


def relay_presence_key(relay_id: str) -> str:
    return f"pp:presence:relay:{relay_id}"


async def report_relay_spectators(
    client: aioredis.Redis, relay_id: str, spectators: int, ttl_s: float = PRESENCE_TTL_S
) -> None:
    """A relay's own count, for the game to add (raises ``RedisError``/``OSError``)."""
    pipe = client.pipeline(transaction=False)
    pipe.set(relay_presence_key(relay_id), spectators, px=max(1, round(ttl_s * 1000)))
    pipe.sadd(PRESENCE_RELAYS, relay_id)
    await pipe.execute()


async def forget_relay(client: aioredis.Redis, relay_id: str) -> None:
    """A relay that stops cleanly takes its count away at once, not after the TTL."""
    await client.delete(relay_presence_key(relay_id))


@dataclass(frozen=True, slots=True)
class Desk:
    """A queue of requests the command line hands to a running server, and where
    the server answers each (a list per request key, kept a minute)."""

    requests: str
    replies: str

    def reply_key(self, key: str) -> str:
        return f"{self.replies}:{key}"


GRANT_DESK = Desk("pp:grant_requests", "pp:grant_reply")  # server/grants.py
ADMIN_DESK = Desk("pp:admin_requests", "pp:admin_reply")  # server/admin.py: adjust, void-round
MODERATION_DESK = Desk("pp:moderation_requests", "pp:moderation_reply")  # server/moderation.py


def encode_record(record: Record) -> bytes:
    """``{"t": type name, **fields}``: orjson serialises the dataclass in C."""
    return b'{"t":"' + type(record).__name__.encode() + b'",' + orjson.dumps(record)[1:]


def decode_record(data: bytes | str) -> Record:
    fields = orjson.loads(data)
    cls = _RECORD_TYPES[fields.pop("t")]
    # A field a record no longer has (a RoundOpened written with its seed, by a
    # version before the seed waited for the crash) is dropped.
    known = _FIELDS[cls]
    return cast(Record, cls(**{k: v for k, v in fields.items() if k in known}))


_FIELDS = {
    cls: frozenset(f.name for f in dataclasses.fields(cls)) for cls in _RECORD_TYPES.values()
}


def _mask(url: str) -> str:
    """The URL without its password, fit for a log line or an error."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else f"{scheme}://{user}@{host}"


@dataclass(frozen=True, slots=True)
class Played:
    """The last round opened on a seed chain, as Redis remembers it (``pp:played``)."""

    nonce: int
    seed_hash: str
    round_id: int


@dataclass(slots=True)
class ActiveBets:
    """Changes to ``active_bets`` since the last publish: emptied first if a round
    opened; an entry of ``None`` is a bet cancelled, whose field is deleted."""

    reset: bool = False
    entries: dict[str, bytes | None] = field(default_factory=dict)


def active_bet(amount: int, placed_at: float, multiplier: int | None) -> bytes:
    """One entry of ``active_bets``."""
    cashout = None if multiplier is None else multiplier / 100
    return orjson.dumps({"amount": amount, "cashout_multiplier": cashout, "timestamp": placed_at})


def _count(value: bytes | None) -> int:
    """A relay's reported count; anything but a natural number counts nothing."""
    try:
        return max(0, int(value)) if value is not None else 0
    except ValueError:
        return 0


def broadcast_channel(client: aioredis.Redis) -> str:
    return f"pp:broadcast:{client.connection_pool.connection_kwargs.get('db', 0)}"


class LiveStore:
    """The Redis side of storage. Every method raises ``RedisUnavailable`` on failure."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            self._redis: aioredis.Redis = aioredis.Redis.from_url(
                url,
                socket_connect_timeout=5,
                socket_timeout=SOCKET_TIMEOUT_S,
                health_check_interval=10,
                retry_on_timeout=False,
            )
        except ValueError as exc:
            raise RedisUnavailable(f"bad Redis URL {_mask(url)}: {exc}") from None
        self._mirror: AbstractConnection | None = None  # ``publish``'s own (``_mirror_round_trip``)
        self._mirror_lock = asyncio.Lock()

    async def close(self) -> None:
        await self._drop_mirror()
        await self._redis.aclose()

    async def ping(self) -> None:
        try:
            await self._redis.ping()
        except (RedisError, OSError) as exc:
            raise RedisUnavailable(f"Redis at {_mask(self.url)} is not answering: {exc}") from None

    async def appendonly(self) -> str | None:
        """Redis's ``appendonly`` setting (``"yes"``/``"no"``), or None when it will
        not say (CONFIG refused by an ACL, or a managed Redis without CONFIG)."""
        try:
            reply = await self._redis.config_get("appendonly")
        except ResponseError:
            return None
        except (RedisError, OSError) as exc:
            raise RedisUnavailable(f"Redis at {_mask(self.url)} is not answering: {exc}") from None
        reply_: dict[Any, Any] = dict(reply)
        value = reply_.get("appendonly", reply_.get(b"appendonly"))
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)

    # -- group commit ------------------------------------------------------

    async def commit(self, records: Sequence[Record], key: str | None = None) -> None:
        """Make ``records`` durable in one round trip; return once Redis acknowledged.

        Each record goes to its round's write-ahead list (grants to the grants
        hash), all inside one MULTI/EXEC so a reader never sees half a batch;
        the same transaction sets ``pp:committed`` to ``key`` (a fresh one if
        not given). ``RedisUnavailable`` does not say that nothing was written:
        the EXEC may have run with only its reply lost. So before the same
        records go again, ``committed(key)`` must say they are not there, or
        they would be in the write-ahead twice (a round with a bet twice is
        refused by the flush). For the same reason nothing here retries on its
        own, as redis-py's pipeline would (it sends the whole transaction again).
        """
        if not records:
            return
        # Few commands whatever the batch size: one RPUSH per round, one HSET of grants.
        wal: dict[str, list[bytes]] = {}
        opened: list[int] = []
        played: dict[str, bytes] = {}
        grants: dict[str, bytes] = {}
        for record in records:
            data = encode_record(record)
            if isinstance(record, Granted):
                grants[record.key] = data
                continue
            wal.setdefault(round_key(record.round_id), []).append(data)
            if isinstance(record, RoundOpened):
                opened.append(record.round_id)
                played[str(record.chain_id)] = orjson.dumps(
                    Played(record.nonce, record.seed_hash, record.round_id)
                )
        commands: list[tuple[Any, ...]] = [("MULTI",)]
        if opened:
            commands.append(("ZADD", ROUNDS, *[x for r in opened for x in (r, r)]))
            commands.append(("HSET", PLAYED, *_flat(played)))
        commands.extend(("RPUSH", wal_key, *items) for wal_key, items in wal.items())
        if grants:
            commands.append(("HSET", GRANTS, *_flat(grants)))
        commands.append(("SET", COMMITTED, key or uuid.uuid4().hex))
        commands.append(("EXEC",))
        try:
            applied = (await self._round_trip(commands))[-1]
        except (RedisError, OSError) as exc:
            raise RedisUnavailable(f"Redis commit failed: {exc}") from None
        refused = [reply for reply in applied if isinstance(reply, Exception)]
        if refused:  # a key of ours holding another type: no retry will mend it
            raise RedisUnavailable(f"Redis commit failed: {refused[0]}")

    async def committed(self, key: str) -> bool:
        """Whether the commit named ``key`` was applied (it is the last one: the
        server is the only writer, and commits one at a time)."""
        try:
            return await self._redis.get(COMMITTED) == key.encode()
        except (RedisError, OSError) as exc:
            raise RedisUnavailable(f"Redis read failed: {exc}") from None

    async def _round_trip(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Send ``commands`` packed in one write on a connection of the pool and
        read their replies in turn, without redis-py's pipeline layer (its
        retries, and half the CPU). Any failure closes that connection, so no
        reply is left for its next user."""
        pool = self._redis.connection_pool
        connection = await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            await connection.send_packed_command(connection.pack_commands(commands))
            return [await connection.read_response() for _ in commands]
        except BaseException:
            await connection.disconnect(nowait=True)
            raise
        finally:
            await pool.release(connection)

    # -- relays ------------------------------------------------------------

    @property
    def channel(self) -> str:
        """The pub/sub channel of this Redis database's game."""
        return broadcast_channel(self._redis)

    async def publish(
        self,
        messages: Sequence[bytes],
        snapshot: bytes | None,
        game_state: dict[str, str] | None = None,
        active_bets: ActiveBets | None = None,
    ) -> None:
        """Publish ``messages`` in order, and store ``snapshot`` as the latest hello,
        ``game_state`` as the game's state and the changes to ``active_bets``, in
        one round trip (not a transaction: these are a mirror, not the record).

        This runs at every tick, on a connection of its own: ``_mirror_round_trip``.
        Publishes made at the same time take turns on it, so that each reads its
        own replies."""
        channel = self.channel
        commands: list[tuple[Any, ...]] = [("PUBLISH", channel, m) for m in messages]
        if snapshot is not None:
            commands.append(("SET", HELLO, snapshot, "EX", HELLO_TTL_S))
        if game_state is not None:
            commands.append(("HSET", GAME_STATE, *_flat(game_state)))
        if active_bets is not None:
            if active_bets.reset:
                commands.append(("DEL", ACTIVE_BETS))
            written = {k: v for k, v in active_bets.entries.items() if v is not None}
            gone = [k for k, v in active_bets.entries.items() if v is None]
            if written:
                commands.append(("HSET", ACTIVE_BETS, *_flat(written)))
            if gone:
                commands.append(("HDEL", ACTIVE_BETS, *gone))
        if not commands:
            return
        try:
            async with self._mirror_lock:
                await self._mirror_round_trip(commands)
        except (RedisError, OSError, TimeoutError, hiredis.HiredisError) as exc:
            raise RedisUnavailable(f"Redis publish failed: {exc}") from None

    async def _mirror_round_trip(self, commands: Sequence[tuple[Any, ...]]) -> None:
        """Send ``commands`` in one write on a connection kept for the mirror, and
        read all their replies in one pass (hiredis).

        ``publish`` runs at every tick. redis-py's way (a connection from the
        pool and back, a deadline and a parser call per reply) took 105 us of
        CPU a round trip in a tight loop, against 47 us this way; an idle game
        (caches cold between ticks) used 9.7 ms of CPU a second against 11.7
        (BENCHMARKS.md). The connection is one of the pool's, so redis-py opens
        it as the URL says (TLS, password, database); only its reads and writes
        are done here, on its streams. Any failure closes it; the next round
        trip takes another. A refused command (an error reply) fails the whole
        publish, with every reply read, so the connection stays in step."""
        connection = self._mirror
        if connection is not None and (connection._reader is None or connection._reader.at_eof()):
            await self._drop_mirror()  # Redis closed it (a restart): not worth a failure
            connection = None
        if connection is None:
            connection = await self._redis.connection_pool.get_connection()  # type: ignore[no-untyped-call]
            self._mirror = connection
        replies: list[Any] = []
        try:
            reader, writer = connection._reader, connection._writer
            if reader is None or writer is None:
                raise ConnectionError("the connection to Redis is closed")
            parser = hiredis.Reader()
            async with asyncio.timeout(SOCKET_TIMEOUT_S):
                writer.write(_pack(commands))
                await writer.drain()
                while len(replies) < len(commands):
                    data = await reader.read(MIRROR_READ_BYTES)
                    if not data:
                        raise ConnectionError("Redis closed the connection")
                    parser.feed(data)
                    while (reply := parser.gets()) is not False:
                        replies.append(reply)
            if len(replies) != len(commands):  # never, while each round trip reads its own
                raise ConnectionError("more replies from Redis than commands sent")
        except BaseException:
            await self._drop_mirror()
            raise
        refused = [r for r in replies if isinstance(r, hiredis.ReplyError)]
        if refused:
            raise ResponseError(str(refused[0]))

    async def _drop_mirror(self) -> None:
        connection, self._mirror = self._mirror, None
        if connection is not None:
            await connection.disconnect(nowait=True)
            await self._redis.connection_pool.release(connection)

    async def relay_spectators(self) -> int:
        """The spectators every live relay reports (0 without relays). Relays whose
        count expired leave the set here."""
        try:
            ids = sorted(cast(set[bytes], await self._redis.smembers(PRESENCE_RELAYS)))
            if not ids:
                return 0
            keys = [relay_presence_key(i.decode()) for i in ids]
            values = cast(list[bytes | None], await self._redis.mget(keys))
            gone = [i for i, v in zip(ids, values, strict=True) if v is None]
            if gone:
                await self._redis.srem(PRESENCE_RELAYS, *gone)
        except (RedisError, OSError) as exc:
            raise RedisUnavailable(f"Redis read failed: {exc}") from None
        return sum(_count(v) for v in values)

    # -- reading the write-ahead -------------------------------------------

    async def pending_round_ids(self) -> list[int]:
        try:
            ids = cast(list[bytes], await self._redis.zrange(ROUNDS, 0, -1))
        except (RedisError, OSError) as exc:
            raise RedisUnavailable(f"Redis read failed: {exc}") from None
        return [int(i) for i in ids]

    async def played(self) -> dict[int, Played]:
        """Seed chain id -> the last round this Redis saw opened on it."""
        try:
            entries = cast(dict[bytes, bytes], await self._redis.hgetall(PLAYED))
        except (RedisError, OSError) as exc:
            raise RedisUnavailable(f"Redis read failed: {exc}") from None
        return {int(k): Played(**orjson.loads(v)) for k, v in entries.items()}

    async def round_records(self, round_ids: Iterable[int]) -> dict[int, list[RoundRecord]]:
        ids = list(round_ids)
        if not ids:
            return {}
        pipe = self._redis.pipeline(transaction=False)
        for round_id in ids:
            pipe.lrange(round_key(round_id), 0, -1)
        try:
            lists = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise RedisUnavailable(f"Redis read failed: {exc}") from None
        return {
            round_id: [cast(RoundRecord, decode_record(item)) for item in items]
            for round_id, items in zip(ids, lists, strict=True)
        }

    async def pending_grants(self) -> list[Granted]:
        try:
            items = await self._redis.hvals(GRANTS)
        except (RedisError, OSError) as exc:
            raise RedisUnavailable(f"Redis read failed: {exc}") from None
        return [cast(Granted, decode_record(item)) for item in items]

    async def forget_flushed(self, round_ids: Sequence[int], grant_keys: Sequence[str]) -> None:
        """Drop write-ahead that PostgreSQL has committed."""
        if not round_ids and not grant_keys:
            return
        pipe = self._redis.pipeline(transaction=True)
        for round_id in round_ids:
            pipe.delete(round_key(round_id))
        if round_ids:
            pipe.zrem(ROUNDS, *[str(r) for r in round_ids])
        if grant_keys:
            pipe.hdel(GRANTS, *grant_keys)
        try:
            await pipe.execute()
        except (RedisError, OSError) as exc:
            raise RedisUnavailable(f"Redis write failed: {exc}") from None

    # -- requests handed to a running server (grants, operator commands, moderation)

    async def request(
        self, desk: Desk, request: dict[str, Any], timeout_s: float
    ) -> dict[str, Any] | None:
        """Queue ``request`` at ``desk`` for the running server and wait for its
        answer (None: no answer in time)."""
        try:
            await self._redis.rpush(desk.requests, orjson.dumps(request))
            answer = await self._redis.blpop(
                [desk.reply_key(str(request["key"]))], timeout=timeout_s
            )
        except (RedisError, OSError) as exc:
            raise RedisUnavailable(f"Redis failed: {exc}") from None
        if answer is None:
            return None
        return cast(dict[str, Any], orjson.loads(answer[1]))

    async def take_requests(
        self,
        desk: Desk,
        limit: int = 100,
        wait_s: float = 0.0,
        until: asyncio.Event | None = None,
    ) -> list[dict[str, Any]]:
        """Take up to ``limit`` requests queued at ``desk``. With ``wait_s``, wait that
        long for the first (a blocking pop: nothing to poll), or until ``until`` is
        set; a request popped while the wait was given up is dropped unanswered,
        which its command line reports as "nothing happened"."""
        try:
            if wait_s <= 0:
                items = cast("list[bytes] | None", await self._redis.lpop(desk.requests, limit))
            else:
                popped = self._redis.blpop([desk.requests], timeout=wait_s)
                first = cast(
                    "tuple[bytes, bytes] | None",
                    await (popped if until is None else unless_set(until, popped)),
                )
                if first is None:
                    return []
                items = [first[1]]
                with contextlib.suppress(RedisError, OSError):  # the first is taken
                    items += (
                        cast("list[bytes] | None", await self._redis.lpop(desk.requests, limit - 1))
                        or []
                    )
        except (RedisError, OSError) as exc:
            raise RedisUnavailable(f"Redis read failed: {exc}") from None
        return [r for r in map(_request, items or []) if r is not None]

    async def answer_requests(
        self,
        desk: Desk,
        handle: Callable[[dict[str, Any], str], Awaitable[dict[str, Any]]],
        wait_s: float = 0.0,
        until: asyncio.Event | None = None,
    ) -> bool:
        """Answer each request queued at ``desk`` with ``handle(request, key)``,
        waiting for the first as ``take_requests`` does; False if Redis failed.

        A request past its ``deadline`` is dropped unanswered: its command line
        has already told the operator that nothing happened. A malformed one
        (not from our command line) is logged and dropped, never raised: the
        server's task that takes them must not die of it. Redis down: nothing
        is taken, the requests wait.
        """
        try:
            requests = await self.take_requests(desk, wait_s=wait_s, until=until)
        except RedisUnavailable:
            return False
        for request in requests:
            try:
                key = str(request["key"])
                if time.time() > float(request["deadline"]):
                    continue
                answer = await handle(request, key)
            except Exception:
                log.exception("a request at %s could not be handled: %r", desk.requests, request)
                continue
            with contextlib.suppress(RedisUnavailable):
                await self.answer(desk, key, answer)
        return True

    async def answer(self, desk: Desk, key: str, answer: dict[str, Any]) -> None:
        reply = desk.reply_key(key)
        pipe = self._redis.pipeline(transaction=True)
        pipe.rpush(reply, orjson.dumps(answer))
        pipe.expire(reply, 60)
        try:
            await pipe.execute()
        except (RedisError, OSError) as exc:
            raise RedisUnavailable(f"Redis write failed: {exc}") from None


def _request(item: bytes) -> dict[str, Any] | None:
    """A queued request, or None (logged) when it is not a JSON object."""
    try:
        request = orjson.loads(item)
    except orjson.JSONDecodeError:
        request = None
    if not isinstance(request, dict):
        log.error("a queued request is not a JSON object, dropped: %r", item[:200])
        return None
    return request


def _pack(commands: Sequence[tuple[Any, ...]]) -> bytes:
    """``commands`` as Redis's protocol (RESP) has them sent: arrays of bulk strings."""
    out: list[bytes] = []
    for command in commands:
        out.append(b"*%d\r\n" % len(command))
        for arg in command:
            data = arg if isinstance(arg, bytes) else str(arg).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def _flat(mapping: dict[str, str] | dict[str, bytes]) -> list[str | bytes]:
    """A hash's fields and values, as HSET takes them."""
    return [item for pair in mapping.items() for item in pair]
