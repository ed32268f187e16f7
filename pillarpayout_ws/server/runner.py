"""The game loop: drives the engine, makes its records durable, then sends its events.

One task owns the engine. Connection handlers only append commands to a list
and wake the loop; each turn the loop

1. applies every queued command with the same ``now`` (monotonic ms),
2. ``advance(now)``: phases, ticks, auto-cashouts, the crash,
3. commits the turn's write-ahead records to Redis in ONE pipeline (the
   group commit) and waits for Redis to acknowledge it,
4. and only then sends the turn's events: acks to their users, the rest to
   everyone, the live-bets delta once per tick.

So no ``bet_accepted`` or ``cashed_out`` ever leaves before its record is
durable (architecture rule 3). If Redis is down, step 3 retries with backoff
and nothing of that turn is sent; the loop resumes where it stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from dataclasses import dataclass, field

from ..engine.errors import EngineError
from ..engine.events import (
    BetAccepted,
    BettingOpened,
    BetView,
    CashoutDone,
    CommandRejected,
    Crashed,
    Event,
    FundsGranted,
    GoalUpdated,
    RoundRunning,
    Tick,
)
from ..engine.game import Game
from ..engine.phases import Phase
from ..engine.records import Record, RoundCrashed
from ..exceptions import RedisUnavailable
from ..protocol import encode_bets, encode_error, encode_event
from ..storage.flush import Flusher
from ..storage.live import LiveStore
from .fanout import Hub
from .metrics import Metrics

log = logging.getLogger("pillarpayout.server")

COMMIT_RETRY_MAX_S = 2.0
FULL_GC_ROUNDS = 100
# With automatic collection off, a young generation past this many objects is
# collected anyway (only a very long, very busy round gets there).
GC_YOUNG_LIMIT = 1_000_000


@dataclass(frozen=True, slots=True)
class BetCommand:
    user_id: int
    amount: int
    auto_cashout: int | None
    ref: str | None
    # perf_counter() when the frame arrived: /metrics times it to its answer.
    received: float = field(default_factory=time.perf_counter)


@dataclass(frozen=True, slots=True)
class CashoutCommand:
    user_id: int
    ref: str | None
    received: float = field(default_factory=time.perf_counter)


@dataclass(frozen=True, slots=True)
class GrantCommand:
    user_id: int
    amount: int
    key: str
    # Resolved with the user's balance once the grant is durable.
    done: asyncio.Future[int]


GameCommand = BetCommand | CashoutCommand | GrantCommand


class GameRunner:
    """Owns the ``Game``; see the module docstring for one turn of the loop."""

    def __init__(
        self,
        game: Game,
        live: LiveStore,
        flusher: Flusher,
        hub: Hub,
        metrics: Metrics,
        *,
        time_scale: float = 1.0,
    ) -> None:
        """``time_scale`` > 1 runs game time that many times faster than the
        monotonic clock: tests play a 40 s round in 4 s. Production uses 1."""
        self.game = game
        self._live = live
        self._flusher = flusher
        self._hub = hub
        self._metrics = metrics
        self._time_scale = time_scale
        self._origin = time.monotonic()
        self._pending: list[GameCommand] = []
        self._wake = asyncio.Event()
        self._stopped = False
        self.accepting_bets = True
        self._bets_delta: dict[int, BetView] = {}
        self._rounds_since_full_gc = 0
        self.turn_done = asyncio.Event()  # set after every turn (tests and shutdown wait on it)

    def now_ms(self) -> int:
        """Game time: monotonic milliseconds, scaled by ``time_scale``."""
        return int((self._origin + (time.monotonic() - self._origin) * self._time_scale) * 1000)

    # -- commands in -------------------------------------------------------

    def submit(self, command: GameCommand) -> None:
        """Queue a command for the next turn (no await: handlers stay cheap)."""
        if isinstance(command, BetCommand) and not self.accepting_bets:
            self._hub.send_user(
                command.user_id,
                encode_error("shutting_down", "the server is shutting down", command.ref),
            )
            return
        self._pending.append(command)
        self._wake.set()

    # -- the loop ----------------------------------------------------------

    async def run(self) -> None:
        """Run turns until ``stop()``; automatic garbage collection stays off meanwhile
        (``_collect_garbage``)."""
        automatic_gc = gc.isenabled()
        gc.disable()
        try:
            await self._run()
        finally:
            if automatic_gc:
                gc.enable()

    async def _run(self) -> None:
        self.game.start(self.now_ms())
        await self._turn()
        while not self._stopped:
            due = self.game.next_due_ms()
            timeout = 1.0
            if due is not None:
                timeout = max(0.0, (due - self.now_ms()) / 1000 / self._time_scale)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()
            if self._stopped:
                break
            await self._turn()

    def stop(self) -> None:
        self._stopped = True
        self._wake.set()

    async def wait_round_over(self, timeout_s: float) -> bool:
        """Stop taking bets and wait (at most ``timeout_s``) until the round running
        now, if any, is over.

        Over means crashed, or replaced: between two wake-ups the next round
        may already be running (a short cooldown and betting window, or a
        fast test clock), and it is not the one this waits for.
        """
        self.accepting_bets = False
        deadline = time.monotonic() + timeout_s
        running = self.game.round_id
        while self.game.phase is Phase.RUNNING and self.game.round_id == running:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.turn_done.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.turn_done.wait(), remaining)
        return True

    async def _turn(self) -> None:
        now = self.now_ms()
        pending, self._pending = self._pending, []
        grants: list[GrantCommand] = []
        for command in pending:
            if isinstance(command, BetCommand):
                # The engine takes the multiplier as the wire number and checks it
                # itself; hundredths / 100 comes back exact under its rounding.
                target = None if command.auto_cashout is None else command.auto_cashout / 100
                self.game.place_bet(now, command.user_id, command.amount, target, command.ref)
            elif isinstance(command, CashoutCommand):
                self.game.cash_out(now, command.user_id, command.ref)
            else:
                try:
                    self.game.grant(command.user_id, command.amount, command.key)
                except (ValueError, EngineError) as exc:
                    command.done.set_exception(exc)
                else:
                    grants.append(command)
        self.game.advance(now)
        records = self.game.records_to_persist()
        events = self.game.events_to_send()
        if records:
            await self._commit(records)
            for record in records:
                if isinstance(record, RoundCrashed):
                    self._flusher.round_completed(record.round_id)
        for grant in grants:
            balance = self.game.balance_of(grant.user_id)
            if not grant.done.done():
                grant.done.set_result(balance if balance is not None else 0)
        self._dispatch(events)
        answered = time.perf_counter()
        for command in pending:
            if isinstance(command, BetCommand):
                self._metrics.answer_seconds.labels("bet").observe(answered - command.received)
            elif isinstance(command, CashoutCommand):
                self._metrics.answer_seconds.labels("cashout").observe(answered - command.received)
        if gc.get_count()[0] > GC_YOUNG_LIMIT:
            gc.collect(0)
        self.turn_done.set()

    async def _commit(self, records: list[Record]) -> None:
        backoff = 0.05
        while True:
            started = time.perf_counter()
            try:
                await self._live.commit(records)
            except RedisUnavailable as exc:
                self._metrics.redis_commit_failures.inc()
                log.warning(
                    "Redis commit failed; holding %d record(s) and their acks: %s",
                    len(records),
                    exc,
                )
                await asyncio.sleep(backoff)
                backoff = min(COMMIT_RETRY_MAX_S, backoff * 2)
                continue
            self._metrics.redis_commit_seconds.observe(time.perf_counter() - started)
            return

    # -- events out --------------------------------------------------------

    def _dispatch(self, events: list[Event]) -> None:
        hub, ts = self._hub, time.time()
        for event in events:
            if isinstance(event, Tick):
                hub.broadcast(encode_event(event, ts=ts), droppable=True)
                self._metrics.ticks.inc()
                self._flush_bets_delta(event.round_id)
            elif isinstance(event, BetAccepted):
                hub.send_user(event.user_id, encode_event(event, ts=ts))
                self._metrics.bets.inc()
                self._note_bet_change(event.round_id, event.user_id)
            elif isinstance(event, CashoutDone):
                hub.send_user(event.user_id, encode_event(event, ts=ts))
                self._metrics.cashouts.labels(event.reason).inc()
                self._note_bet_change(event.round_id, event.user_id)
            elif isinstance(event, CommandRejected):
                hub.send_user(event.user_id, encode_event(event, ts=ts))
                self._metrics.errors.labels(event.code).inc()
            elif isinstance(event, FundsGranted):
                hub.send_user(event.user_id, encode_event(event, ts=ts))
            elif isinstance(event, (BettingOpened, RoundRunning, Crashed, GoalUpdated)):
                if isinstance(event, (RoundRunning, Crashed)):
                    self._flush_bets_delta(event.round_id)
                hub.broadcast(encode_event(event, ts=ts))
                if isinstance(event, Crashed):
                    self._metrics.rounds.inc()
                    hub.when_idle(self._collect_garbage)  # after the crash reached everyone

    def _collect_garbage(self) -> None:
        """Collect in the cooldown, when no tick is due and no bet is taken.

        With thousands of connections a full collection takes hundreds of
        milliseconds, and even the automatic young-generation passes over one
        busy round's survivors took 17-70 ms each, every second or so, in the
        middle of a betting window. So automatic collection is off while the
        game runs (reference counting frees almost everything; cycles wait for
        the cooldown, or for ``GC_YOUNG_LIMIT``), and the collection runs here,
        once a round; the survivors are then frozen, so the next pass scans
        only what the next round allocated. Every ``FULL_GC_ROUNDS`` rounds the
        frozen objects are thawed first, so garbage among them is reclaimed too.
        """
        self._rounds_since_full_gc += 1
        if self._rounds_since_full_gc >= FULL_GC_ROUNDS:
            gc.unfreeze()
            self._rounds_since_full_gc = 0
        started = time.perf_counter()
        gc.collect()
        gc.freeze()
        self._metrics.gc_seconds.observe(time.perf_counter() - started)

    def _note_bet_change(self, round_id: int, user_id: int) -> None:
        """Queue the bet's public view (the engine's) for the next ``bets`` frame."""
        view = self.game.bet_view(round_id, user_id)
        if view is not None:  # None: the round is already over, its crash frame says it
            self._bets_delta[user_id] = view

    def _flush_bets_delta(self, round_id: int) -> None:
        if self._bets_delta:
            self._hub.broadcast(encode_bets(round_id, list(self._bets_delta.values())))
            self._bets_delta.clear()
