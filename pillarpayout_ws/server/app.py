"""``pillarpayout serve``: the game server's lifecycle, and the wiring of its parts.

Each job has a module of its own; this one only builds them, starts them in
order and stops them in reverse:

=============  ==============================================================
runner         the game loop, sole owner of the engine
handler        one WebSocket connection
fanout         writing frames to every socket
routes         which HTTP path gets which answer; ``limits``: admission
api            ``/api/*``: fairness and round history
seeds          the seed chains played
health         ``/healthz``, store pings, restarting dead embedded servers
metrics        ``/metrics``
hello          the first frame of every connection, and the relays' snapshot
presence       players online and spectators connected, here and on relays
chat           the chat room
grants         operator grants handed to a running server
publish        frames to relays
tasks          the background tasks and their owner
=============  ==============================================================

Start-up order matters for money: storage opens (embedded servers adopted or
started), the server lock is taken (one server per database), recovery
finishes every round left in Redis, and only then does anything new happen.
Shutdown reverses it: stop taking work, flush, close sockets, stop storage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from functools import partial

from websockets.asyncio.server import Server, ServerConnection
from websockets.typing import Origin

from ..exceptions import ConfigError, PillarPayoutError
from ..protocol import encode_balance
from ..storage import Storage
from ..storage.flush import Flusher, flush_or_hold, recover
from ..storage.live import LiveStore, _mask
from ..storage.postgres import Database
from ..storage.stats import PlayerStats
from .admin import AdminDesk
from .api import PublicRecord
from .auth import Accounts
from .chat import ChatRoom
from .clock import Clock, MonotonicClock
from .config import ServerConfig
from .fanout import Hub
from .grants import GrantDesk
from .handler import ConnectionHandler, Services
from .health import HealthWatch
from .hello import SERVER_NAME, Hello
from .limits import ADDRESS_BURST, ADDRESS_RATE, AddressBuckets, ConnectionGate
from .listen import listen
from .metrics import Metrics
from .moderation import Moderation, ModerationDesk
from .player_limits import LimitsDesk
from .presence import Presence
from .publish import Publisher
from .routes import Router, metrics_response
from .runner import GameRunner, restore_game
from .seeds import Chains, load_chains
from .static import WebFiles
from .tasks import Supervisor

__all__ = ["App", "ServerConfig", "run"]

log = logging.getLogger("pillarpayout.server")

HEALTH_INTERVAL_S = 1.0
LOCK_CHECK_S = 1.0  # how often the server makes sure it still holds its lock
LOCK_LOST_S = 10.0  # how long it may be without it (an old session ending) before it stops
# The desks (grants, operator commands, moderation) each block in Redis for
# their next request, at most DESK_WAIT_S at a time (under the Redis client's
# 10 s socket timeout); while Redis is down they retry every DESK_RETRY_S.
DESK_WAIT_S = 2.0
DESK_RETRY_S = 0.25
CHAT_SAVE_S = 1.0
CHAINS_POLL_S = 10.0
STOP_TIMEOUT_S = 10.0


class App:
    """One game server process. ``start()``, then ``wait_stopping()`` and ``stop()``."""

    def __init__(
        self,
        config: ServerConfig,
        storage: Storage,
        *,
        clock: Clock | None = None,
        stop_timeout_s: float = STOP_TIMEOUT_S,
    ) -> None:
        self.config = config
        self.storage = storage
        self.clock: Clock = clock or MonotonicClock()
        self._stop_timeout_s = stop_timeout_s
        self.metrics = Metrics()
        # 0: one synchronous loop per broadcast (an infinite slice).
        self.hub = Hub(
            turn_s=config.broadcast_slice_ms / 1000 or float("inf"),
            tick_turn_s=config.tick_slice_ms / 1000 or float("inf"),
        )
        self.stats = PlayerStats(storage.db)
        self.flusher = Flusher(
            storage.live,
            storage.db,
            batch_rounds=config.flush_rounds,
            interval_s=config.flush_interval_ms / 1000,
            on_flushed=self.stats.poke,
        )
        self.chat = ChatRoom(storage.db, self.hub, self.clock)
        self.moderation = Moderation(storage.db, self.hub, self.chat)
        self.presence = Presence(self.hub, storage.live, self.clock)
        self.addresses = config.per_address.addresses
        self.accounts = Accounts(
            storage.db,
            now=self.clock.now,
            starting_balance=config.starting_balance,
            exempt=self.addresses.exempt,
        )
        self.tasks = Supervisor(on_failure=self.request_stop)
        self._stopping = asyncio.Event()
        self.lost_lock = False  # stopped because another process took the server lock
        self._lock_missing_since: float | None = None
        self._server: Server | None = None
        self._runner_task: asyncio.Task[None] | None = None
        self._gate: ConnectionGate | None = None
        # Built in start(), once recovery has run and the seed chain is loaded.
        self.runner: GameRunner
        self.health: HealthWatch
        self.publisher: Publisher
        self._services: Services

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(next(iter(self._server.sockets)).getsockname()[1])

    async def start(self) -> None:
        config, storage, db = self.config, self.storage, self.storage.db
        if not await db.try_server_lock():
            raise ConfigError("another pillarpayout serve is already running on this database")
        await recover(storage.live, db)
        chains = await load_chains(
            db,
            length=config.chain_length,
            client_seed=config.client_seed,
            played=await storage.live.played(),
        )
        game = await restore_game(db, config.game, chains)
        self.runner = runner = GameRunner(
            game, chains, storage.live, self.flusher, self.hub, self.metrics, self.clock
        )
        await self.chat.restore()
        hello = Hello(runner, self.chat, self.presence)
        self._services = Services(
            addresses=self.addresses,
            hub=self.hub,
            runner=runner,
            accounts=self.accounts,
            chat=self.chat,
            hello=hello,
            metrics=self.metrics,
            clock=self.clock,
            moderation=self.moderation,
            limits=LimitsDesk(db, runner),
            address_budget=AddressBuckets(
                ADDRESS_RATE, ADDRESS_BURST, self.clock.now, self.addresses
            ),
        )
        self.health = HealthWatch(storage, self.flusher, self._game_loop_alive)
        self.publisher = Publisher(storage.live, hello.greet)
        self.hub.mirror = self.publisher.frame
        runner.mirror = self.publisher
        self.metrics.watch(self.hub, self.flusher, self.publisher, self.presence)
        self._gate = ConnectionGate(
            self.addresses,
            max_per_ip=config.per_address.max_connections_per_ip,
            refused=lambda code: self.metrics.errors.labels(code).inc(),
        )
        api = PublicRecord(
            storage, runner, self.chat, self.clock, self.addresses, self.accounts, self.stats
        )
        router = Router(
            websocket=self._gate,
            pages={
                "/healthz": lambda _c, _r: self.health.response(),
                "/metrics": lambda _c, _r: metrics_response(self.metrics.registry),
                **api.pages,
            },
            prefixes=api.prefixes,
            files=WebFiles.load(),
        )
        # Browsers always send Origin; other clients (the load-test harness) may
        # not, and could forge it anyway, so a missing one is let in.
        origins: list[Origin | None] | None = None
        if config.allowed_origins:
            origins = [*(Origin(o) for o in config.allowed_origins), None]
        self._server = await listen(
            self._handle,
            config.host,
            config.port,
            process_request=router,
            server_header=SERVER_NAME,
            origins=origins,
            admit=self._gate.accepted,
        )
        self._runner_task = self.tasks.spawn(runner.run(), "game-loop")
        self.tasks.spawn(self.publisher.run(), "publisher")
        self.tasks.spawn(self.presence.run(), "presence")
        self.tasks.spawn(self.flusher.run(), "flusher")
        self.tasks.spawn(self.stats.run(), "player-stats")
        self.tasks.every(HEALTH_INTERVAL_S, self.health.check, "health")
        self.tasks.every(LOCK_CHECK_S, self.keep_lock, "server-lock")
        self.tasks.every(CHAT_SAVE_S, self.chat.save, "chat")
        desks: dict[str, GrantDesk | AdminDesk | ModerationDesk] = {
            "grants": GrantDesk(storage, runner),
            "admin": AdminDesk(storage, runner),
            "moderation": ModerationDesk(storage, self.moderation),
        }
        for name, desk in desks.items():
            take = partial(desk.take, DESK_WAIT_S, self.tasks.stopping)
            self.tasks.repeat(take, DESK_RETRY_S, name)
        self.tasks.every(CHAINS_POLL_S, lambda: _add_new_chains(db, chains), "chains")
        log.info("listening on http://%s:%d/ (WebSocket at /ws)", config.host, self.port)

    async def keep_lock(self) -> None:
        """The server lock must stay this server's for its whole life: it is what
        sends the command line's grants and adjustments through the game instead
        of straight to PostgreSQL. A lock whose PostgreSQL session ended is taken
        again; if another process holds it for ``LOCK_LOST_S`` (the ended session's
        own backend may take a while to go), this server stops (exit 1)."""
        try:
            held = await self.storage.db.keep_server_lock()
        except PillarPayoutError:
            return  # PostgreSQL is down: the health check says so; again next time
        now = time.monotonic()
        if held:
            if self._lock_missing_since is not None:
                log.warning("the server lock is this server's again")
            self._lock_missing_since = None
            return
        if self._lock_missing_since is None:
            self._lock_missing_since = now
            log.warning(
                "the server lock's PostgreSQL session ended and another process holds "
                "the lock: this server stops unless it is free within %.0f s",
                LOCK_LOST_S,
            )
        if now - self._lock_missing_since >= LOCK_LOST_S:
            log.error("another process holds the server lock: stopping")
            self.lost_lock = True
            self.request_stop()

    def _game_loop_alive(self) -> bool:
        return self._runner_task is not None and not self._runner_task.done()

    async def _handle(self, connection: ServerConnection) -> None:
        try:
            await ConnectionHandler(self._services, connection).run()
        except Exception:
            # One connection's bug must not reach the others or the game loop.
            log.exception("connection handler failed")

    async def stop(self) -> None:
        """Graceful (SIGTERM): no new bets; let a running round end within
        ``stop_timeout_s`` or void it; flush everything to PostgreSQL; close
        the sockets with 1001."""
        self._stopping.set()
        if self._gate is not None:
            self._gate.closing = True
        runner_task = self._runner_task
        # A loop that died (a bug) may have died mid-turn: the engine's picture
        # is not to be told then, only the write-ahead in Redis is flushed.
        loop_was_running = runner_task is not None and not runner_task.done()
        if runner_task is not None and loop_was_running:
            if not await self.runner.wait_round_over(self._stop_timeout_s):
                log.warning("the round did not end within %.0f s: voiding it", self._stop_timeout_s)
            self.runner.stop()
            await runner_task
        self.flusher.close()
        self.presence.close()
        self.stats.close()
        if runner_task is not None:
            self.health.close()
            self.publisher.close()
        # The loops end by themselves at their next turn; cancel only what is stuck.
        await self.tasks.stop(STOP_TIMEOUT_S)
        if runner_task is not None:
            round_id, open_bets = self.runner.open_bets() if loop_was_running else (None, [])
            with contextlib.suppress(PillarPayoutError):
                await self.chat.save()
                # Everything in Redis, the unfinished round included (void), to PostgreSQL.
                pending = await self.storage.live.pending_round_ids()
                _, held = await flush_or_hold(self.storage.live, self.storage.db, pending)
                log.info("flushed %d round(s) to PostgreSQL", len(pending) - len(held))
                if round_id not in held:
                    self._tell_refunds(round_id, open_bets)
            with contextlib.suppress(PillarPayoutError):
                await self.stats.summarise_now()  # else the next start catches up
        self.hub.finish()  # the last frames reach every socket before its 1001
        if self._server is not None:
            self._server.close(close_connections=True)
            await self._server.wait_closed()
        self.accounts.close()
        await self.storage.db.release_server_lock()

    def _tell_refunds(
        self, round_id: int | None, open_bets: list[tuple[int, int, int, int]]
    ) -> None:
        """The players whose bets the voided round refunded hear it before the 1001:
        a frame a bet, each with the balance after the refunds so far."""
        refunded: dict[int, int] = {}
        for user_id, slot, amount, balance in open_bets:
            refunded[user_id] = refunded.get(user_id, 0) + amount
            self.hub.send_user(
                user_id,
                encode_balance(balance + refunded[user_id], amount, "refund", round_id, slot),
            )

    def request_stop(self) -> None:
        self._stopping.set()

    async def wait_stopping(self) -> None:
        await self._stopping.wait()


async def _add_new_chains(db: Database, chains: Chains) -> None:
    """Chains salted while the server runs are played once the current one is used up."""
    with contextlib.suppress(PillarPayoutError):
        chains.add(await db.seed_chains())


async def check_appendonly(live: LiveStore, *, allow: bool) -> None:
    """Refuse a Redis that does not run with ``appendonly yes`` (or will not say):
    the write-ahead of every acknowledged bet lives there. ``allow``: warn instead."""
    value = await live.appendonly()
    if value == "yes":
        return
    where = f"Redis at {_mask(live.url)}"
    problem = (
        f"{where} has appendonly {value!r}"
        if value is not None
        else f"{where} refused CONFIG GET appendonly (an ACL?), so its durability is unknown"
    )
    if allow:
        log.warning(
            "%s; starting anyway (--allow-redis-without-aof): acknowledged bets and "
            "cash-outs can be lost if Redis stops",
            problem,
        )
        return
    raise ConfigError(
        f"{problem}; serve needs appendonly yes (CONFIG SET appendonly yes, and in its "
        "config file), or --allow-redis-without-aof to start without that promise"
    )


async def run(config: ServerConfig) -> int:
    """Run until SIGTERM/SIGINT; exit code 0 after a clean shutdown."""
    started = time.monotonic()
    storage = await config.storage.open()
    try:
        await check_appendonly(storage.live, allow=config.allow_redis_without_aof)
    except BaseException:
        await storage.close()
        raise
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
    return 1 if app.lost_lock else 0
