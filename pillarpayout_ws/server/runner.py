"""The game loop: drives the engine, makes its records durable, then sends its events.

One task owns the engine, and nothing else in the server touches it: every
read and write goes through this module. Connection handlers and the grant
desk append commands to a queue and wake the loop; each turn the loop

1. applies every queued command at the instant the server read its frame
   (``at_ms``, in arrival order): a cashout gets the multiplier of the moment
   it was read, never a later one because the loop was busy (writing a
   tick, waiting for Redis), and everything due before that moment (an
   auto-cashout, the crash) is played first,
2. ``advance(now)``: phases, ticks, auto-cashouts, the crash,
3. commits the turn's write-ahead records to Redis in ONE pipeline (the
   group commit) and waits for Redis to acknowledge it,
4. and only then sends the turn's events: acks to their users, the rest to
   everyone, the live-bets delta once per tick (while betting, when there
   are no ticks, at most once per ``tick_ms`` on its own), and answers the
   turn's account loads and grants.

So no ``bet_accepted``, ``bet_cancelled`` or ``cashed_out`` ever leaves
before its record is durable (architecture rule 3). If Redis is down, step 3
retries with backoff and nothing of that turn is sent; the loop resumes where
it stopped.

Reads: ``greet`` hands a newcomer's callback the game's snapshot at a moment
when the engine holds exactly what has been sent (between turns, or at the
end of the turn under way), so a ``hello`` never shows what the broadcasts
after it repeat or what a stalled commit has not yet made durable.

Beside the frames, the loop tells ``mirror`` (the relays' publisher, which
writes it to Redis off the acks' path) the game's state at every tick and
phase change (``game_state``: round, multiplier, integrity, phase, players
with a bet) and each bet of the round as it is placed and cashed out
(``active_bets``). A round of a chain other than the last one announced is
preceded by a ``fairness`` frame.

Time comes from the injected ``Clock`` (``server/clock.py``).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..engine.config import SLOTS, GameConfig
from ..engine.errors import EngineError
from ..engine.events import (
    BetAccepted,
    BetRefunded,
    BettingOpened,
    BetView,
    CancelDone,
    CashoutDone,
    CommandRejected,
    Crashed,
    Event,
    FundsGranted,
    GameSnapshot,
    GoalUpdated,
    RoundRunning,
    RoundVoided,
    Tick,
)
from ..engine.fairness import format_multiplier
from ..engine.game import Game
from ..engine.goals import Goal
from ..engine.growth import FULL_INTEGRITY, ONE_X, integrity_at
from ..engine.limits import Activity, Limits
from ..engine.phases import Phase
from ..engine.records import Record, RoundCrashed
from ..exceptions import RedisUnavailable, StorageError
from ..protocol import Fairness, encode_bets, encode_error, encode_event, encode_fairness
from ..retry import Backoff
from ..storage.flush import Flusher
from ..storage.live import LiveStore
from ..storage.postgres import Database
from .clock import Clock
from .fanout import Hub
from .metrics import Metrics
from .seeds import Chains

log = logging.getLogger("pillarpayout.server")

COMMIT_RETRY_FIRST_S = 0.05
COMMIT_RETRY_MAX_S = 2.0
IDLE_WAKE_S = 1.0  # with nothing due (never while a round exists), look again this often
FULL_GC_ROUNDS = 100
# With automatic collection off, a young generation past this many objects is
# collected anyway (only a very long, very busy round gets there).
GC_YOUNG_LIMIT = 1_000_000


@dataclass(frozen=True, slots=True)
class BetCommand:
    user_id: int
    amount: int  # cents
    auto_cashout: int | None  # hundredths
    ref: str | None
    # Game time (the clock's ms) when the server read the frame: the bet is
    # played at that instant, however late the loop gets to it.
    at_ms: int
    slot: int = 0
    # perf_counter() when the frame arrived: /metrics times it to its answer.
    received: float = field(default_factory=time.perf_counter)


@dataclass(frozen=True, slots=True)
class CashoutCommand:
    user_id: int
    ref: str | None
    at_ms: int  # as for BetCommand: the cashout is paid the multiplier of this instant
    slot: int = 0
    received: float = field(default_factory=time.perf_counter)


@dataclass(frozen=True, slots=True)
class CancelCommand:
    user_id: int
    ref: str | None
    at_ms: int  # as for BetCommand: betting is open or closed as of this instant
    slot: int = 0
    received: float = field(default_factory=time.perf_counter)


PlayerCommand = BetCommand | CashoutCommand | CancelCommand


@dataclass(frozen=True, slots=True)
class LoadAccount:
    """Make a user's wallet known to the engine; answered with its balance there."""

    user_id: int
    username: str
    balance: int  # PostgreSQL's: the engine keeps its own if already loaded
    done: asyncio.Future[int]
    # The player's self-imposed limits and flushed period totals (on login;
    # None for a grant's load): taken if the engine holds none yet.
    limits: Limits | None = None
    activity: Activity | None = None


@dataclass(frozen=True, slots=True)
class LimitsCommand:
    """Install a logged-in player's new limits (already stored in PostgreSQL)."""

    user_id: int
    limits: Limits
    done: asyncio.Future[None]


@dataclass(frozen=True, slots=True)
class GrantCommand:
    """Load the account if needed and credit it; answered with the new balance
    once the grant is durable, or with the engine's refusal."""

    account: LoadAccount
    amount: int
    key: str
    deadline: float | None = None  # Unix time: refused, not applied, after it (``_expired``)


@dataclass(frozen=True, slots=True)
class AdjustCommand:
    """Load the account if needed and adjust it (``Game.adjust``); answered like a grant."""

    account: LoadAccount
    amount: int  # cents, signed
    key: str
    reason: str
    deadline: float | None = None


@dataclass(frozen=True, slots=True)
class VoidCommand:
    """Void the round under way (``Game.void_round``); answered with its id once
    the turn is durable and sent, or with the engine's refusal."""

    done: asyncio.Future[tuple[int, int]]
    deadline: float | None = None


GameCommand = (
    BetCommand
    | CashoutCommand
    | CancelCommand
    | LoadAccount
    | GrantCommand
    | LimitsCommand
    | AdjustCommand
    | VoidCommand
)
Greeting = Callable[[GameSnapshot], object]


class Mirror(Protocol):
    """Where the loop tells the game's live state (``Publisher``)."""

    def game_state(self, fields: dict[str, str]) -> None: ...

    def round_opened(self) -> None: ...

    def bet(
        self, key: tuple[int, int], amount: int, placed_at: float, multiplier: int | None
    ) -> None: ...

    def cancelled(self, key: tuple[int, int]) -> None: ...


async def restore_game(db: Database, config: GameConfig, seeds: Chains) -> Game:
    """The engine as PostgreSQL left it: next round id, goals, history, bet refs.

    Recovery must have flushed every earlier round first: then PostgreSQL
    holds every bet ref the engine must still recognise, so a client
    replaying a bet across the restart is answered as before, not debited
    again.
    """
    goals = [
        Goal(r["id"], r["name"], r["target_height"], r["current_height"], r["reward"])
        for r in await db.goals()
    ]
    next_round_id = await db.last_round_id() + 1
    bet_refs = [
        BetAccepted(b.user_id, b.ref, b.round_id, b.amount, b.auto_cashout, b.balance_after, b.slot)
        for b in await db.bet_refs(next_round_id - config.ref_memory_rounds + 1)
    ]
    return Game(
        config,
        seeds,
        next_round_id=next_round_id,
        goals=goals,
        history=await db.recent_crashes(),
        bet_refs=bet_refs,
    )


def _expired(command: GrantCommand | AdjustCommand | VoidCommand) -> bool:
    """An operator's request that reaches the loop after its deadline is refused,
    not applied: its command line stops waiting soon after and says that nothing
    happened, which must stay true."""
    if command.deadline is None or time.time() <= command.deadline:
        return False
    done: asyncio.Future[Any] = (
        command.done if isinstance(command, VoidCommand) else command.account.done
    )
    if not done.done():
        done.set_exception(StorageError("it reached the game after its deadline; nothing was done"))
    return True


class GameRunner:
    """Owns the ``Game``; see the module docstring for one turn of the loop."""

    def __init__(
        self,
        game: Game,
        chains: Chains,
        live: LiveStore,
        flusher: Flusher,
        hub: Hub,
        metrics: Metrics,
        clock: Clock,
    ) -> None:
        self._game = game
        self._chains = chains
        self._announced_chain = chains.current.id
        self._live = live
        self._flusher = flusher
        self._hub = hub
        self._metrics = metrics
        self._clock = clock
        self._pending: list[GameCommand] = []
        self._holding = 0  # bets and cash-outs submitted, their answers not yet written
        self._wake = asyncio.Event()
        self._stopped = False
        self._in_turn = False
        self._greetings: list[Greeting] = []
        self.accepting_bets = True
        self._bets_delta: dict[tuple[int, int], BetView] = {}
        self._bets_sent_ms = 0  # when the last betting-phase bets frame went out
        self._rounds_since_full_gc = 0
        self.round_id: int | None = None  # the current round, as of the last turn
        self.sent_ms = 0  # game time up to which every event has been sent
        self.mirror: Mirror | None = None
        # The current round's bets: (user id, slot) -> (amount, when placed), and
        # the users who placed them, for the mirror.
        self._bets: dict[tuple[int, int], tuple[int, float]] = {}
        self._bettors: set[int] = set()
        self.turn_done = asyncio.Event()  # set after every turn (tests and shutdown wait on it)

    @property
    def game(self) -> Game:
        """The engine, for tests to inspect; the server itself never reaches in."""
        return self._game

    def fairness(self) -> Fairness:
        """The chain being played and the house edge, as ``hello`` and ``fairness`` show them."""
        return self._chains.fairness(self._game.config.house_edge)

    def bet_limits(self) -> tuple[int, int, int]:
        """The smallest and largest bet (cents) and the highest auto-cashout
        (hundredths), as ``hello`` shows them."""
        config = self._game.config
        return config.min_bet, config.max_bet, config.max_auto_cashout

    def open_bets(self) -> tuple[int | None, list[tuple[int, int, int, int]]]:
        """The current round and its open bets as (user id, slot, amount, balance
        before any refund), for the refunds of a round the shutdown voids. Only
        once the loop has stopped."""
        assert self._stopped and not self._in_turn
        game = self._game
        snapshot = game.snapshot()
        if snapshot.phase is Phase.CRASHED:
            return snapshot.round_id, []
        bets = [
            (view.user_id, view.slot, view.amount, game.balance_of(view.user_id) or 0)
            for view in snapshot.bets
            if view.status == "open"
        ]
        return snapshot.round_id, bets

    def now_ms(self) -> int:
        # Rounded, not truncated: an instant set as ms / 1000 reads back as ms.
        return round(self._clock.now() * 1000)

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
        if isinstance(command, PlayerCommand):
            self._hub.hold()  # released once its answer is written (_turn)
            self._holding += 1
        self._wake.set()

    async def load_account(
        self,
        user_id: int,
        username: str,
        balance: int,
        limits: Limits | None = None,
        activity: Activity | None = None,
    ) -> int:
        """Load a wallet into the engine (on login); its balance there once loaded."""
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.submit(LoadAccount(user_id, username, balance, done, limits, activity))
        return await done

    def limits_of(self, user_id: int) -> tuple[Limits | None, dict[str, int] | None]:
        """A loaded player's limits and period totals now (reads only)."""
        game = self._game
        return game.limits_of(user_id), game.usage_of(user_id, self.now_ms())

    async def void_round(self, deadline: float | None = None) -> tuple[int, int]:
        """Void the round under way (``Game.void_round``); its id and the bets
        refunded, once the refunds and the next round's opening are sent."""
        done: asyncio.Future[tuple[int, int]] = asyncio.get_running_loop().create_future()
        self.submit(VoidCommand(done, deadline))
        return await done

    async def set_limits(self, user_id: int, limits: Limits) -> None:
        """Install a player's new limits in the engine, from the next turn on."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.submit(LimitsCommand(user_id, limits, done))
        await done

    def greet(self, greeting: Greeting) -> None:
        """Call ``greeting`` with the game's snapshot: now if no turn is under way,
        else at the end of the turn, once its events are sent (module docstring)."""
        if self._in_turn:
            self._greetings.append(greeting)
        else:
            greeting(self._game.snapshot())

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
            self._hub.release(self._holding)
            self._holding = 0
            self._in_turn = False
            self._greet_waiting()

    async def _run(self) -> None:
        self._game.start(self.now_ms())
        await self._turn()
        while not self._stopped:
            due = self._game.next_due_ms()
            bets_due = self._betting_bets_due()
            if bets_due is not None and due is not None:
                due = min(due, bets_due)
            deadline = self._clock.now() + IDLE_WAKE_S if due is None else due / 1000
            await self._clock.sleep_until(deadline, self._wake)
            self._wake.clear()
            if self._stopped:
                break
            await self._turn()

    def stop(self) -> None:
        self._stopped = True
        self._wake.set()

    async def wait_round_over(self, timeout_s: float) -> bool:
        """Stop taking bets and wait (at most ``timeout_s`` real seconds) until the
        round running now, if any, is over.

        Over means crashed, or replaced: between two wake-ups the next round
        may already be running (a short cooldown and betting window, or a
        fast test clock), and it is not the one this waits for.
        """
        self.accepting_bets = False
        game = self._game
        running = game.round_id
        try:
            async with asyncio.timeout(timeout_s):
                while game.phase is Phase.RUNNING and game.round_id == running:
                    self.turn_done.clear()
                    await self.turn_done.wait()
        except TimeoutError:
            return False
        return True

    async def _turn(self) -> None:
        game = self._game
        now = self.now_ms()
        pending, self._pending = self._pending, []
        self._in_turn = True
        loaded: list[LoadAccount] = []
        voided: list[tuple[tuple[int, int], asyncio.Future[tuple[int, int]]]] = []
        for command in pending:
            if isinstance(command, GrantCommand | AdjustCommand | VoidCommand) and _expired(
                command
            ):
                continue
            if isinstance(command, BetCommand):
                game.place_bet(
                    command.at_ms,
                    command.user_id,
                    command.amount,
                    command.auto_cashout,
                    command.ref,
                    command.slot,
                )
            elif isinstance(command, CashoutCommand):
                game.cash_out(command.at_ms, command.user_id, command.ref, command.slot)
            elif isinstance(command, CancelCommand):
                game.cancel_bet(command.at_ms, command.user_id, command.ref, command.slot)
            elif isinstance(command, VoidCommand):
                try:
                    voided.append((game.void_round(now), command.done))
                except EngineError as exc:
                    command.done.set_exception(exc)
            elif isinstance(command, LimitsCommand):
                try:
                    game.set_limits(command.user_id, command.limits)
                except EngineError as exc:
                    command.done.set_exception(exc)
                else:
                    command.done.set_result(None)
            else:
                account = command if isinstance(command, LoadAccount) else command.account
                try:
                    game.load_account(
                        account.user_id,
                        account.username,
                        account.balance,
                        account.limits,
                        account.activity,
                    )
                    if isinstance(command, GrantCommand):
                        game.grant(account.user_id, command.amount, command.key)
                    elif isinstance(command, AdjustCommand):
                        game.adjust(account.user_id, command.amount, command.key, command.reason)
                except (ValueError, EngineError) as exc:
                    if not account.done.done():
                        account.done.set_exception(exc)
                else:
                    loaded.append(account)
        game.advance(now)
        records = game.records_to_persist()
        events = game.events_to_send()
        if records:
            await self._commit(records)
            for record in records:
                if isinstance(record, RoundCrashed):
                    self._flusher.round_completed(record.round_id)
        for (round_id, _), _ in voided:
            # Its write-ahead ends without a crash: the flush settles it void.
            self._flusher.round_completed(round_id)
        self._dispatch(events)
        self._send_betting_bets(now)
        answered = sum(isinstance(c, PlayerCommand) for c in pending)
        if answered:
            self._holding -= answered
            self._hub.release(answered)
        for account in loaded:
            if not account.done.done():
                account.done.set_result(game.balance_of(account.user_id) or 0)
        for result, done in voided:
            if not done.done():
                done.set_result(result)
        self._time_answers(pending)
        self.round_id = game.round_id
        self.sent_ms = now
        self._in_turn = False
        self._greet_waiting()
        if gc.get_count()[0] > GC_YOUNG_LIMIT:
            gc.collect(0)
        self.turn_done.set()

    def _greet_waiting(self) -> None:
        if self._greetings:
            greetings, self._greetings = self._greetings, []
            snapshot = self._game.snapshot()
            for greeting in greetings:
                try:
                    greeting(snapshot)
                except Exception:
                    # One newcomer's failure must not stop the game loop.
                    log.exception("a greeting failed")

    def _time_answers(self, pending: Sequence[GameCommand]) -> None:
        answered = time.perf_counter()
        for command in pending:
            if isinstance(command, BetCommand):
                self._metrics.answer_seconds.labels("bet").observe(answered - command.received)
            elif isinstance(command, CashoutCommand):
                self._metrics.answer_seconds.labels("cashout").observe(answered - command.received)
            elif isinstance(command, CancelCommand):
                self._metrics.answer_seconds.labels("cancel").observe(answered - command.received)

    async def _commit(self, records: list[Record]) -> None:
        """Commit ``records``, retrying until Redis took them, and exactly once:
        after a failure they go again only once Redis says the failed attempt
        was not applied (``LiveStore.commit``)."""
        backoff = Backoff(COMMIT_RETRY_FIRST_S, COMMIT_RETRY_MAX_S)
        key, failed = uuid.uuid4().hex, False
        while True:
            started = time.perf_counter()
            try:
                if not (failed and await self._live.committed(key)):
                    await self._live.commit(records, key)
            except RedisUnavailable as exc:
                failed = True
                self._metrics.redis_commit_failures.inc()
                log.warning(
                    "Redis commit failed; holding %d record(s) and their acks: %s",
                    len(records),
                    exc,
                )
                await asyncio.sleep(backoff.failed())
                continue
            self._metrics.redis_commit_seconds.observe(time.perf_counter() - started)
            return

    # -- events out --------------------------------------------------------

    def _dispatch(self, events: list[Event]) -> None:
        hub, ts = self._hub, time.time()
        for event in events:
            if isinstance(event, Tick):
                hub.tick(encode_event(event, ts=ts), self._take_bets_delta(event.round_id))
                self._metrics.ticks.inc()
                self._state(event.round_id, "running", event.m, event.integrity)
            elif isinstance(event, BetAccepted):
                hub.send_user(event.user_id, encode_event(event, ts=ts))
                self._metrics.bets.inc()
                key = (event.user_id, event.slot)
                self._note_bet_change(event.round_id, key)
                if event.round_id == self._game.round_id and key not in self._bets:
                    self._bets[key] = (event.amount, ts)  # not an old ack again
                    self._bettors.add(event.user_id)
                    self._mirror_bet(key, None)
            elif isinstance(event, CashoutDone):
                hub.send_user(event.user_id, encode_event(event, ts=ts))
                self._metrics.cashouts.labels(event.reason).inc()
                key = (event.user_id, event.slot)
                self._note_bet_change(event.round_id, key)
                if event.round_id == self._game.round_id:
                    self._mirror_bet(key, event.multiplier)
            elif isinstance(event, CancelDone):
                hub.send_user(event.user_id, encode_event(event, ts=ts))
                key = (event.user_id, event.slot)
                self._note_bet_change(event.round_id, key)
                if self._bets.pop(key, None) is not None and self.mirror is not None:
                    self.mirror.cancelled(key)
                if not any((event.user_id, slot) in self._bets for slot in range(SLOTS)):
                    self._bettors.discard(event.user_id)
            elif isinstance(event, CommandRejected):
                hub.send_user(event.user_id, encode_event(event, ts=ts))
                self._metrics.errors.labels(event.code).inc()
            elif isinstance(event, FundsGranted | BetRefunded):
                hub.send_user(event.user_id, encode_event(event, ts=ts))
            elif isinstance(event, RoundVoided):
                self._bets_delta.clear()  # the round is gone: its bets' news with it
                hub.broadcast(encode_event(event, ts=ts))
            elif isinstance(event, BettingOpened):
                if event.chain_id != self._announced_chain:
                    hub.broadcast(encode_fairness(self.fairness()))
                    self._announced_chain = event.chain_id
                hub.broadcast(encode_event(event, ts=ts))
                self._bets.clear()
                self._bettors.clear()
                if self.mirror is not None:
                    self.mirror.round_opened()
                self._state(event.round_id, "betting", ONE_X, FULL_INTEGRITY)
            elif isinstance(event, (RoundRunning, Crashed)):
                delta = self._take_bets_delta(event.round_id)
                if delta is not None:
                    hub.broadcast(delta)
                hub.broadcast(encode_event(event, ts=ts))
                if isinstance(event, RoundRunning):
                    self._state(event.round_id, "running", ONE_X, FULL_INTEGRITY)
                else:
                    crash = event.crash_point
                    self._state(event.round_id, "crashed", crash, integrity_at(crash))
                    self._metrics.rounds.inc()
                    hub.when_idle(self._collect_garbage)  # after the crash reached everyone
            elif isinstance(event, GoalUpdated):
                hub.broadcast(encode_event(event, ts=ts))

    def _state(self, round_id: int, state: str, m: int, integrity: int) -> None:
        if self.mirror is not None:
            self.mirror.game_state(
                {
                    "round_id": str(round_id),
                    "multiplier": format_multiplier(m),
                    "integrity": format_multiplier(integrity),  # hundredths of a percent
                    "state": state,
                    "active_players": str(len(self._bettors)),
                }
            )

    def _mirror_bet(self, key: tuple[int, int], multiplier: int | None) -> None:
        placed = self._bets.get(key)
        if self.mirror is not None and placed is not None:
            self.mirror.bet(key, placed[0], placed[1], multiplier)

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

    def _note_bet_change(self, round_id: int, key: tuple[int, int]) -> None:
        """Queue the bet's public view (the engine's) for the next ``bets`` frame."""
        view = self._game.bet_view(round_id, *key)
        if view is not None:  # None: the round is already over, its crash frame says it
            self._bets_delta[key] = view

    def _betting_bets_due(self) -> int | None:
        """While betting, when the bets that changed are due in a ``bets`` frame.

        Without it nobody would see the others' bets until the round runs. At
        most one a ``tick_ms``, as the ticks carry them once it runs: a crowd
        betting at once costs a frame of at most ``LIVE_BETS_LIMIT`` bets a
        tick to each client, not one per bet.
        """
        if self._game.phase is not Phase.BETTING or not self._bets_delta:
            return None
        return self._bets_sent_ms + self._game.config.tick_ms

    def _send_betting_bets(self, now: int) -> None:
        due, round_id = self._betting_bets_due(), self._game.round_id
        if due is None or now < due or round_id is None:
            return
        frame = self._take_bets_delta(round_id)
        if frame is not None:
            self._hub.broadcast(frame)
            self._bets_sent_ms = now

    def _take_bets_delta(self, round_id: int) -> bytes | None:
        """The ``bets`` frame of what changed since the last one, if anything did."""
        if not self._bets_delta:
            return None
        frame = encode_bets(round_id, list(self._bets_delta.values()))
        self._bets_delta.clear()
        return frame
