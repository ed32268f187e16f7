"""``pillarpayout relay``: read-only spectator streams fed from Redis pub/sub.

The game process publishes every broadcast frame, already encoded, on
``pp:broadcast:{db}`` (``server/publish.py``), and keeps its latest ``hello``
in ``pp:hello``. A relay subscribes, greets each newcomer with the latest
snapshot, and writes every frame to its own spectators with the game's
fan-out (``Hub``: framed once, the same bytes to every socket, slow consumers
skip ticks). It holds no money and no state worth keeping: kill it and only
its own spectators notice; start as many as needed, on one port with
``--reuse-port`` or on other hosts against the same Redis.

Messages are ``F<seq> <frame>`` (forwarded) and ``H<seq> <hello>`` (kept as
the snapshot). A jump in ``seq`` is a gap (counted); a lower ``seq`` is a
restarted game. After a gap or a lost Redis connection the relay, once it
has the game again, sends every client the current snapshot as a new
``hello``, so their picture is whole again.

Presence: every second a relay writes how many spectators it has to Redis
under its own random id, with a TTL of a few seconds (``storage.live``), and
the game adds the relays' sum to its own spectators. The relay's clients get
the game's ``presence`` frames and ``hello`` as they are: the relay does not
patch its own count into them, since the game's total already includes it
(it would count these spectators twice). A relay that cannot write its count
(Redis down, or a Redis user made before presence existed) says so once in
its log and goes on relaying.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import cast

import orjson
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, Counter, Gauge
from redis.exceptions import NoPermissionError, RedisError
from websockets.asyncio.server import Server, ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from .. import __version__
from ..logs import LogConfig
from ..protocol.frames import encode_error
from ..retry import Backoff
from ..settings import setting
from ..storage.live import (
    HELLO,
    PRESENCE_TTL_S,
    broadcast_channel,
    forget_relay,
    report_relay_spectators,
)
from .clock import Clock, MonotonicClock
from .fanout import Client, Hub
from .limits import AddressLimits, ConnectionGate, FrameLimiter, Verdict
from .listen import listen
from .metrics import FanoutGauges
from .routes import Router, json_response, metrics_response

log = logging.getLogger("pillarpayout.relay")

STALE_S = 5.0  # no message from the game for this long: unhealthy
RECONNECT_FIRST_S = 0.1
RECONNECT_MAX_S = 2.0
TICK_PREFIX = b'{"type":"tick"'
PRESENCE_EVERY_S = 1.0  # how often a relay reports its spectators


@dataclass(frozen=True, slots=True, kw_only=True)
class RelayConfig:
    """Every setting of ``pillarpayout relay`` (the flags are made from these fields)."""

    redis_url: str | None = setting(
        None, "the game's Redis", env="REDIS_URL", shown="the embedded one of a running serve"
    )
    data_dir: Path = setting(
        Path("./.pillarpayout"),
        "with no Redis URL: the data dir of the running serve",
        shown="./.pillarpayout",
    )
    host: str = setting("127.0.0.1", "the address to listen on")
    port: int = setting(8766, "the port of /ws, /healthz and /metrics")
    reuse_port: bool = setting(False, "share the port with other relays (SO_REUSEPORT)")
    game_url: str = setting(
        "ws://127.0.0.1:8765/ws", "where players play, named in read_only errors"
    )
    per_address: AddressLimits = field(default_factory=AddressLimits)
    logs: LogConfig = field(default_factory=LogConfig)


class RelayMetrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.connections = Gauge("pillarpayout_relay_connections", "spectators", registry=r)
        self.fanout = FanoutGauges(r)
        self.frames = Counter("pillarpayout_relay_frames", "frames relayed", registry=r)
        self.gaps = Counter(
            "pillarpayout_relay_gaps", "breaks in the stream (lost messages or Redis)", registry=r
        )
        self.missed = Counter(
            "pillarpayout_relay_missed", "messages known lost in those gaps", registry=r
        )
        self.reconnects = Counter(
            "pillarpayout_relay_redis_reconnects", "Redis connections re-made", registry=r
        )
        self.refused = Counter(
            "pillarpayout_relay_refused", "handshakes refused", ["reason"], registry=r
        )
        self.resyncs = Counter(
            "pillarpayout_relay_resyncs", "snapshots re-sent to every client", registry=r
        )
        self.age = Gauge(
            "pillarpayout_relay_last_message_age_seconds",
            "seconds since the last message from the game",
            registry=r,
        )


class Relay:
    def __init__(
        self,
        config: RelayConfig,
        redis_url: str,
        *,
        clock: Clock | None = None,
        presence_ttl_s: float = PRESENCE_TTL_S,
    ) -> None:
        self.config = config
        self.clock: Clock = clock or MonotonicClock()
        self.relay_id = secrets.token_hex(8)  # this process's key for its spectators' count
        self.presence_ttl_s = presence_ttl_s
        self.reported: int | None = None  # the count Redis last took
        self._stopping = asyncio.Event()
        self._report_task: asyncio.Task[None] | None = None
        self._report_failing = False
        self.hub = Hub()
        self.metrics = m = RelayMetrics()
        m.connections.set_function(lambda: len(self.hub.clients))
        m.fanout.watch(self.hub)
        m.age.set_function(
            lambda: self.clock.now() - self.last_message if self.last_message else -1
        )
        self.hello: bytes | None = None
        self.ready = asyncio.Event()  # set once there is a snapshot to greet with
        self.subscribed = False
        self.last_message = 0.0
        self._seq = 0
        self._needs_resync = False
        self._server: Server | None = None
        self._follow_task: asyncio.Task[None] | None = None
        self._redis = aioredis.Redis.from_url(
            redis_url, socket_connect_timeout=5, health_check_interval=5
        )
        self._read_only = (
            f"this is a read-only spectator relay; to play, connect to {config.game_url}"
        )
        self._addresses = config.per_address.addresses
        self._gate = ConnectionGate(
            self._addresses,
            max_per_ip=config.per_address.max_connections_per_ip,
            refused=lambda reason: self.metrics.refused.labels(reason).inc(),
        )

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(next(iter(self._server.sockets)).getsockname()[1])

    async def start(self) -> None:
        self._server = await listen(
            self._handle,
            self.config.host,
            self.config.port,
            process_request=Router(
                websocket=self._admit,
                pages={"/healthz": self._healthz, "/metrics": self._metrics, "/": self._home},
            ),
            server_header=f"pillarpayout-relay/{__version__}",
            reuse_port=self.config.reuse_port,
            admit=self._gate.accepted,
        )
        self._follow_task = asyncio.create_task(self._follow(), name="relay-follow")
        self._report_task = asyncio.create_task(self._report_loop(), name="relay-presence")
        log.info("relay listening on http://%s:%d/ (WebSocket at /ws)", self.config.host, self.port)

    async def stop(self) -> None:
        self._stopping.set()
        if self._report_task is not None:
            await self._report_task
        if self._follow_task is not None:
            self._follow_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follow_task
        with contextlib.suppress(RedisError, OSError):
            await forget_relay(self._redis, self.relay_id)  # gone now, not after the TTL
        self.hub.finish()
        if self._server is not None:
            self._server.close(close_connections=True)
            await self._server.wait_closed()
        await self._redis.aclose()

    # -- presence -------------------------------------------------------------

    async def _report_loop(self) -> None:
        """Report this relay's spectators every ``PRESENCE_EVERY_S`` until ``stop``."""
        while not self._stopping.is_set():
            await self.report_now()
            await self.clock.sleep_until(self.clock.now() + PRESENCE_EVERY_S, self._stopping)

    async def report_now(self) -> None:
        """Write this relay's spectators to Redis; on failure, log (once in a row)."""
        count = len(self.hub.clients)
        try:
            await report_relay_spectators(self._redis, self.relay_id, count, self.presence_ttl_s)
        except (RedisError, OSError) as exc:
            if not self._report_failing:
                hint = (
                    " (the relay's Redis user needs %W~pp:presence:* +set +sadd +del: README)"
                    if isinstance(exc, NoPermissionError)
                    else ""
                )
                log.warning("cannot report this relay's spectators: %s%s", exc, hint)
                self._report_failing = True
            return
        if self._report_failing:
            log.info("reporting this relay's spectators again")
            self._report_failing = False
        self.reported = count

    # -- the stream ---------------------------------------------------------

    async def _follow(self) -> None:
        """Subscribe and relay, forever; on any Redis failure, reconnect and resync."""
        backoff = Backoff(RECONNECT_FIRST_S, RECONNECT_MAX_S)
        first = True
        while True:
            try:
                await self._subscribe_and_relay(first)
            except (RedisError, OSError) as exc:
                if self.subscribed:
                    log.warning("lost Redis: %s; reconnecting", exc)
                    self.metrics.gaps.inc()
                self.subscribed = False
                self._needs_resync = True
            first = False
            self.metrics.reconnects.inc()
            await asyncio.sleep(backoff.failed())

    async def _subscribe_and_relay(self, first: bool) -> None:
        pubsub = self._redis.pubsub()
        try:
            await pubsub.subscribe(broadcast_channel(self._redis))
            # Subscribed first, then the snapshot: nothing falls between the two.
            snapshot = cast(bytes | None, await self._redis.get(HELLO))
            if snapshot is not None:
                self.hello = snapshot
                self.last_message = self.clock.now()
                self.ready.set()
            self.subscribed = True
            if not first:
                log.info("Redis is back; relaying again")
            self._seq = 0
            if self._needs_resync and snapshot is not None:
                self._resync()
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is not None and message["type"] == "message":
                    self._on_message(message["data"])
        finally:
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _on_message(self, data: bytes) -> None:
        self.last_message = self.clock.now()
        head, _, payload = data.partition(b" ")
        kind, seq = head[:1], int(head[1:])
        if self._seq and seq > self._seq + 1:
            self.metrics.gaps.inc()
            self.metrics.missed.inc(seq - self._seq - 1)
            self._needs_resync = True
        self._seq = seq  # a lower one: the game restarted; follow it
        if kind == b"H":
            self.hello = payload
            self.ready.set()
            if self._needs_resync:
                self._resync()
            return
        if payload.startswith(TICK_PREFIX):
            self.hub.tick(payload)
        else:
            self.hub.broadcast(payload)
        self.metrics.frames.inc()

    def _resync(self) -> None:
        """Everyone gets the current snapshot again, as a fresh ``hello``."""
        self._needs_resync = False
        if self.hello is not None:
            self.hub.broadcast(self.hello)
            self.metrics.resyncs.inc()

    @property
    def healthy(self) -> bool:
        return (
            self.subscribed
            and self.hello is not None
            and self.clock.now() - self.last_message < STALE_S
        )

    # -- connections --------------------------------------------------------

    async def _handle(self, connection: ServerConnection) -> None:
        client = Client.joining(connection, self._addresses)
        self.hub.add(client)
        try:
            if self.hello is not None:
                self.hub.send(client, self.hello)
            limiter = FrameLimiter(self.clock.now)
            async for message in connection:
                verdict = limiter.check()
                if verdict is Verdict.CLOSE:
                    await connection.close(1008, "too many frames")
                    return
                if verdict is Verdict.REFUSE:
                    self.hub.send(client, encode_error("rate_limited", "slow down", None))
                    continue
                self.hub.send(client, encode_error("read_only", self._read_only, _ref(message)))
        except ConnectionClosed:
            pass
        except Exception:
            log.exception("relay connection handler failed")
        finally:
            self.hub.remove(client)

    # -- HTTP ---------------------------------------------------------------

    def _admit(self, connection: ServerConnection, request: Request) -> Response | None:
        if self.hello is None:
            return connection.respond(
                HTTPStatus.SERVICE_UNAVAILABLE, "no game seen yet: try again shortly\n"
            )
        return self._gate(connection, request)  # the game's per-address cap

    def _healthz(self, connection: ServerConnection, request: Request) -> Response:
        age = self.clock.now() - self.last_message if self.last_message else None
        body = {
            "status": "ok" if self.healthy else "unavailable",
            "redis": self.subscribed,
            "game_seen_s_ago": None if age is None else round(age, 3),
            "connections": len(self.hub.clients),
        }
        return json_response(
            HTTPStatus.OK if self.healthy else HTTPStatus.SERVICE_UNAVAILABLE, body
        )

    def _metrics(self, connection: ServerConnection, request: Request) -> Response:
        return metrics_response(self.metrics.registry)

    def _home(self, connection: ServerConnection, request: Request) -> Response:
        return connection.respond(
            HTTPStatus.OK, f"PillarPayout spectator relay. Play at {self.config.game_url}\n"
        )


def _ref(message: str | bytes) -> str | None:
    """The frame's ``ref`` when it has a short string one, for the error's ``ref``."""
    try:
        frame = orjson.loads(message)
    except orjson.JSONDecodeError:
        return None
    ref = frame.get("ref") if isinstance(frame, dict) else None
    return ref if isinstance(ref, str) and len(ref) <= 64 else None


async def run_relay(config: RelayConfig, redis_url: str) -> int:
    """Run until SIGTERM/SIGINT."""
    relay = Relay(config, redis_url)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await relay.start()
    try:
        await stopping.wait()
    finally:
        await relay.stop()
    return 0
