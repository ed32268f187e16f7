"""Bet validation, the round book and the max-profit cap (engine/bets.py)."""

from __future__ import annotations

from typing import cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pillarpayout_ws.engine.bets import Bet, RoundBook, check_amount, check_auto_cashout
from pillarpayout_ws.engine.errors import RejectCode, Rejection
from pillarpayout_ws.engine.events import BetAccepted, CashoutDone, CommandRejected
from pillarpayout_ws.engine.game import GameConfig
from pillarpayout_ws.engine.growth import elapsed_for
from pillarpayout_ws.engine.records import CashedOut
from tests.engine.helpers import Table, make_table, of_type, seed_with_crash

RUN = 5000  # the first round starts running at 5 s with the default config
CONFIG = GameConfig()


# -- validation ---------------------------------------------------------------


@pytest.mark.parametrize("value", [10, 11, 999_999, 1_000_000])
def test_check_amount_accepts(value: int) -> None:
    check_amount(value, CONFIG)


@pytest.mark.parametrize("value", [None, 101, 235, 250, 1_000_000])
def test_check_auto_cashout_accepts(value: int | None) -> None:
    check_auto_cashout(value, CONFIG)


@pytest.mark.parametrize("value", [100, 0, -101, 1_000_001])
def test_check_auto_cashout_refuses(value: int) -> None:
    with pytest.raises(Rejection) as caught:
        check_auto_cashout(value, CONFIG)
    assert caught.value.code is RejectCode.INVALID_AUTO_CASHOUT


def test_codes_are_the_wire_strings() -> None:
    assert RejectCode.INVALID_AMOUNT.value == "invalid_amount"
    assert {code.value for code in RejectCode} >= {
        "invalid_amount",
        "insufficient_funds",
        "betting_closed",
        "already_bet",
        "no_active_bet",
        "invalid_auto_cashout",
        "round_crashed",
        "unknown_account",
        "ref_reused",
    }


# -- the book -----------------------------------------------------------------


def _bet(user: int, amount: int, auto: int | None = None) -> Bet:
    return Bet(user, None, 1, amount, auto, BetAccepted(user, None, 1, amount, auto, 0))


def test_book_orders_targets_and_skips_settled_bets() -> None:
    book = RoundBook(max_profit=10**9)
    bets = [_bet(1, 100, 300), _bet(2, 100, 150), _bet(3, 100, None), _bet(4, 100, 150)]
    for bet in bets:
        book.add(bet)
    assert book.next_auto() is bets[1]
    book.settle(bets[3], 150)  # settled by hand while not at the top
    book.settle(bets[1], 150)
    assert book.next_auto() is bets[0]
    assert book.open_stakes == 200
    assert book.realised_profit == 100
    assert [b.user_id for b in book.lose_open()] == [1, 3]
    assert book.next_auto() is None
    assert book.force_multiplier() is None


def test_book_refuses_double_settlement_and_double_bets() -> None:
    book = RoundBook(max_profit=10**9)
    bet = _bet(1, 100)
    book.add(bet)
    with pytest.raises(ValueError, match="already has a bet"):
        book.add(_bet(1, 50))
    book.settle(bet, 120)
    with pytest.raises(ValueError, match="not open"):
        book.settle(bet, 120)


@given(
    stakes=st.lists(st.integers(min_value=1, max_value=10**7), min_size=1, max_size=5),
    cap=st.integers(min_value=0, max_value=10**8),
)
def test_force_multiplier_is_the_last_multiplier_within_the_cap(
    stakes: list[int], cap: int
) -> None:
    book = RoundBook(max_profit=cap)
    for user, stake in enumerate(stakes):
        book.add(_bet(user, stake))
    force = book.force_multiplier()
    assert force is not None
    total = sum(stakes)

    def bound(m: int) -> int:
        return total * (m - 100) // 100

    assert force >= 100
    assert bound(force) <= cap < bound(force + 1)


# -- bad input: a specific code, and nothing changes ---------------------------

# The protocol's decoder hands the engine integers (cents, hundredths); the
# engine checks the game's ranges, and refuses any other type it is handed by
# mistake (bool is an int to Python; a float is not cents).
BAD_BETS: list[tuple[object, object, str]] = [
    (True, None, "invalid_amount"),
    (100.0, None, "invalid_amount"),
    (-5, None, "invalid_amount"),
    (0, None, "invalid_amount"),
    (9, None, "invalid_amount"),  # below min_bet
    (1_000_001, None, "invalid_amount"),  # above max_bet
    (10**30, None, "invalid_amount"),
    (100, 100, "invalid_auto_cashout"),  # 1.00x: below 1.01x
    (100, 0, "invalid_auto_cashout"),
    (100, -200, "invalid_auto_cashout"),
    (100, 1_000_001, "invalid_auto_cashout"),  # above max_auto_cashout
    (100, 10**400, "invalid_auto_cashout"),
    (100, True, "invalid_auto_cashout"),
    (100, 2.5, "invalid_auto_cashout"),
]


def _state(table: Table) -> tuple[object, ...]:
    game = table.game
    return (game.snapshot(), tuple(game.balance_of(u) for u in (1, 2, 3)), game.phase)


@pytest.mark.parametrize(("amount", "auto", "code"), BAD_BETS)
def test_bad_bet_is_refused_with_its_code_and_changes_nothing(
    amount: object, auto: object, code: str
) -> None:
    table = make_table()
    table.game.place_bet(50, 2, 100, None, "other")  # some state to keep
    table.game.advance(100)
    table.drain()
    before = _state(table)
    table.game.place_bet(100, 1, cast(int, amount), cast(int | None, auto), "bad")
    events, records = table.drain()
    assert len(events) == 1
    assert isinstance(events[0], CommandRejected)
    assert (events[0].code, events[0].ref, events[0].user_id) == (code, "bad", 1)
    assert events[0].message
    assert records == []
    assert _state(table) == before
    # The refused ref is not remembered: a good retry with it is accepted.
    table.game.place_bet(100, 1, 100, None, "bad")
    assert of_type(table.drain()[0], BetAccepted)


@pytest.mark.parametrize(
    ("setup", "now", "user", "amount", "code"),
    [
        ("none", RUN + 10, 1, 100, "betting_closed"),
        ("bet", 100, 1, 100, "already_bet"),
        ("none", 100, 1, 100_001, "insufficient_funds"),
        ("none", 100, 42, 100, "unknown_account"),
    ],
)
def test_refused_bet_in_context_changes_nothing(
    setup: str, now: int, user: int, amount: int, code: str
) -> None:
    table = make_table()
    if setup == "bet":
        table.game.place_bet(50, 1, 100, None, "first")
    table.game.advance(now)
    table.drain()
    before = _state(table)
    table.game.place_bet(now, user, amount, None, "x")
    events, records = table.drain()
    assert [(e.code, e.user_id) for e in of_type(events, CommandRejected)] == [(code, user)]
    assert len(events) == 1
    assert records == []
    assert _state(table) == before


# -- max profit ---------------------------------------------------------------

CAPPED = GameConfig(house_bankroll=100_000, max_profit_pct=10.0)  # cap: 10,000 cents


def test_max_profit_config() -> None:
    assert GameConfig().max_profit == 1_000_000
    assert CAPPED.max_profit == 10_000
    assert GameConfig(house_bankroll=1000, max_profit_pct=0.1).max_profit == 1


def test_max_profit_forces_every_open_bet_out() -> None:
    table = make_table(seed_with_crash(300, 400), config=CAPPED)
    game = table.game
    game.place_bet(1, 1, 10_000, None, None)
    game.place_bet(1, 2, 10_000, None, None)
    game.place_bet(1, 3, 10_000, 120, None)
    game.advance(RUN + 600_000)
    events, _ = table.drain()
    cashouts = of_type(events, CashoutDone)
    # 3 open (30,000): cap at 1.33x; the auto at 1.20 realises 2,000, which
    # leaves 8,000 over 20,000 open: forced at exactly 1.40.
    assert [(c.user_id, c.multiplier, c.reason) for c in cashouts] == [
        (3, 120, "auto"),
        (1, 140, "forced"),
        (2, 140, "forced"),
    ]
    profit = sum(c.payout for c in cashouts) - 30_000
    assert profit == CAPPED.max_profit


def test_max_profit_is_computed_from_time_not_ticks() -> None:
    outcomes = []
    for step in (1, 100, 10_000_000):
        table = make_table(seed_with_crash(300, 400), config=CAPPED)
        table.game.place_bet(1, 1, 15_000, None, None)
        table.game.place_bet(1, 2, 5_000, None, None)
        now = RUN
        while not table.game.history:
            now += step
            table.game.advance(now)
        outcomes.append(of_type(table.drain()[1], CashedOut))
    assert outcomes[0] == outcomes[1] == outcomes[2]
    assert {c.multiplier for c in outcomes[0]} == {150}


def test_the_force_point_is_a_due_instant() -> None:
    table = make_table(seed_with_crash(300, 400), config=CAPPED)
    table.game.place_bet(1, 1, 20_000, None, None)  # forced at 1.50x
    table.game.advance(RUN + elapsed_for(150) - 50)
    assert table.game.next_due_ms() == RUN + elapsed_for(150)


def test_manual_cashouts_raise_the_force_point() -> None:
    table = make_table(seed_with_crash(300, 400), config=CAPPED)
    game = table.game
    game.place_bet(1, 1, 10_000, None, None)
    game.place_bet(1, 2, 10_000, None, None)
    game.cash_out(RUN + elapsed_for(110), 1, "early")  # realises 1,000
    game.advance(RUN + 600_000)
    cashouts = of_type(table.drain()[0], CashoutDone)
    assert [(c.user_id, c.multiplier, c.reason) for c in cashouts] == [
        (1, 110, "manual"),
        (2, 190, "forced"),
    ]
