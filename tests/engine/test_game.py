"""Rounds, bets, cashouts and wallets with injected time (engine/game.py)."""

from __future__ import annotations

from dataclasses import replace

import pytest

import pillarpayout_ws.engine.game as game_module
from pillarpayout_ws.engine.errors import TransitionError, UnknownAccountError
from pillarpayout_ws.engine.events import (
    BetAccepted,
    BettingOpened,
    BetView,
    CashoutDone,
    CommandRejected,
    Crashed,
    RoundRunning,
    Tick,
)
from pillarpayout_ws.engine.fairness import crash_point, seed_hash
from pillarpayout_ws.engine.game import Game, GameConfig, Phase
from pillarpayout_ws.engine.growth import elapsed_for, integrity_at, multiplier_at
from pillarpayout_ws.engine.records import (
    BetPlaced,
    CashedOut,
    Granted,
    RoundCrashed,
    RoundOpened,
)
from tests.engine.helpers import (
    CHAIN_ID,
    CLIENT_SEED,
    ScriptedSeeds,
    make_table,
    of_type,
    seed_with_crash,
)

RUN = 5000  # the first round starts running at 5 s with the default config


def _crash_of(seed: str) -> int:
    return crash_point(seed, CLIENT_SEED)


def _crash_at(seed: str) -> int:
    return RUN + elapsed_for(_crash_of(seed))


# -- the round's life ---------------------------------------------------------


def test_round_lifecycle() -> None:
    seed = seed_with_crash(300, 400)
    crash = _crash_of(seed)
    crash_elapsed = elapsed_for(crash)
    table = make_table(seed)
    assert table.events[-1] == BettingOpened(1, seed_hash(seed), 5000, CHAIN_ID, 1, 1.0)
    # The write-ahead names the seed by chain and nonce: the seed itself waits for the crash.
    assert table.records[-1] == RoundOpened(1, CHAIN_ID, 1, seed_hash(seed), CLIENT_SEED, 1.0, 0)
    game = table.game
    assert game.snapshot().phase is Phase.BETTING

    game.advance(RUN - 1)
    assert table.drain() == ([], [])
    game.advance(RUN)
    assert table.drain()[0] == [RoundRunning(1)]
    assert game.phase is Phase.RUNNING

    ticks: list[Tick] = []
    now = RUN
    while game.phase is Phase.RUNNING:
        now += 100
        game.advance(now)
        ticks.extend(of_type(table.drain()[0], Tick))
    expected = [
        Tick(1, multiplier_at(e), integrity_at(multiplier_at(e)), e)
        for e in range(100, crash_elapsed, 100)
    ]
    assert ticks == expected
    assert all(tick.m < crash for tick in ticks)
    crashed = of_type(table.events, Crashed)
    assert crashed == [Crashed(1, crash, seed, CLIENT_SEED, 1, crash_elapsed)]
    assert RoundCrashed(1, crash, crash_elapsed, seed, RUN + crash_elapsed) in table.records
    assert game.phase is Phase.CRASHED
    assert game.history == ((1, crash),)

    cooldown_end = RUN + crash_elapsed + 3000
    game.advance(cooldown_end - 1)
    assert game.phase is Phase.CRASHED
    game.advance(cooldown_end)
    events, records = table.drain()
    assert events == [BettingOpened(2, seed_hash(seed), 5000, CHAIN_ID, 2, 1.0)]
    assert of_type(records, RoundOpened)[0].nonce == 2
    assert game.round_id == 2
    assert game.phase is Phase.BETTING


def test_start_twice_raises_and_changes_nothing() -> None:
    table = make_table()
    before = table.game.snapshot()
    with pytest.raises(TransitionError):
        table.game.start(10)
    assert table.game.snapshot() == before
    assert table.drain() == ([], [])


def test_idle_game_does_nothing_until_started() -> None:
    table = make_table(start=False)
    game = table.game
    game.advance(1_000_000)
    assert game.phase is Phase.IDLE
    assert game.round_id is None
    assert game.next_due_ms() is None
    game.place_bet(1_000_000, 1, 100, None, "a")
    game.cash_out(1_000_000, 1, "b")
    codes = [e.code for e in of_type(table.drain()[0], CommandRejected)]
    assert codes == ["betting_closed", "no_active_bet"]
    snap = game.snapshot()
    assert snap.phase is Phase.IDLE
    assert snap.round_id is None
    assert snap.bets == ()


def test_crash_point_one_busts_at_once() -> None:
    seed = seed_with_crash(100)
    table = make_table(seed)
    game = table.game
    game.place_bet(10, 1, 1000, 150, "a")
    game.advance(RUN)
    events, records = table.drain()
    assert events[1:] == [RoundRunning(1), Crashed(1, 100, seed, CLIENT_SEED, 1, 0)]
    assert not of_type(events, Tick)
    assert RoundCrashed(1, 100, 0, seed, RUN) in records
    assert game.balance_of(1) == 99_000
    game.cash_out(RUN, 1, "c")
    assert of_type(table.drain()[0], CommandRejected)[0].code == "round_crashed"


def test_a_jump_emits_only_the_latest_tick() -> None:
    seed = seed_with_crash(300, 400)
    table = make_table(seed)
    game = table.game
    game.advance(RUN)
    table.drain()
    game.advance(RUN + 5_050)
    assert of_type(table.drain()[0], Tick) == [
        Tick(1, multiplier_at(5000), integrity_at(multiplier_at(5000)), 5000)
    ]
    game.advance(RUN + 5_099)
    assert table.drain() == ([], [])


def test_a_jump_over_the_crash_ticks_once_below_it() -> None:
    seed = seed_with_crash(300, 400)
    crash_elapsed = elapsed_for(_crash_of(seed))
    table = make_table(seed)
    table.game.advance(_crash_at(seed) + 1)
    events, _ = table.drain()
    ticks = of_type(events, Tick)
    assert [t.elapsed_ms for t in ticks] == [(crash_elapsed - 1) // 100 * 100]
    assert ticks[0].m < _crash_of(seed)
    assert isinstance(events[-1], Crashed)


def test_no_tick_ever_reaches_the_crash_point() -> None:
    for low, high in [(101, 101), (110, 120), (200, 210), (500, 600)]:
        seed = seed_with_crash(low, high)
        table = make_table(seed)
        for now in range(RUN, _crash_at(seed) + 10, 7):
            table.game.advance(now)
        events = table.drain()[0]
        assert all(t.m < _crash_of(seed) for t in of_type(events, Tick))
        assert len(of_type(events, Crashed)) == 1


def test_round_timing_does_not_slip_when_advance_is_late() -> None:
    # Running starts when betting was due to end, not when advance noticed.
    table = make_table(seed_with_crash(300, 400))
    table.game.advance(RUN + 2_000)
    assert table.game.snapshot().elapsed_ms == 2_000
    assert table.game.snapshot().m == multiplier_at(2_000)


def test_next_round_opens_with_a_full_window_after_a_stall() -> None:
    seed = seed_with_crash(300, 400)
    table = make_table(seed)
    late = _crash_at(seed) + 3_000 + 60_000
    table.game.advance(late)
    events, _ = table.drain()
    assert of_type(events, BettingOpened) == [
        BettingOpened(2, seed_hash(seed), 5000, CHAIN_ID, 2, 1.0)
    ]
    assert table.game.snapshot().betting_left_ms == 5000
    assert table.seeds.handed_out == 2  # no rounds were burned through unseen


def test_a_slightly_late_call_keeps_the_schedule() -> None:
    seed = seed_with_crash(300, 400)
    table = make_table(seed)
    opens = _crash_at(seed) + 3_000
    table.game.advance(opens + 300)
    assert of_type(table.drain()[0], BettingOpened) == [
        BettingOpened(2, seed_hash(seed), 4_700, CHAIN_ID, 2, 1.0)
    ]
    assert table.game.next_due_ms() == opens + 5_000
    assert table.game.snapshot().betting_left_ms == 4_700


def test_time_never_runs_backwards() -> None:
    seed = seed_with_crash(300, 400)
    table = make_table(seed)
    table.game.advance(RUN + 3_000)
    table.game.advance(RUN + 1_000)
    assert table.game.now_ms == RUN + 3_000
    table.game.place_bet(10, 1, 100, None, "late")  # stamped in betting, arrives running
    assert of_type(table.drain()[0], CommandRejected)[0].code == "betting_closed"


def test_next_due_ms() -> None:
    seed = seed_with_crash(300, 400)
    table = make_table(seed)
    game = table.game
    assert game.next_due_ms() == RUN
    game.place_bet(0, 1, 1000, 101, None)
    game.advance(RUN)
    assert game.next_due_ms() == RUN + 100
    game.advance(RUN + 100)
    assert game.next_due_ms() == RUN + elapsed_for(101)
    game.advance(RUN + 200)
    assert game.next_due_ms() == RUN + 300
    game.advance(_crash_at(seed))
    assert game.phase is Phase.CRASHED
    assert game.next_due_ms() == _crash_at(seed) + 3000


# -- bets ---------------------------------------------------------------------


def test_bet_is_debited_acknowledged_and_recorded() -> None:
    table = make_table()
    table.game.place_bet(100, 1, 2500, 250, "r1")
    events, records = table.drain()
    assert events == [BetAccepted(1, "r1", 1, 2500, 250, 97_500)]
    assert records == [BetPlaced(1, 1, "r1", 2500, 250, 97_500, 100)]
    assert table.game.balance_of(1) == 97_500


def test_auto_cashout_targets_are_hundredths() -> None:
    table = make_table()
    game = table.game
    game.place_bet(1, 1, 100, 200, None)
    game.place_bet(1, 2, 100, 235, None)
    game.place_bet(1, 3, 100, 1_000_000, None)
    autos = [e.auto_cashout for e in of_type(table.drain()[0], BetAccepted)]
    assert autos == [200, 235, 1_000_000]


def test_repeated_ref_same_round_is_answered_again_without_a_debit() -> None:
    table = make_table()
    game = table.game
    game.place_bet(100, 1, 2500, None, "r1")
    first = table.drain()[0]
    game.place_bet(200, 1, 2500, None, "r1")
    # Even a different payload: the ref names the action already taken.
    game.place_bet(300, 1, 9999, 500, "r1")
    events, records = table.drain()
    assert events == first + first
    assert records == []
    assert game.balance_of(1) == 97_500


def test_a_ref_from_a_previous_round_is_refused_and_names_it() -> None:
    """Never a silent replay of an old round's ack, never a second bet."""
    seed = seed_with_crash(300, 400)
    table = make_table(seed)
    game = table.game
    game.place_bet(100, 1, 2500, None, "r1")
    table.drain()
    game.advance(_crash_at(seed) + 3000)
    assert game.round_id == 2
    table.drain()
    game.place_bet(_crash_at(seed) + 3001, 1, 2500, None, "r1")
    events, records = table.drain()
    (refused,) = of_type(events, CommandRejected)
    assert (refused.code, refused.ref) == ("ref_reused", "r1")
    assert "round 1" in refused.message
    assert records == []
    assert game.balance_of(1) == 97_500
    game.place_bet(_crash_at(seed) + 3002, 1, 2500, None, "r2")  # a new ref: a new bet
    assert of_type(table.drain()[0], BetAccepted)[0].round_id == 2


def test_refs_are_per_user() -> None:
    table = make_table()
    table.game.place_bet(1, 1, 100, None, "same")
    table.game.place_bet(1, 2, 200, None, "same")
    accepted = of_type(table.drain()[0], BetAccepted)
    assert [(a.user_id, a.amount) for a in accepted] == [(1, 100), (2, 200)]


def test_refs_are_forgotten_after_the_memory_window() -> None:
    seed = seed_with_crash(100)
    table = make_table(seed, config=GameConfig(ref_memory_rounds=2, cooldown_ms=0))
    game = table.game
    game.place_bet(0, 1, 100, None, "old")
    now = 0
    for _ in range(2):  # each 1.00x round crashes as it starts: two more rounds
        now = game.next_due_ms() or now
        game.advance(now)
    assert game.round_id == 3
    table.drain()
    game.place_bet(now, 1, 100, None, "old")
    events, records = table.drain()
    assert of_type(events, BetAccepted)[0].round_id == 3
    assert len(of_type(records, BetPlaced)) == 1


def test_refs_sharing_a_hash_cost_a_new_bet_a_ref_reused_and_no_money(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Earlier rounds' refs are remembered by a 64-bit hash. Two keys sharing one
    (every key here, on purpose) cost the later bet a ``ref_reused`` and never
    money, and forgetting a round whose refs share one is not an error."""
    monkeypatch.setattr(game_module, "hash", lambda _key: 7, raising=False)
    table = make_table(seed_with_crash(100), config=GameConfig(ref_memory_rounds=2, cooldown_ms=0))
    game = table.game
    game.place_bet(0, 1, 100, None, "a")
    game.place_bet(0, 2, 100, None, "b")  # this round's refs are kept whole: both taken
    game.place_bet(0, 1, 100, None, "a")  # a replay: the same ack
    events, records = table.drain()
    assert [a.user_id for a in of_type(events, BetAccepted)] == [1, 2, 1]
    assert len(of_type(records, BetPlaced)) == 2
    now = game.next_due_ms() or 0
    game.advance(now)  # round 1 crashes at 1.00x as it starts, round 2 opens
    assert game.round_id == 2
    table.drain()
    balance = game.balance_of(1)
    game.place_bet(now, 1, 100, None, "c")  # another key, round 1's hash
    events, records = table.drain()
    (refused,) = of_type(events, CommandRejected)
    assert refused.code == "ref_reused" and "round 1" in refused.message
    assert records == [] and game.balance_of(1) == balance
    now = game.next_due_ms() or now
    game.advance(now)  # round 3 opens: round 1, both refs under one hash, is forgotten
    assert game.round_id == 3
    table.drain()
    game.place_bet(now, 1, 100, None, "c")
    assert of_type(table.drain()[0], BetAccepted)[0].round_id == 3


def _restarted(next_round_id: int, bet_refs: list[BetAccepted], memory: int = 3) -> Game:
    """A game as a restarted server builds it: earlier rounds' bet refs from storage."""
    config = GameConfig(ref_memory_rounds=memory, cooldown_ms=0)
    game = Game(
        config,
        ScriptedSeeds(seed_with_crash(100)),
        next_round_id=next_round_id,
        bet_refs=bet_refs,
    )
    game.load_account(1, "user1", 50_000)
    game.start(0)
    game.events_to_send()
    game.records_to_persist()
    return game


def test_refs_from_before_a_restart_are_still_known() -> None:
    old = BetAccepted(1, "r1", 9, 700, 250, 99_300)
    game = _restarted(10, [old, BetAccepted(2, "r1", 9, 100, None, 900)])
    game.place_bet(0, 1, 700, None, "r1")
    assert [e.code for e in of_type(game.events_to_send(), CommandRejected)] == ["ref_reused"]
    assert game.records_to_persist() == []
    assert game.balance_of(1) == 50_000


def test_refs_from_before_a_restart_age_like_the_others() -> None:
    # Memory 3: with round 10 open, rounds 8 and 9 are remembered, 7 is not.
    refs = [BetAccepted(1, f"in-{r}", r, 100, None, 1000) for r in (7, 8, 9)]
    game = _restarted(10, refs)
    answers = []
    for round_id in (7, 8, 9):
        game.place_bet(0, 1, 100, None, f"in-{round_id}")
        (answer,) = game.events_to_send()
        answers.append(type(answer).__name__)
        if isinstance(answer, BetAccepted):  # a new bet in round 10: take it back out
            assert answer.round_id == 10
    assert answers == ["BetAccepted", "CommandRejected", "CommandRejected"]
    # Each new round forgets the oldest remembered one: round 8's ref goes with
    # round 11, round 9's with round 12.
    now = game.next_due_ms() or 0
    game.advance(now)  # round 10 crashes at 1.00x, round 11 opens
    assert game.round_id == 11
    game.events_to_send()
    game.place_bet(now, 1, 100, None, "in-8")
    game.place_bet(now, 1, 100, None, "in-9")
    events = game.events_to_send()
    assert [type(e).__name__ for e in events] == ["BetAccepted", "CommandRejected"]
    assert isinstance(events[0], BetAccepted) and events[0].round_id == 11


def test_a_ref_reused_in_a_later_round_is_remembered_once() -> None:
    # Storage may hold one ref in two rounds (reused after it was forgotten):
    # the later answer counts, and forgetting the earlier round keeps it.
    later = BetAccepted(1, "r", 9, 300, None, 700)
    game = _restarted(10, [later, BetAccepted(1, "r", 8, 200, None, 900)])
    game.place_bet(0, 1, 999, None, "r")
    (refused,) = game.events_to_send()
    assert isinstance(refused, CommandRejected) and "round 9" in refused.message
    game.advance(game.next_due_ms() or 0)  # round 11 opens: round 8 is forgotten
    assert game.round_id == 11
    game.events_to_send()
    game.place_bet(game.now_ms or 0, 1, 999, None, "r")
    (refused,) = game.events_to_send()
    assert isinstance(refused, CommandRejected) and "round 9" in refused.message


def test_second_bet_is_already_bet() -> None:
    table = make_table()
    table.game.place_bet(1, 1, 100, None, "a")
    table.game.place_bet(2, 1, 100, None, "b")
    table.game.place_bet(3, 1, 100, None, None)
    codes = [e.code for e in of_type(table.drain()[0], CommandRejected)]
    assert codes == ["already_bet", "already_bet"]
    assert table.game.balance_of(1) == 99_900


def test_betting_window_edges() -> None:
    table = make_table()
    table.game.place_bet(RUN - 1, 1, 100, None, "in")
    table.game.place_bet(RUN, 2, 100, None, "out")
    events = table.drain()[0]
    assert of_type(events, BetAccepted)[0].user_id == 1
    assert of_type(events, CommandRejected) == [
        CommandRejected(2, "out", "betting_closed", "bets are taken only while betting is open")
    ]


def test_no_bets_while_crashed() -> None:
    seed = seed_with_crash(300, 400)
    table = make_table(seed)
    table.game.place_bet(_crash_at(seed) + 10, 1, 100, None, "x")
    assert of_type(table.drain()[0], CommandRejected)[0].code == "betting_closed"


def test_insufficient_funds() -> None:
    table = make_table(balances=[(1, 500)])
    table.game.place_bet(1, 1, 501, None, "x")
    table.game.place_bet(2, 1, 500, None, "y")
    events = table.drain()[0]
    assert of_type(events, CommandRejected)[0].code == "insufficient_funds"
    assert of_type(events, BetAccepted)[0].balance == 0


# -- cashouts -----------------------------------------------------------------


def test_manual_cashout_pays_the_multiplier_of_now() -> None:
    seed = seed_with_crash(300, 400)
    table = make_table(seed)
    game = table.game
    game.place_bet(1, 1, 1234, None, "b")
    game.advance(RUN + 7_000)
    table.drain()
    game.cash_out(RUN + 7_003, 1, "c")
    m = multiplier_at(7_003)
    payout = 1234 * m // 100
    balance = 100_000 - 1234 + payout
    events, records = table.drain()
    assert events == [CashoutDone(1, "c", 1, m, payout, balance, "manual")]
    assert records == [CashedOut(1, 1, m, payout, balance, "manual")]
    assert game.balance_of(1) == balance


def test_second_cashout_answers_the_same_without_paying() -> None:
    table = make_table(seed_with_crash(300, 400))
    game = table.game
    game.place_bet(1, 1, 1000, None, "b")
    game.cash_out(RUN + 3_000, 1, "c1")
    first = table.drain()[0]
    game.cash_out(RUN + 9_000, 1, "c2")
    events, records = table.drain()
    assert records == []
    assert isinstance(first[-1], CashoutDone)
    assert of_type(events, CashoutDone) == [replace(first[-1], ref="c2")]
    assert game.balance_of(1) == first[-1].balance


def test_cashout_stamped_after_the_crash_is_refused_after_the_crash_is_played() -> None:
    seed = seed_with_crash(300, 400)
    table = make_table(seed)
    game = table.game
    game.place_bet(1, 1, 1000, None, "b")
    game.advance(RUN)
    table.drain()
    game.cash_out(_crash_at(seed), 1, "late")  # no advance in between
    events, records = table.drain()
    assert isinstance(events[-2], Crashed)
    assert events[-1] == CommandRejected(
        1, "late", "round_crashed", "the pillar fell before your cashout"
    )
    assert not of_type(records, CashedOut)
    assert game.balance_of(1) == 99_000


def test_cashout_one_ms_before_the_crash_wins_below_the_crash_point() -> None:
    seed = seed_with_crash(300, 400)
    table = make_table(seed)
    table.game.place_bet(1, 1, 1000, None, "b")
    table.game.cash_out(_crash_at(seed) - 1, 1, "just")
    done = of_type(table.drain()[0], CashoutDone)[0]
    assert done.multiplier == multiplier_at(elapsed_for(_crash_of(seed)) - 1)
    assert done.multiplier < _crash_of(seed)


def test_late_cashout_in_the_next_round_still_gets_round_crashed() -> None:
    seed = seed_with_crash(300, 400)
    table = make_table(seed)
    game = table.game
    game.place_bet(1, 1, 1000, None, "lost")
    game.place_bet(1, 2, 1000, 150, "won")
    game.advance(_crash_at(seed) + 3_000)
    assert game.round_id == 2
    table.drain()
    game.cash_out(_crash_at(seed) + 3_001, 1, "c1")
    game.cash_out(_crash_at(seed) + 3_001, 2, "c2")
    events = table.drain()[0]
    assert isinstance(events[0], CommandRejected)
    assert events[0].code == "round_crashed"
    assert isinstance(events[1], CashoutDone)
    assert (events[1].ref, events[1].round_id, events[1].multiplier) == ("c2", 1, 150)


@pytest.mark.parametrize(
    ("user", "bet_first", "now", "code"),
    [
        (1, False, RUN + 100, "no_active_bet"),
        (1, True, 100, "round_not_running"),
        (99, False, RUN + 100, "unknown_account"),
    ],
)
def test_cashout_refusals(user: int, bet_first: bool, now: int, code: str) -> None:
    table = make_table()
    if bet_first:
        table.game.place_bet(1, 1, 100, None, None)
    table.game.advance(now)
    table.drain()
    before = (table.game.snapshot(), table.game.balance_of(1))
    table.game.cash_out(now, user, "c")
    events, records = table.drain()
    assert [(e.code, e.ref, e.user_id) for e in of_type(events, CommandRejected)] == [
        (code, "c", user)
    ]
    assert records == []
    assert (table.game.snapshot(), table.game.balance_of(1)) == before


# -- auto-cashouts ------------------------------------------------------------


def test_auto_cashouts_fire_at_their_exact_target_in_target_order_in_one_jump() -> None:
    seed = seed_with_crash(300, 400)
    table = make_table(seed)
    game = table.game
    game.place_bet(1, 1, 1000, 200, "a")
    game.place_bet(1, 2, 777, 120, "b")
    game.place_bet(1, 3, 333, 150, "c")
    table.drain()
    game.advance(RUN + 600_000)  # one call far past every target and the crash
    events, records = table.drain()
    cashouts = of_type(events, CashoutDone)
    assert [(c.user_id, c.multiplier, c.payout, c.reason, c.ref) for c in cashouts] == [
        (2, 120, 777 * 120 // 100, "auto", None),
        (3, 150, 333 * 150 // 100, "auto", None),
        (1, 200, 2000, "auto", None),
    ]
    assert events.index(cashouts[-1]) < events.index(of_type(events, Crashed)[0])
    assert [r.reason for r in of_type(records, CashedOut)] == ["auto"] * 3
    assert game.balance_of(1) == 100_000 - 1000 + 2000


def test_auto_cashout_fires_exactly_when_reached_without_a_tick() -> None:
    table = make_table(seed_with_crash(300, 400), config=GameConfig(tick_ms=60_000))
    game = table.game
    game.place_bet(1, 1, 1000, 237, None)
    game.advance(RUN + elapsed_for(237) - 1)
    assert not of_type(table.drain()[0], CashoutDone)
    game.advance(RUN + elapsed_for(237))
    done = of_type(table.drain()[0], CashoutDone)
    assert [(d.multiplier, d.payout) for d in done] == [(237, 2370)]


def test_auto_cashout_ties_fire_in_placement_order() -> None:
    table = make_table(seed_with_crash(300, 400))
    for user in (3, 1, 2):
        table.game.place_bet(1, user, 100, 130, None)
    table.game.advance(RUN + 60_000)
    assert [c.user_id for c in of_type(table.drain()[0], CashoutDone)] == [3, 1, 2]


def test_target_equal_to_the_crash_point_wins_and_above_loses() -> None:
    seed = seed_with_crash(250)
    table = make_table(seed)
    game = table.game
    game.place_bet(1, 1, 1000, 250, None)
    game.place_bet(1, 2, 1000, 251, None)
    game.advance(_crash_at(seed))
    events, _ = table.drain()
    cashouts = of_type(events, CashoutDone)
    assert [(c.user_id, c.multiplier) for c in cashouts] == [(1, 250)]
    assert events.index(cashouts[0]) < events.index(of_type(events, Crashed)[0])
    assert game.balance_of(1) == 101_500
    assert game.balance_of(2) == 99_000


def test_manual_cashout_before_the_target_cancels_the_auto() -> None:
    table = make_table(seed_with_crash(300, 400))
    game = table.game
    game.place_bet(1, 1, 1000, 200, "b")
    game.cash_out(RUN + 1_000, 1, "m")
    game.advance(RUN + 60_000)
    cashouts = of_type(table.drain()[0], CashoutDone)
    assert [(c.reason, c.multiplier) for c in cashouts] == [("manual", multiplier_at(1_000))]


def test_manual_cashout_after_the_auto_fired_repeats_the_auto_answer() -> None:
    table = make_table(seed_with_crash(300, 400))
    game = table.game
    game.place_bet(1, 1, 1000, 110, "b")
    game.cash_out(RUN + 5_000, 1, "m")  # the target was reached at ~1.6 s
    cashouts = of_type(table.drain()[0], CashoutDone)
    assert [(c.reason, c.multiplier, c.ref) for c in cashouts] == [
        ("auto", 110, None),
        ("auto", 110, "m"),
    ]
    assert game.balance_of(1) == 100_000 - 1000 + 1100


# -- wallets ------------------------------------------------------------------


def test_grant_credits_and_is_idempotent_by_key() -> None:
    table = make_table(balances=[(1, 0)])
    game = table.game
    game.grant(1, 500, "k")
    first = table.drain()
    game.grant(1, 500, "k")
    game.grant(1, 999, "k")
    events, records = table.drain()
    assert first[1] == [Granted(1, 500, "k", 500)]
    assert events == first[0] * 2
    assert records == []
    assert game.balance_of(1) == 500


@pytest.mark.parametrize("amount", [0, -1, True])
def test_grant_refuses_bad_amounts(amount: int) -> None:
    table = make_table(balances=[(1, 0)])
    with pytest.raises(ValueError, match="positive"):
        table.game.grant(1, amount, "k")
    assert table.game.balance_of(1) == 0


def test_grant_to_an_unknown_account_raises() -> None:
    table = make_table()
    with pytest.raises(UnknownAccountError):
        table.game.grant(42, 100, "k")


def test_load_account_keeps_the_engines_balance() -> None:
    table = make_table(balances=[(1, 1000)])
    table.game.place_bet(1, 1, 100, None, None)
    table.game.load_account(1, "user1", 1000)  # storage's stale balance
    assert table.game.balance_of(1) == 900
    assert table.game.balance_of(5) is None
    with pytest.raises(ValueError, match="balance"):
        table.game.load_account(5, "x", -1)


def test_bet_from_an_unknown_account() -> None:
    table = make_table()
    table.game.place_bet(1, 77, 100, None, "r")
    assert table.drain()[0] == [
        CommandRejected(77, "r", "unknown_account", "log in before you play")
    ]


# -- snapshot and secrecy -----------------------------------------------------


def test_snapshot_through_a_round() -> None:
    seed = seed_with_crash(300, 400)
    crash = _crash_of(seed)
    table = make_table(seed)
    game = table.game
    assert game.snapshot().bets == ()
    game.place_bet(1_000, 1, 500, 150, None)
    assert len(game.snapshot().bets) == 1  # the cached views follow every change
    game.place_bet(1_000, 2, 700, None, None)
    snap = game.snapshot()
    assert (snap.phase, snap.round_id, snap.seed_hash) == (Phase.BETTING, 1, seed_hash(seed))
    assert (snap.m, snap.integrity, snap.elapsed_ms, snap.betting_left_ms) == (
        100,
        10_000,
        0,
        4_000,
    )
    assert snap.crash_point is None
    assert snap.bets == (
        BetView(1, "user1", 500, "open", None, None),
        BetView(2, "user2", 700, "open", None, None),
    )

    game.advance(RUN + 8_000)
    snap = game.snapshot()
    assert (snap.phase, snap.elapsed_ms, snap.m) == (Phase.RUNNING, 8_000, multiplier_at(8_000))
    assert snap.integrity == integrity_at(snap.m)
    assert snap.bets[0] == BetView(1, "user1", 500, "cashed_out", 150, 750)
    assert snap.crash_point is None

    game.advance(_crash_at(seed))
    snap = game.snapshot()
    assert (snap.phase, snap.m, snap.crash_point) == (Phase.CRASHED, crash, crash)
    assert snap.elapsed_ms == elapsed_for(crash)
    assert snap.bets[1].status == "lost"
    assert snap.history == ((1, crash),)


def test_history_keeps_the_last_fifty() -> None:
    history = [(i, 100 + i) for i in range(1, 61)]
    game = Game(
        GameConfig(), ScriptedSeeds(seed_with_crash(100)), next_round_id=61, history=history
    )
    assert game.history == tuple(history[-50:])
    game.start(0)
    game.advance(RUN)
    assert game.history[-1] == (61, 100)
    assert len(game.history) == 50
    assert game.history[0] == (12, 112)


def test_nothing_before_the_crash_depends_on_the_seed() -> None:
    # Same commands, two seeds: every event before Crashed is identical but
    # for the public seed hash.
    seeds = [seed_with_crash(900, 1000), seed_with_crash(1100, 1300)]
    streams = []
    for seed in seeds:
        table = make_table(seed)
        game = table.game
        game.place_bet(10, 1, 1000, 500, "a")
        game.place_bet(20, 2, 1000, None, "b")
        for now in range(RUN, RUN + elapsed_for(900), 50):
            game.advance(now)
            if now == RUN + 20_000:
                game.cash_out(now, 2, "c")
        events = table.events + table.drain()[0]
        assert not of_type(events, Crashed)
        streams.append([e if not isinstance(e, BettingOpened) else e.round_id for e in events])
    assert streams[0] == streams[1]


def test_bad_game_construction() -> None:
    with pytest.raises(ValueError, match="next_round_id"):
        Game(GameConfig(), ScriptedSeeds("00" * 32), next_round_id=0)


def test_bet_view_is_the_public_view_of_the_current_round() -> None:
    table = make_table()
    game = table.game
    game.place_bet(100, 1, 1_250, None, "r")
    view = game.bet_view(1, 1)
    assert view is not None
    assert (view.username, view.amount, view.status, view.payout) == ("user1", 1_250, "open", None)
    assert game.bet_view(1, 2) is None  # no bet
    assert game.bet_view(2, 1) is None  # not the current round
