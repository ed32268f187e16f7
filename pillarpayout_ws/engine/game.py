"""The game: rounds, bets, cashouts and wallets as a pure state machine.

``Game`` is sans-I/O in the style of ``websockets``' protocol core: every
method takes the time (``now_ms``, monotonic milliseconds from the caller) and
a command, changes state, and queues what to send (``events_to_send()``) and
what to make durable first (``records_to_persist()``). It reads no clock,
draws no randomness and awaits nothing, so a 40-second round is tested in
microseconds by passing times by hand.

Timeline of a round (phases and their one transition table: ``phases.py``)::

    opened at t0 --betting_ms--> running at t1 = t0 + betting_ms
      --crash at t2 = t1 + elapsed_for(crash_point)--> crashed
      --cooldown_ms--> next round opened at t2 + cooldown_ms

Time rules, chosen so that outcomes never depend on how often the caller
drives the engine:

* Everything happens at its exact instant: betting ends at ``t1`` even if
  ``advance`` is called later; an auto-cashout target ``T`` fires at
  ``t1 + elapsed_for(T)``; the crash at ``t1 + elapsed_for(crash)``; the next
  round opens at ``crash + cooldown_ms``. A call that jumps past several of
  them plays them in time order (in multiplier order, which is the same
  thing): every target ``<= crash_point`` is paid, a target equal to the
  crash point included, then the crash. So as long as the caller drives the
  engine at least once per betting window, the records do not depend on when
  or how often it does.
* One exception keeps a stalled caller from burning rounds nobody could see:
  if the call that finds the cooldown over comes a whole betting window late,
  the next round opens at that call's time, with a full window.
  ``BettingOpened.betting_ms`` is always the window left at emission.
* Commands (``place_bet``, ``cancel_bet``, ``cash_out``) first ``advance`` to
  their ``now_ms``: a cashout stamped after the crash instant is refused with
  ``round_crashed``, a cancel stamped after betting ended with
  ``betting_closed``, even if no ``advance`` ran in between.
* Time never runs backwards: a ``now_ms`` earlier than one already seen is
  taken as the latest seen.
* Ticks are snapshots: one is emitted every ``tick_ms`` of running time, and
  a call that jumps over several tick instants emits only the latest one that
  precedes the crash. No tick ever shows the crash point or more.

A player's bad command is answered with ``CommandRejected`` and changes nothing
(the ``advance`` to its time is not part of the command: time moves anyway).
Idempotency: a bet ``ref`` already accepted from the same user in this round
gets the same ``BetAccepted`` again without a second debit or record; one
accepted in one of the last ``config.ref_memory_rounds`` rounds before is
refused with ``ref_reused``, which names that round: a ref is tied to the
round it was made for, so a retry is never taken for a new bet and an old
round's ack is never replayed as if it were this round's (a replayed bet ref
whose bet was since cancelled gets its ``BetAccepted`` too: it is that
frame's answer; the cancel's answer and the bets frame say the bet is gone).
A cashout of a bet already cashed out gets the same ``CashoutDone`` again, a
cancel of a bet already cancelled the same ``CancelDone`` (under the new
command's ref, with no second refund); a grant
``key`` already seen is answered with the first ``FundsGranted``. The bet refs
survive a restart: the server hands the engine the ``BetAccepted`` of earlier
rounds' bets (``bet_refs``, from storage). Grant keys live in the process
only (every ``pillarpayout grant`` makes a new one; storage's unique ledger
key is what refuses a replayed grant in PostgreSQL).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Final

from pillarpayout_ws.engine.bets import (
    Bet,
    BetKey,
    RoundBook,
    check_amount,
    check_auto_cashout,
    check_slot,
)
from pillarpayout_ws.engine.config import MAX_BALANCE, GameConfig
from pillarpayout_ws.engine.errors import (
    RejectCode,
    Rejection,
    TransitionError,
    UnknownAccountError,
)
from pillarpayout_ws.engine.events import (
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
from pillarpayout_ws.engine.fairness import RoundSeed, SeedSource, crash_point, seed_hash
from pillarpayout_ws.engine.goals import Goal, GoalBoard
from pillarpayout_ws.engine.growth import (
    FULL_INTEGRITY,
    ONE_X,
    elapsed_for,
    integrity_at,
    multiplier_at,
)
from pillarpayout_ws.engine.limits import Activity, Limits, check_bet, check_blocked, day_of
from pillarpayout_ws.engine.phases import (
    ACCEPTS_BETS,
    ACCEPTS_CANCELS,
    ACCEPTS_CASHOUTS,
    Phase,
    Trigger,
    next_phase,
)
from pillarpayout_ws.engine.records import (
    BetCancelled,
    BetPlaced,
    CashedOut,
    CashoutReason,
    Granted,
    Record,
    RoundCrashed,
    RoundOpened,
)

__all__ = [
    "Event",
    "Game",
    "GameConfig",
    "GameSnapshot",
    "Goal",
    "Phase",
    "Record",
    "RoundSeed",
    "SeedSource",
]

HISTORY_LENGTH: Final = 50
"""How many recent ``(round_id, crash_point)`` the game keeps for newcomers."""


@dataclass(slots=True, eq=False)
class _Account:
    user_id: int
    username: str
    balance: int
    # Self-imposed limits and the running period totals they are checked
    # against; None for an account loaded without them (a grant to a user
    # not logged in, engine tests): no limits apply until a login loads them.
    limits: Limits | None = None
    activity: Activity | None = None


@dataclass(slots=True, eq=False)
class _Round:
    round_id: int
    seed: RoundSeed
    seed_hash: str
    # Secret until the crash: only _crash() and snapshot() after it read these.
    crash_point: int
    crash_elapsed: int
    betting_ends_ms: int
    book: RoundBook
    running_ms: int = 0
    crashed_ms: int = 0
    last_tick: int = 0
    # The public view of each bet, kept current as bets change so a
    # newcomer's snapshot does not rebuild 10,000 views; the tuple is cached
    # until the next change.
    views: dict[BetKey, BetView] = field(default_factory=dict)
    views_cache: tuple[BetView, ...] | None = None


class Game:
    """One game: the rounds, the wallets of loaded accounts, and community goals."""

    def __init__(
        self,
        config: GameConfig,
        seeds: SeedSource,
        *,
        next_round_id: int,
        goals: Sequence[Goal] = (),
        history: Sequence[tuple[int, int]] = (),
        bet_refs: Sequence[BetAccepted] = (),
    ) -> None:
        """Set up the game, idle until ``start``.

        ``next_round_id`` is the id the first round will get; ``goals`` the
        community goals in order; ``history`` the recent ``(round_id,
        crash_point)`` oldest first, of which the last 50 are kept;
        ``bet_refs`` the first answers to bets placed with a ``ref`` in
        earlier rounds (a restarted server's memory, from storage), of which
        those of the last ``config.ref_memory_rounds`` rounds are remembered.
        """
        if type(next_round_id) is not int or next_round_id < 1:
            raise ValueError(f"next_round_id must be an int >= 1, got {next_round_id!r}")
        self._config = config
        self._seeds = seeds
        self._max_profit = config.max_profit
        self._next_round_id = next_round_id
        self._goals = GoalBoard(goals)
        self._history: deque[tuple[int, int]] = deque(history, maxlen=HISTORY_LENGTH)
        self._accounts: dict[int, _Account] = {}
        self._grants: dict[str, FundsGranted] = {}
        # Bet refs (``_place_bet``): this round's with their acks, to answer a
        # replay with the same ack; the earlier rounds' still remembered as
        # the hash of (user id, ref) -> round id, all a ``ref_reused`` needs.
        # That is about 100 bytes a bet instead of 300 with the ack, the key and
        # the ref's text: 1,000 rounds of 10,000 bets hold 1 GB, not 3. Two
        # keys sharing a 64-bit hash (a chance under one in 10^12 with 10 million
        # remembered) would refuse one new bet with ``ref_reused``: no money
        # moves, and the client's next bet has a new ref anyway.
        self._bet_refs: dict[tuple[int, str], BetAccepted] = {}
        self._earlier_refs: dict[int, int] = {}
        # The hashes of each round's refs, oldest first, to forget them in order.
        self._ref_rounds: deque[list[int]] = deque()
        self._remember_refs(bet_refs)
        self._phase = Phase.IDLE
        self._round: _Round | None = None
        self._previous: _Round | None = None
        self._now: int | None = None
        self._events: list[Event] = []
        self._records: list[Record] = []

    def _remember_refs(self, bet_refs: Sequence[BetAccepted]) -> None:
        # One list per earlier round still inside the memory window, so they are
        # forgotten in order as new rounds open, exactly as if played here.
        first = max(1, self._next_round_id - self._config.ref_memory_rounds + 1)
        by_round: dict[int, list[int]] = {
            round_id: [] for round_id in range(first, self._next_round_id)
        }
        for accepted in sorted(bet_refs, key=lambda a: a.round_id):
            hashes = by_round.get(accepted.round_id)
            if accepted.ref is None or hashes is None:
                continue
            key = hash((accepted.user_id, accepted.ref))
            previous = self._earlier_refs.get(key)
            if previous is not None:  # reused after an older round was forgotten
                by_round[previous].remove(key)
            self._earlier_refs[key] = accepted.round_id
            hashes.append(key)
        self._ref_rounds.extend(by_round.values())

    # -- reading -------------------------------------------------------------

    @property
    def config(self) -> GameConfig:
        """The rules this game runs with."""
        return self._config

    @property
    def phase(self) -> Phase:
        """The current phase (``idle`` before ``start``)."""
        return self._phase

    @property
    def round_id(self) -> int | None:
        """The current round's id, ``None`` before ``start``."""
        return None if self._round is None else self._round.round_id

    @property
    def seed_hash(self) -> str | None:
        """The current round's public ``sha256(server_seed)``, ``None`` before ``start``."""
        return None if self._round is None else self._round.seed_hash

    @property
    def now_ms(self) -> int | None:
        """The latest time the engine has been driven to."""
        return self._now

    @property
    def history(self) -> tuple[tuple[int, int], ...]:
        """Recent ``(round_id, crash_point)``, oldest first, at most 50."""
        return tuple(self._history)

    @property
    def active_goal(self) -> Goal | None:
        """The community goal rounds are building, if any is unfinished."""
        return self._goals.active

    @property
    def goals(self) -> tuple[Goal, ...]:
        """Every community goal as it stands, in order."""
        return self._goals.goals

    def balance_of(self, user_id: int) -> int | None:
        """The user's balance in cents, ``None`` if the account is not loaded."""
        account = self._accounts.get(user_id)
        return None if account is None else account.balance

    def bet_view(self, round_id: int, user_id: int, slot: int = 0) -> BetView | None:
        """The public view of a user's bet in ``slot`` of ``round_id``, while it is current."""
        r = self._round
        if r is None or r.round_id != round_id:
            return None
        return r.views.get((user_id, slot))

    def next_due_ms(self) -> int | None:
        """The next instant at which ``advance`` has something to do, if any.

        For the server's game loop to sleep until: the end of betting, the
        next tick, auto/forced cashout or crash instant, or the end of the
        cooldown. ``None`` while idle. Server-side only: it is derived from
        the crash point and must never be sent to clients.
        """
        r = self._round
        if r is None:
            return None
        if self._phase is Phase.BETTING:
            return r.betting_ends_ms
        if self._phase is Phase.CRASHED:
            return r.crashed_ms + self._config.cooldown_ms
        due = r.running_ms + min(r.crash_elapsed, (r.last_tick + 1) * self._config.tick_ms)
        bet = r.book.next_auto()
        force = r.book.force_multiplier()
        # Only cashouts at or below the crash point can happen before it.
        for multiplier in (None if bet is None else bet.auto_cashout, force):
            if multiplier is not None and multiplier <= r.crash_point:
                due = min(due, r.running_ms + elapsed_for(multiplier))
        return due

    def snapshot(self) -> GameSnapshot:
        """Everything a newcomer needs to draw the game, as of the last time seen.

        Before the crash it holds nothing derived from the crash point or the
        server seed: ``m`` and ``integrity`` follow from elapsed time alone.
        """
        goal = self._goals.active
        history = tuple(self._history)
        r = self._round
        if r is None or self._now is None:
            return GameSnapshot(
                Phase.IDLE,
                None,
                None,
                None,
                None,
                ONE_X,
                FULL_INTEGRITY,
                0,
                0,
                None,
                history,
                goal,
                (),
            )
        crash: int | None = None
        betting_left = 0
        if self._phase is Phase.BETTING:
            elapsed, m = 0, ONE_X
            betting_left = max(0, r.betting_ends_ms - self._now)
        elif self._phase is Phase.RUNNING:
            elapsed = self._now - r.running_ms
            m = multiplier_at(elapsed)
        else:
            elapsed, m = r.crash_elapsed, r.crash_point
            crash = r.crash_point
        return GameSnapshot(
            self._phase,
            r.round_id,
            r.seed_hash,
            r.seed.chain_id,
            r.seed.nonce,
            m,
            integrity_at(m),
            elapsed,
            betting_left,
            crash,
            history,
            goal,
            self._bet_views(r),
        )

    def _bet_views(self, r: _Round) -> tuple[BetView, ...]:
        if r.views_cache is None:
            # A cancelled bet is the bets frame's news once, then listed nowhere.
            views = [view for view in r.views.values() if view.status != "cancelled"]
            if self._phase is Phase.CRASHED:
                # Bets still shown open when the pillar fell are the lost ones.
                r.views_cache = tuple(
                    replace(view, status="lost") if view.status == "open" else view
                    for view in views
                )
            else:
                r.views_cache = tuple(views)
        return r.views_cache

    # -- outboxes ------------------------------------------------------------

    def events_to_send(self) -> list[Event]:
        """The events since the last call, in the order they happened; clears them."""
        events, self._events = self._events, []
        return events

    def records_to_persist(self) -> list[Record]:
        """The write-ahead records since the last call, in order; clears them.

        The server commits them (one Redis pipeline) before sending the
        acknowledgements among ``events_to_send()``.
        """
        records, self._records = self._records, []
        return records

    # -- accounts ------------------------------------------------------------

    def load_account(
        self,
        user_id: int,
        username: str,
        balance: int,
        limits: Limits | None = None,
        activity: Activity | None = None,
    ) -> None:
        """Make a user's wallet known to the engine (on login).

        Idempotent: if the account is already loaded, the engine's balance (which
        may include bets and payouts not yet flushed) is kept and nothing changes.
        ``limits`` and ``activity`` (the player's self-imposed limits and their
        flushed bets' period totals, from PostgreSQL) are taken when the account
        has none yet: an account loaded by a grant gets them at its first login.
        Once the engine holds them it keeps counting every bet it accepts, so
        its totals include what is not flushed yet; every bet of an account is
        placed while it is loaded (accounts are never unloaded), and a restart
        flushes every round before anyone logs in, so PostgreSQL's totals at
        the first load are complete.
        """
        account = self._accounts.get(user_id)
        if account is not None:
            if account.limits is None and limits is not None:
                account.limits = limits
                account.activity = activity or Activity()
            return
        if type(balance) is not int or not 0 <= balance <= MAX_BALANCE:
            raise ValueError(f"balance must be cents in [0, {MAX_BALANCE}], got {balance!r}")
        account = _Account(user_id, username, balance)
        if limits is not None:
            account.limits = limits
            account.activity = activity or Activity()
        self._accounts[user_id] = account

    def limits_of(self, user_id: int) -> Limits | None:
        """A loaded account's self-imposed limits (as last set), or ``None``."""
        account = self._accounts.get(user_id)
        return None if account is None else account.limits

    def usage_of(self, user_id: int, now_ms: int) -> dict[str, int] | None:
        """A loaded account's running totals at ``now_ms``: ``daily_loss``,
        ``daily_wager``, ... in cents (see ``engine/limits.py``)."""
        account = self._accounts.get(user_id)
        if account is None or account.activity is None:
            return None
        day = day_of(now_ms)
        usage: dict[str, int] = {}
        for period in ("daily", "weekly", "monthly"):
            wagered, loss = account.activity.totals(period, day)
            usage[f"{period}_loss"] = loss
            usage[f"{period}_wager"] = wagered
        return usage

    def set_limits(self, user_id: int, limits: Limits) -> None:
        """Install a loaded account's new limits (already stored by the caller).

        ``UnknownAccountError`` for an account never loaded.
        """
        account = self._accounts.get(user_id)
        if account is None:
            raise UnknownAccountError(f"account {user_id} is not loaded")
        account.limits = limits
        if account.activity is None:
            account.activity = Activity()

    def grant(self, user_id: int, amount: int, key: str) -> None:
        """Credit ``amount`` cents to a loaded account (starting funds, operator grant).

        Emits ``FundsGranted`` and records ``Granted``. A ``key`` seen before
        is a no-op that emits the first answer again. A non-positive amount,
        or one that would lift the balance past ``MAX_BALANCE``, raises
        ``ValueError``; an account never loaded raises ``UnknownAccountError``.
        """
        previous = self._grants.get(key)
        if previous is not None:
            self._events.append(previous)
            return
        if type(amount) is not int or amount <= 0:
            raise ValueError(f"a grant must be a positive number of cents, got {amount!r}")
        account = self._accounts.get(user_id)
        if account is None:
            raise UnknownAccountError(f"account {user_id} is not loaded")
        if account.balance + amount > MAX_BALANCE:
            raise ValueError(f"a grant may not lift a balance past {MAX_BALANCE} cents")
        account.balance += amount
        event = FundsGranted(user_id, key, amount, account.balance)
        self._grants[key] = event
        self._events.append(event)
        self._records.append(Granted(user_id, amount, key, account.balance))

    def adjust(self, user_id: int, amount: int, key: str, reason: str) -> None:
        """An operator's correction of a loaded account: ``amount`` cents, a credit
        or (negative) a debit, with the operator's ``reason``.

        Emits ``FundsGranted`` (reason ``adjust``) and records ``Granted`` (kind
        ``adjust``); a ``key`` seen before is a no-op that emits the first
        answer again. ``ValueError`` for an amount that is not a non-zero int,
        a debit larger than the balance the engine holds (which includes what
        is not flushed yet), or a credit past ``MAX_BALANCE``;
        ``UnknownAccountError`` for an account never loaded.
        """
        previous = self._grants.get(key)
        if previous is not None:
            self._events.append(previous)
            return
        if type(amount) is not int or amount == 0:
            raise ValueError(f"an adjustment is a non-zero number of cents, got {amount!r}")
        account = self._accounts.get(user_id)
        if account is None:
            raise UnknownAccountError(f"account {user_id} is not loaded")
        if account.balance + amount < 0:
            raise ValueError(
                f"the balance is {account.balance / 100:.2f}: a debit of "
                f"{-amount / 100:.2f} would take it below zero"
            )
        if account.balance + amount > MAX_BALANCE:
            raise ValueError(f"an adjustment may not lift a balance past {MAX_BALANCE} cents")
        account.balance += amount
        event = FundsGranted(user_id, key, amount, account.balance, "adjust")
        self._grants[key] = event
        self._events.append(event)
        self._records.append(Granted(user_id, amount, key, account.balance, "adjust", reason))

    # -- driving the rounds --------------------------------------------------

    def start(self, now_ms: int) -> None:
        """Open the first round's betting phase. A second call raises ``TransitionError``."""
        phase = next_phase(self._phase, Trigger.START)
        now = self._clock(now_ms)
        self._open_round(now, now, phase)

    def advance(self, now_ms: int) -> None:
        """Play everything due up to ``now_ms``, in time order.

        Ends betting, starts running, fires auto-cashouts and forced cashouts
        at their exact instants, emits the latest due tick, crashes the round
        at its crash instant and opens the next round after the cooldown.
        O(1) in the number of open bets, plus the cashouts that fall due.
        """
        now = self._clock(now_ms)
        while True:
            r = self._round
            if r is None:
                return
            if self._phase is Phase.BETTING:
                if now < r.betting_ends_ms:
                    return
                self._begin_running(r)
            elif self._phase is Phase.RUNNING:
                self._run_until(r, now)
                if self._phase is Phase.RUNNING:
                    return
            elif self._phase is Phase.CRASHED:
                opens = r.crashed_ms + self._config.cooldown_ms
                if now < opens:
                    return
                if now >= opens + self._config.betting_ms:
                    # A stall swallowed the whole betting window: start the
                    # schedule afresh rather than play rounds nobody could see.
                    opens = now
                self._open_round(opens, now, next_phase(self._phase, Trigger.COOLDOWN_ENDS))
            else:
                raise TransitionError(f"a round exists in phase {self._phase.value!r}")

    def _clock(self, now_ms: int) -> int:
        # Time never runs backwards: commands stamped before the last step
        # happen at the last step.
        if self._now is not None and now_ms < self._now:
            return self._now
        self._now = now_ms
        return now_ms

    def _open_round(self, opens: int, now: int, phase: Phase) -> None:
        # Everything that can fail (the seed source, a malformed seed) runs
        # before the first change, so a failure half-applies nothing.
        seed = self._seeds.next_round_seed()
        edge = self._config.house_edge
        crash = crash_point(seed.server_seed, seed.client_seed, edge)
        public_hash = seed_hash(seed.server_seed)
        round_id = self._next_round_id
        r = _Round(
            round_id=round_id,
            seed=seed,
            seed_hash=public_hash,
            crash_point=crash,
            crash_elapsed=elapsed_for(crash),
            betting_ends_ms=opens + self._config.betting_ms,
            book=RoundBook(self._max_profit),
        )
        self._next_round_id = round_id + 1
        if self._round is not None:  # its refs are an earlier round's from now on
            for key in self._ref_rounds[-1]:
                self._earlier_refs[key] = self._round.round_id
            self._bet_refs.clear()
        self._previous, self._round, self._phase = self._round, r, phase
        self._ref_rounds.append([])
        while len(self._ref_rounds) > self._config.ref_memory_rounds:
            for key in self._ref_rounds.popleft():
                self._earlier_refs.pop(key, None)  # not del: two refs of a round may share a hash
        self._records.append(
            RoundOpened(
                round_id, seed.chain_id, seed.nonce, public_hash, seed.client_seed, edge, opens
            )
        )
        self._events.append(
            BettingOpened(
                round_id,
                public_hash,
                r.betting_ends_ms - now,
                seed.chain_id,
                seed.nonce,
                edge,
            )
        )

    def _begin_running(self, r: _Round) -> None:
        self._phase = next_phase(self._phase, Trigger.BETTING_ENDS)
        # Running starts when betting was due to end, not when we noticed.
        r.running_ms = r.betting_ends_ms
        self._events.append(RoundRunning(r.round_id))

    def _run_until(self, r: _Round, now: int) -> None:
        elapsed = now - r.running_ms
        # The latest tick instant due, but never one at or past the crash.
        tick_limit = min(elapsed, r.crash_elapsed - 1)
        tick = tick_limit // self._config.tick_ms if tick_limit > 0 else 0
        if tick > r.last_tick:
            tick_elapsed = tick * self._config.tick_ms
            tick_m = multiplier_at(tick_elapsed)
            # What happened before the tick's instant goes out before it.
            self._settle_through(r, tick_m)
            r.last_tick = tick
            self._events.append(Tick(r.round_id, tick_m, integrity_at(tick_m), tick_elapsed))
        # Past the crash instant everything up to the crash point is due; not
        # computing m there also keeps a caller's long stall cheap.
        reached = r.crash_point if elapsed >= r.crash_elapsed else multiplier_at(elapsed)
        self._settle_through(r, reached)

    def _settle_through(self, r: _Round, reached: int) -> None:
        """Play the cashouts and the crash whose multiplier is ``<= reached``.

        Multiplier order is time order (growth is monotonic). At one
        multiplier, auto-cashouts go before a forced cashout, and both before
        the crash: a target equal to the crash point wins.
        """
        book = r.book
        crash = r.crash_point
        while True:
            bet = book.next_auto()
            target = None if bet is None else bet.auto_cashout
            force = book.force_multiplier()
            if (
                bet is not None
                and target is not None
                and (force is None or target <= force)
                and target <= reached
                and target <= crash
            ):
                self._pay(r, bet, target, "auto", None)
            elif force is not None and force <= reached and force <= crash:
                for open_bet in book.open_bets():
                    self._pay(r, open_bet, force, "forced", None)
            elif crash <= reached:
                self._crash(r)
                return
            else:
                return

    def _pay(
        self, r: _Round, bet: Bet, multiplier: int, reason: CashoutReason, ref: str | None
    ) -> None:
        payout = bet.amount * multiplier // ONE_X
        account = self._accounts[bet.user_id]
        r.book.settle(bet, payout)
        account.balance += payout
        if account.activity is not None:
            account.activity.paid(bet.placed_day, payout)
        event = CashoutDone(
            bet.user_id, ref, r.round_id, multiplier, payout, account.balance, reason, bet.slot
        )
        bet.cashout = event
        key = bet.key
        r.views[key] = replace(
            r.views[key], status="cashed_out", multiplier=multiplier, payout=payout
        )
        r.views_cache = None
        self._events.append(event)
        self._records.append(
            CashedOut(
                r.round_id, bet.user_id, multiplier, payout, account.balance, reason, bet.slot
            )
        )

    def _crash(self, r: _Round) -> None:
        self._phase = next_phase(self._phase, Trigger.COLLAPSE)
        r.crashed_ms = r.running_ms + r.crash_elapsed
        r.book.lose_open()
        r.views_cache = None
        seed = r.seed
        self._events.append(
            Crashed(
                r.round_id,
                r.crash_point,
                seed.server_seed,
                seed.client_seed,
                seed.nonce,
                r.crash_elapsed,
            )
        )
        self._records.append(
            RoundCrashed(r.round_id, r.crash_point, r.crash_elapsed, seed.server_seed, r.crashed_ms)
        )
        self._history.append((r.round_id, r.crash_point))
        announced, record = self._goals.add_round(r.round_id, len(r.book), r.crash_point)
        self._events.extend(GoalUpdated.of(goal, status) for goal, status in announced)
        if record is not None:
            self._records.append(record)

    # -- operator commands ---------------------------------------------------

    def void_round(self, now_ms: int) -> tuple[int, int]:
        """Void the round under way (``pillarpayout void-round``); its id and how
        many bets were refunded.

        After advancing to ``now_ms`` (which plays every cash-out and the
        crash due by then), a round still betting or running is voided:
        cash-outs already made stand, every open bet is refunded
        (``BetRefunded`` each), ``RoundVoided`` is emitted, and the next round
        opens at once. No record is written for the void itself: the voided
        round's write-ahead simply never gets a ``RoundCrashed``, which is
        exactly what storage settles as void (``settle_round``: acknowledged
        cash-outs honoured, every other bet refunded), whether the flusher or
        a later recovery flushes it; so the engine's balances and PostgreSQL's
        agree. Its crash point and seed stay unrevealed, and it adds nothing to
        the history or the goals. ``TransitionError`` when no round is betting
        or running (nothing changes).
        """
        self.advance(now_ms)
        r = self._round
        phase = next_phase(self._phase, Trigger.VOID)
        assert r is not None and self._now is not None
        refunded = r.book.refund_open()
        for bet in refunded:
            account = self._accounts[bet.user_id]
            account.balance += bet.amount
            if account.activity is not None:
                account.activity.refunded(bet.placed_day, bet.amount)
            r.views[bet.key] = replace(r.views[bet.key], status="refunded")
            self._events.append(
                BetRefunded(bet.user_id, r.round_id, bet.slot, bet.amount, account.balance)
            )
        r.views_cache = None
        self._events.append(RoundVoided(r.round_id, len(refunded)))
        self._open_round(self._now, self._now, phase)
        return r.round_id, len(refunded)

    # -- player commands -----------------------------------------------------

    def place_bet(
        self,
        now_ms: int,
        user_id: int,
        amount: int,
        auto_cashout: int | None,
        ref: str | None,
        slot: int = 0,
    ) -> None:
        """A player's bet in ``slot``: ``amount`` cents, optional ``auto_cashout`` in hundredths.

        Promises: after advancing to ``now_ms``, either the stake is debited and
        ``BetAccepted`` emitted with a ``BetPlaced`` record, or ``BetAccepted``
        is emitted again for a ``ref`` already accepted in this round, or
        ``CommandRejected`` is emitted and nothing changes. Codes:
        ``unknown_account``, ``ref_reused`` (the ref named a bet of an earlier
        round), ``self_excluded``, ``cooling_off``, ``invalid_slot``,
        ``invalid_amount``, ``invalid_auto_cashout``,
        ``betting_closed``, ``already_bet`` (this slot is taken),
        ``insufficient_funds``, ``limit_reached`` (checked in that order; the
        self-imposed limits: ``engine/limits.py``). A ``ref`` is the user's
        across slots: a replay gets its bet's first answer, whatever slot the
        replay names.
        """
        self.advance(now_ms)
        self._answer(
            user_id, ref, lambda: self._place_bet(user_id, amount, auto_cashout, ref, slot)
        )

    def _answer(self, user_id: int, ref: str | None, command: Callable[[], None]) -> None:
        """Run a player's ``command``; a ``Rejection`` it raises is its answer, nothing changed."""
        try:
            command()
        except Rejection as rejection:
            self._events.append(
                CommandRejected(user_id, ref, rejection.code.value, rejection.message)
            )

    def _place_bet(
        self, user_id: int, amount: int, auto_cashout: int | None, ref: str | None, slot: int
    ) -> None:
        account = self._account(user_id)
        r = self._round
        if ref is not None:
            previous = self._bet_refs.get((user_id, ref))  # this round's
            if previous is not None:
                self._events.append(previous)
                return
            earlier = self._earlier_refs.get(hash((user_id, ref)))
            if earlier is not None:
                raise Rejection(
                    RejectCode.REF_REUSED,
                    f"ref {ref!r} named your bet in round {earlier}; a new bet needs a new ref",
                )
        now = self._now if self._now is not None else 0
        if account.limits is not None:
            check_blocked(account.limits, now)
        check_slot(slot)
        check_amount(amount, self._config)
        check_auto_cashout(auto_cashout, self._config)
        stake, target = amount, auto_cashout
        if r is None or self._phase not in ACCEPTS_BETS:
            raise Rejection(RejectCode.BETTING_CLOSED, "bets are taken only while betting is open")
        key = (user_id, slot)
        taken = r.book.get(key)
        if taken is not None and taken.status == "cancelled":
            # Its ledger keys are the slot's (storage/settle.py): a second bet
            # would collide with them, so the slot waits for the next round.
            raise Rejection(
                RejectCode.ALREADY_BET,
                f"you cancelled your bet in slot {slot} of this round: "
                "bet in the other slot, or in this one next round",
            )
        if taken is not None:
            raise Rejection(
                RejectCode.ALREADY_BET, f"you already have a bet in slot {slot} of this round"
            )
        if account.balance < stake:
            raise Rejection(RejectCode.INSUFFICIENT_FUNDS, "your balance is too low for this bet")
        if account.limits is not None and account.activity is not None:
            check_bet(account.limits, account.activity, now, stake)
        # Every check passed: from here on nothing can fail.
        account.balance -= stake
        day = day_of(now)
        if account.activity is not None:
            account.activity.staked(day, stake)
        accepted = BetAccepted(user_id, ref, r.round_id, stake, target, account.balance, slot)
        r.book.add(Bet(user_id, ref, r.round_id, stake, target, accepted, slot, day))
        r.views[key] = BetView(user_id, account.username, stake, "open", None, None, slot)
        r.views_cache = None
        if ref is not None:
            self._bet_refs[user_id, ref] = accepted
            self._ref_rounds[-1].append(hash((user_id, ref)))
        self._events.append(accepted)
        self._records.append(
            BetPlaced(r.round_id, user_id, ref, stake, target, account.balance, self._now, slot)
        )

    def cancel_bet(self, now_ms: int, user_id: int, ref: str | None, slot: int = 0) -> None:
        """A player takes back the bet in ``slot`` while its round is still betting.

        Promises: after advancing to ``now_ms`` (so betting that ended by then
        is closed, however late the call), either the stake is refunded with
        ``CancelDone`` and a ``BetCancelled`` record, the bet leaves the public
        list and stops counting toward the player's limits, or a bet already
        cancelled gets its ``CancelDone`` again (no second refund), or
        ``CommandRejected`` is emitted and nothing changes. Codes:
        ``unknown_account``, ``invalid_slot``, ``no_active_bet`` (no bet in
        this slot of the current round), ``betting_closed`` (the round runs or
        crashed: the bet rides). The slot stays taken until the next round
        (``place_bet`` says ``already_bet``).
        """
        self.advance(now_ms)
        self._answer(user_id, ref, lambda: self._cancel_bet(user_id, ref, slot))

    def _cancel_bet(self, user_id: int, ref: str | None, slot: int) -> None:
        account = self._account(user_id)
        check_slot(slot)
        key = (user_id, slot)
        r = self._round
        bet = None if r is None else r.book.get(key)
        if r is None or bet is None:
            raise Rejection(
                RejectCode.NO_ACTIVE_BET, f"you have no bet in slot {slot} of this round"
            )
        if bet.cancel is not None:
            self._events.append(replace(bet.cancel, ref=ref))
            return
        if self._phase not in ACCEPTS_CANCELS or bet.status != "open":
            raise Rejection(
                RejectCode.BETTING_CLOSED, "betting has closed: the bet rides, cash it out"
            )
        # Every check passed: from here on nothing can fail.
        r.book.cancel(bet)
        account.balance += bet.amount
        if account.activity is not None:
            account.activity.refunded(bet.placed_day, bet.amount)
        event = CancelDone(user_id, ref, r.round_id, slot, bet.amount, account.balance)
        bet.cancel = event
        r.views[key] = replace(r.views[key], status="cancelled")
        r.views_cache = None
        self._events.append(event)
        self._records.append(
            BetCancelled(r.round_id, user_id, slot, bet.amount, account.balance, self._now)
        )

    def cash_out(self, now_ms: int, user_id: int, ref: str | None, slot: int = 0) -> None:
        """A player's manual cashout of the bet in ``slot``, at the multiplier of ``now_ms``.

        Promises: after advancing to ``now_ms`` (which plays any crash, auto or
        forced cashout due by then), either the open bet is paid ``amount *
        multiplier_at(elapsed) // 100`` with ``CashoutDone`` and a ``CashedOut``
        record, or a bet already cashed out gets its ``CashoutDone`` again, or
        ``CommandRejected`` is emitted and nothing changes. Codes:
        ``unknown_account``, ``invalid_slot``, ``no_active_bet``,
        ``round_crashed`` (the bet lost), ``round_not_running`` (the bet's
        round is still betting).
        """
        self.advance(now_ms)
        self._answer(user_id, ref, lambda: self._cash_out(user_id, ref, slot))

    def _cash_out(self, user_id: int, ref: str | None, slot: int) -> None:
        self._account(user_id)
        check_slot(slot)
        key = (user_id, slot)
        r = self._round
        bet = None if r is None else r.book.get(key)
        if bet is None and self._previous is not None:
            # Late cashouts for the round that just ended get its real answer.
            bet = self._previous.book.get(key)
        if bet is None:
            raise Rejection(
                RejectCode.NO_ACTIVE_BET, f"you have no bet in slot {slot} of this round"
            )
        if bet.cashout is not None:
            self._events.append(replace(bet.cashout, ref=ref))
            return
        if bet.status == "lost":
            raise Rejection(RejectCode.ROUND_CRASHED, "the pillar fell before your cashout")
        if bet.status == "refunded":
            raise Rejection(RejectCode.NO_ACTIVE_BET, "the round was voided and your bet refunded")
        if bet.status == "cancelled":
            raise Rejection(RejectCode.NO_ACTIVE_BET, "you cancelled this bet")
        if r is None or bet.round_id != r.round_id or self._phase not in ACCEPTS_CASHOUTS:
            raise Rejection(RejectCode.ROUND_NOT_RUNNING, "the round has not started yet")
        now = self._now if self._now is not None else r.running_ms
        self._pay(r, bet, multiplier_at(now - r.running_ms), "manual", ref)

    def _account(self, user_id: int) -> _Account:
        account = self._accounts.get(user_id)
        if account is None:
            raise Rejection(RejectCode.UNKNOWN_ACCOUNT, "log in before you play")
        return account
