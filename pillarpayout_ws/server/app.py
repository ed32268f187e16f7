"""``pillarpayout serve``: storage, recovery, the flush loop and HTTP on one port.

Start-up order matters for money: storage opens (embedded servers adopted or
started), the server lock is taken (one server per database), recovery
finishes every round left in Redis, and only then does anything new happen.
Shutdown reverses it: stop taking work, flush, close sockets, stop storage.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

from websockets.asyncio.server import Server, ServerConnection
from websockets.http11 import Request, Response
from websockets.typing import Origin

from .. import __version__
from ..engine.config import GameConfig
from ..engine.events import BetAccepted
from ..engine.game import Game
from ..engine.goals import Goal
from ..exceptions import ConfigError, PillarPayoutError
from ..protocol import encode_hello
from ..storage import Storage, open_storage
from ..storage.flush import Flusher, flush_or_hold, recover
from .auth import Accounts, is_loopback
from .fanout import BROADCAST_TURN_S, Hub
from .handler import ConnectionHandler, TokenBucket
from .listen import json_response, listen, metrics_response
from .metrics import Metrics
from .publish import Publisher
from .runner import GameRunner, GrantCommand
from .seeds import load_or_create_chain
from .static import WebFiles

log = logging.getLogger("pillarpayout.server")

HEALTH_INTERVAL_S = 1.0
PING_TIMEOUT_S = 2.0
GRANT_POLL_S = 0.25
CHAT_SAVE_S = 1.0
STOP_TIMEOUT_S = 10.0
RECENT_CHAT = 50


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerConfig:
    # where
    host: str = "127.0.0.1"
    port: int = 8765
    # storage
    data_dir: Path = Path("./.pillarpayout")
    database_url: str | None = None
    redis_url: str | None = None
    flush_rounds: int = 10
    flush_interval_ms: int = 1000
    # the game
    betting_ms: int = 5000
    tick_ms: int = 100
    cooldown_ms: int = 3000
    starting_balance: int = 100_000
    house_edge: float = 1.0
    client_seed: str | None = None
    chain_length: int = 100_000
    # limits
    allowed_origins: tuple[str, ...] = ()  # empty: any Origin
    max_connections_per_ip: int = 1000
    # Per-IP limits skip loopback unless this is set, so the load-test harness
    # and the tests on the same host are never refused.
    limit_loopback: bool = False
    # fan-out: how long a broadcast writes before the loop may read (0: all at once)
    broadcast_slice_ms: float = BROADCAST_TURN_S * 1000

    def check(self) -> None:
        for name in (
            "betting_ms",
            "tick_ms",
            "cooldown_ms",
            "flush_rounds",
            "flush_interval_ms",
            "chain_length",
        ):
            if getattr(self, name) <= 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be positive")
        if self.starting_balance < 0:
            raise ConfigError("--starting-balance must not be negative")
        if not 0 <= self.house_edge < 100:
            raise ConfigError("--house-edge must be a percentage from 0 up to 100")
        if not 0 <= self.port <= 65535:
            raise ConfigError("--port must be 0 to 65535")
        if self.max_connections_per_ip < 1:
            raise ConfigError("--max-connections-per-ip must be positive")
        if not 0 <= self.broadcast_slice_ms <= 1000:
            raise ConfigError("--broadcast-slice-ms must be 0 to 1000")


class App:
    """One game server process. ``start()``, then ``wait_stopping()`` and ``stop()``."""

    def __init__(self, config: ServerConfig, storage: Storage, *, time_scale: float = 1.0) -> None:
        self.config = config
        self._time_scale = time_scale
        self.storage = storage
        self.metrics = Metrics()
        # 0: one synchronous loop per broadcast (an infinite slice).
        slice_s = config.broadcast_slice_ms / 1000 or float("inf")
        self.hub = Hub(turn_s=slice_s)
        self.web = WebFiles.load()
        self.accounts = Accounts(
            storage.db,
            starting_balance=config.starting_balance,
            limit_loopback=config.limit_loopback,
        )
        self.flusher = Flusher(
            storage.live,
            storage.db,
            batch_rounds=config.flush_rounds,
            interval_s=config.flush_interval_ms / 1000,
        )
        self.runner: GameRunner  # set in start(), once the seed chain is loaded
        self.chat_lines: collections.deque[tuple[str, str, float]] = collections.deque(
            maxlen=RECENT_CHAT
        )
        self.chat_to_save: list[tuple[int, int | None, str]] = []
        self.chat_buckets: dict[int, TokenBucket] = {}
        # start() has just seen both answer; the watcher takes over from there.
        self.health: dict[str, bool] = {"postgres": True, "redis": True, "game_loop": True}
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: Server | None = None
        self._stopping = asyncio.Event()
        self._runner_task: asyncio.Task[None] | None = None
        self._pings: dict[str, asyncio.Task[None]] = {}
        self.publisher: Publisher | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        sockets = list(self._server.sockets)
        return int(sockets[0].getsockname()[1])

    async def start(self) -> None:
        if not await self.storage.db.try_server_lock():
            raise ConfigError("another pillarpayout serve is already running on this database")
        db = self.storage.db
        await recover(self.storage.live, db)
        seeds = await load_or_create_chain(
            db, length=self.config.chain_length, client_seed=self.config.client_seed
        )
        goals = [
            Goal(r["id"], r["name"], r["target_height"], r["current_height"], r["reward"])
            for r in await db.goals()
        ]
        game_config = GameConfig(
            betting_ms=self.config.betting_ms,
            tick_ms=self.config.tick_ms,
            cooldown_ms=self.config.cooldown_ms,
            house_edge=self.config.house_edge,
        )
        next_round_id = await db.last_round_id() + 1
        # Recovery has flushed every earlier round: PostgreSQL holds every bet
        # ref the engine must still recognise, so a client replaying a bet
        # across the restart is answered as before, not debited again.
        bet_refs = [
            BetAccepted(b.user_id, b.ref, b.round_id, b.amount, b.auto_cashout, b.balance_after)
            for b in await db.bet_refs(next_round_id - game_config.ref_memory_rounds + 1)
        ]
        game = Game(
            game_config,
            seeds,
            next_round_id=next_round_id,
            goals=goals,
            history=await db.recent_crashes(),
            bet_refs=bet_refs,
        )
        self.runner = GameRunner(
            game,
            self.storage.live,
            self.flusher,
            self.hub,
            self.metrics,
            time_scale=self._time_scale,
        )
        # Browsers always send Origin; other clients (the load-test harness) may
        # not, and could forge it anyway, so a missing one is let in.
        origins: list[Origin | None] | None = None
        if self.config.allowed_origins:
            origins = [*(Origin(o) for o in self.config.allowed_origins), None]
        self._server = await listen(
            self._handle,
            self.config.host,
            self.config.port,
            process_request=self._http,
            server_header=f"pillarpayout/{__version__}",
            origins=origins,
        )
        self._runner_task = asyncio.create_task(self.runner.run(), name="game-loop")
        self._runner_task.add_done_callback(self._task_done)
        self.publisher = Publisher(self.storage.live, self.hello)
        self.hub.mirror = self.publisher.frame
        self._spawn(self.publisher.run(), "publisher")
        self._spawn(self.flusher.run(), "flusher")
        self._spawn(self._every(HEALTH_INTERVAL_S, self._check_health), "health")
        self._spawn(self._every(GRANT_POLL_S, self._take_grants), "grants")
        self._spawn(self._every(CHAT_SAVE_S, self._save_chat), "chat")
        log.info("listening on http://%s:%d/ (WebSocket at /ws)", self.config.host, self.port)

    def _spawn(self, coro: Any, name: str) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task %s died", task.get_name(), exc_info=task.exception())
            self._stopping.set()

    async def stop(self) -> None:
        """Graceful (SIGTERM): no new bets; let a running round end within
        ``STOP_TIMEOUT_S`` or void it; flush everything to PostgreSQL; close
        the sockets with 1001."""
        self._stopping.set()
        runner_task = self._runner_task
        if runner_task is not None and not runner_task.done():
            if not await self.runner.wait_round_over(STOP_TIMEOUT_S):
                log.warning("the round did not end within %.0f s: voiding it", STOP_TIMEOUT_S)
            self.runner.stop()
            await runner_task
        self.flusher.close()
        for ping in self._pings.values():
            ping.cancel()
        if self.publisher is not None:
            self.publisher.close()
        # The loops end by themselves at their next turn; cancel only what is stuck.
        if self._tasks:
            _, stuck = await asyncio.wait(set(self._tasks), timeout=STOP_TIMEOUT_S)
            for task in stuck:
                task.cancel()
        if runner_task is not None:
            with contextlib.suppress(PillarPayoutError):
                await self._save_chat()
                # Everything in Redis, the unfinished round included (void), to PostgreSQL.
                pending = await self.storage.live.pending_round_ids()
                _, held = await flush_or_hold(self.storage.live, self.storage.db, pending)
                log.info("flushed %d round(s) to PostgreSQL", len(pending) - len(held))
        self.hub.finish()  # the last frames reach every socket before its 1001
        if self._server is not None:
            self._server.close(close_connections=True)
            await self._server.wait_closed()
        self.accounts.close()
        await self.storage.db.release_server_lock()

    def request_stop(self) -> None:
        self._stopping.set()

    async def wait_stopping(self) -> None:
        await self._stopping.wait()

    # -- HTTP --------------------------------------------------------------

    def _http(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == "/ws":
            if self._stopping.is_set():
                return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "shutting down\n")
            ip = str(connection.remote_address[0]) if connection.remote_address else "?"
            limited = self.config.limit_loopback or not is_loopback(ip)
            if limited and self.hub.per_ip(ip) >= self.config.max_connections_per_ip:
                self.metrics.errors.labels("too_many_connections").inc()
                return connection.respond(
                    HTTPStatus.TOO_MANY_REQUESTS, "too many connections from your address\n"
                )
            return None
        if path == "/healthz":
            ok = all(self.health.values()) and self.flusher.healthy
            body = {
                "status": "ok" if ok else "unavailable",
                **self.health,
                "flush_backlog": self.flusher.backlog,
                "flush_lag_s": round(self.flusher.lag_s, 3),
                "flush_held": sorted(self.flusher.held),
            }
            return json_response(HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE, body)
        if path == "/metrics":
            return self._metrics_response()
        page = self.web.response(path, request.headers.get("If-None-Match"))
        if page is not None:
            return page
        return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")

    def _metrics_response(self) -> Response:
        m, hub = self.metrics, self.hub
        m.connections.set(len(hub.clients))
        m.players.set(hub.players)
        m.spectators.set(len(hub.clients) - hub.players)
        m.fanout.update(hub.stats)
        m.flush_backlog.set(self.flusher.backlog)
        m.flush_held.set(len(self.flusher.held))
        m.flush_lag.set(self.flusher.lag_s)
        if self.publisher is not None:
            m.relay_published.set(self.publisher.published)
            m.relay_dropped.set(self.publisher.dropped)
        return metrics_response(m.registry)

    def hello(self) -> bytes:
        return encode_hello(
            self.runner.game.snapshot(),
            server=f"pillarpayout/{__version__}",
            chat=list(self.chat_lines),
            ts=time.time(),
        )

    async def _handle(self, connection: ServerConnection) -> None:
        try:
            await ConnectionHandler(self, connection).run()
        except Exception:
            # One connection's bug must not reach the others or the game loop.
            log.exception("connection handler failed")

    # -- background tasks --------------------------------------------------

    async def _every(self, interval_s: float, step: Callable[[], Awaitable[None]]) -> None:
        """Run ``step`` every ``interval_s`` until the server stops."""
        while not self._stopping.is_set():
            await step()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=interval_s)

    async def _check_health(self) -> None:
        for name, check in (("postgres", self.storage.db.ping), ("redis", self.storage.live.ping)):
            # A ping is never cancelled: cancelling a query to a hung PostgreSQL
            # waits on a cancel request it does not answer. A ping still running
            # from an earlier check means unavailable, without starting another.
            ping = self._pings.get(name)
            if ping is not None and ping.done() and not ping.cancelled():
                ping.exception()  # seen: its outcome was already counted
            if ping is None or ping.done():
                ping = self._pings[name] = asyncio.create_task(check(), name=f"ping-{name}")
                await asyncio.wait({ping}, timeout=PING_TIMEOUT_S)
            ok = ping.done() and not ping.cancelled() and ping.exception() is None
            if ok != self.health[name]:
                log.log(
                    logging.INFO if ok else logging.WARNING,
                    "%s is %s",
                    name,
                    "back" if ok else "unavailable",
                )
            self.health[name] = ok
        embedded = self.storage.embedded
        if embedded is not None and not (self.health["postgres"] and self.health["redis"]):
            # We own the embedded servers: one that died is started again.
            try:
                for name in await asyncio.to_thread(embedded.revive):
                    log.warning("the embedded %s had died: restarted it", name)
            except PillarPayoutError as exc:
                log.error("could not restart an embedded server: %s", exc)
        runner = self._runner_task
        self.health["game_loop"] = runner is not None and not runner.done()

    async def _take_grants(self) -> None:
        """Apply grants queued by ``pillarpayout grant`` through the engine."""
        try:
            requests = await self.storage.live.take_grant_requests()
        except PillarPayoutError:
            return
        for request in requests:
            key = str(request["key"])
            if time.time() > float(request["deadline"]):
                continue  # the CLI has already told the operator nothing happened
            answer: dict[str, Any]
            try:
                user = await self.storage.db.user_by_name(str(request["username"]))
            except PillarPayoutError as exc:
                answer = {"error": str(exc)}
            else:
                if user is None:
                    answer = {"error": "unknown_user"}
                else:
                    self.runner.game.load_account(user.id, user.username, user.balance)
                    done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
                    self.runner.submit(GrantCommand(user.id, int(request["amount"]), key, done))
                    try:
                        answer = {"user_id": user.id, "balance": await done}
                    except (ValueError, PillarPayoutError) as exc:
                        answer = {"error": str(exc)}
            with contextlib.suppress(PillarPayoutError):
                await self.storage.live.answer_grant(key, answer)

    async def _save_chat(self) -> None:
        if not self.chat_to_save:
            return
        lines, self.chat_to_save = self.chat_to_save, []
        try:
            await self.storage.db.save_chat(lines)
        except PillarPayoutError:
            self.chat_to_save[:0] = lines  # keep them for the next try


async def run(config: ServerConfig) -> int:
    """Run until SIGTERM/SIGINT; exit code 0 after a clean shutdown."""
    config.check()
    started = time.monotonic()
    storage = await open_storage(
        data_dir=config.data_dir, database_url=config.database_url, redis_url=config.redis_url
    )
    app = App(config, storage)
    try:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, app.request_stop)
        await app.start()
        log.info("ready in %.2f s", time.monotonic() - started)
        await app.wait_stopping()
        log.info("shutting down")
    finally:
        try:
            await app.stop()
        finally:
            await storage.close()
    return 0


async def serve_from_args(args: Any) -> int:
    return await run(
        ServerConfig(
            host=args.host,
            port=args.port,
            data_dir=args.data_dir,
            database_url=args.database_url,
            redis_url=args.redis_url,
            flush_rounds=args.flush_rounds,
            flush_interval_ms=args.flush_interval_ms,
            betting_ms=args.betting_ms,
            tick_ms=args.tick_ms,
            cooldown_ms=args.cooldown_ms,
            starting_balance=args.starting_balance,
            house_edge=args.house_edge,
            client_seed=args.client_seed,
            chain_length=args.chain_length,
            allowed_origins=tuple(args.allowed_origin),
            max_connections_per_ip=args.max_connections_per_ip,
            limit_loopback=args.limit_loopback,
            broadcast_slice_ms=args.broadcast_slice_ms,
        )
    )
