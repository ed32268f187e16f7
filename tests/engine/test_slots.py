"""Two bets a round: each (user, slot) is a bet of its own (engine/game.py, bets.py)."""

from __future__ import annotations

from pillarpayout_ws.engine.config import GameConfig
from pillarpayout_ws.engine.events import BetAccepted, BetView, CashoutDone, CommandRejected
from pillarpayout_ws.engine.growth import elapsed_for, multiplier_at
from pillarpayout_ws.engine.records import BetPlaced, CashedOut
from tests.engine.helpers import make_table, of_type, seed_with_crash

RUN = 5000  # the first round starts running at 5 s with the default config


def _codes(events: object) -> list[str]:
    return [e.code for e in of_type(events, CommandRejected)]  # type: ignore[arg-type]


def test_a_user_holds_a_bet_in_each_slot_with_its_own_cashout() -> None:
    table = make_table(seed_with_crash(300, 400))
    game = table.game
    game.place_bet(1, 1, 1000, 150, "a", 0)
    game.place_bet(1, 1, 2000, None, "b", 1)
    events, records = table.drain()
    assert of_type(events, BetAccepted) == [
        BetAccepted(1, "a", 1, 1000, 150, 99_000, 0),
        BetAccepted(1, "b", 1, 2000, None, 97_000, 1),
    ]
    assert [(r.slot, r.amount) for r in of_type(records, BetPlaced)] == [(0, 1000), (1, 2000)]
    # Slot 0's auto cash-out fires at 1.50x; slot 1 rides on until cashed by hand.
    game.advance(RUN + elapsed_for(150))
    hand = RUN + elapsed_for(200) + 3
    game.cash_out(hand, 1, "c", 1)
    events, records = table.drain()
    m = multiplier_at(hand - RUN)
    assert of_type(events, CashoutDone) == [
        CashoutDone(1, None, 1, 150, 1500, 98_500, "auto", 0),
        CashoutDone(1, "c", 1, m, 2000 * m // 100, 98_500 + 2000 * m // 100, "manual", 1),
    ]
    assert [(r.slot, r.reason) for r in of_type(records, CashedOut)] == [(0, "auto"), (1, "manual")]
    views = {v.slot: v for v in game.snapshot().bets}
    assert views[0] == BetView(1, "user1", 1000, "cashed_out", 150, 1500, 0)
    assert (views[1].status, views[1].multiplier) == ("cashed_out", m)
    # A repeated cash-out of either slot gets that slot's answer again.
    game.cash_out(hand + 50, 1, "again", 0)
    assert of_type(table.drain()[0], CashoutDone) == [
        CashoutDone(1, "again", 1, 150, 1500, 98_500, "auto", 0)
    ]
    assert game.balance_of(1) == 98_500 + 2000 * m // 100


def test_a_slot_takes_one_bet_and_a_slot_is_0_or_1() -> None:
    table = make_table(seed_with_crash(300, 400))
    game = table.game
    game.place_bet(1, 1, 1000, None, None, 0)
    game.place_bet(1, 1, 1000, None, None, 0)
    game.place_bet(1, 1, 1000, None, None, 2)
    game.place_bet(1, 1, 1000, None, None, -1)
    game.place_bet(1, 1, 1000, None, None, True)
    events, records = table.drain()
    assert _codes(events) == ["already_bet", "invalid_slot", "invalid_slot", "invalid_slot"]
    assert len(of_type(records, BetPlaced)) == 1
    assert game.balance_of(1) == 99_000
    game.advance(RUN + 100)
    game.cash_out(RUN + 100, 1, None, 1)  # nothing in slot 1
    game.cash_out(RUN + 100, 1, None, 5)
    assert _codes(table.drain()[0]) == ["no_active_bet", "invalid_slot"]


def test_a_ref_names_one_bet_whatever_slot_a_replay_names() -> None:
    table = make_table(seed_with_crash(300, 400))
    game = table.game
    game.place_bet(1, 1, 1000, None, "a", 0)
    game.place_bet(1, 1, 2000, None, "b", 1)
    table.drain()
    game.place_bet(2, 1, 1000, None, "a", 0)
    game.place_bet(2, 1, 2000, None, "b", 1)
    game.place_bet(3, 1, 5000, None, "a", 1)  # a's replay, naming the other slot
    events, records = table.drain()
    assert [(e.ref, e.slot, e.amount) for e in of_type(events, BetAccepted)] == [
        ("a", 0, 1000),
        ("b", 1, 2000),
        ("a", 0, 1000),
    ]
    assert records == [] and game.balance_of(1) == 97_000


def test_a_crash_loses_both_open_slots() -> None:
    table = make_table(seed_with_crash(150, 200))
    game = table.game
    game.place_bet(1, 1, 1000, None, None, 0)
    game.place_bet(1, 1, 1000, None, None, 1)
    after = RUN + elapsed_for(200) + 1  # crashed, still in the cooldown
    game.advance(after)
    views = game.snapshot().bets
    assert [(v.slot, v.status) for v in views] == [(0, "lost"), (1, "lost")]
    assert game.balance_of(1) == 98_000
    game.cash_out(after, 1, None, 1)
    assert _codes(table.drain()[0]) == ["round_crashed"]


def test_max_profit_counts_both_slots() -> None:
    capped = GameConfig(house_bankroll=100_000, max_profit_pct=10.0)  # cap: 10,000 cents
    table = make_table(seed_with_crash(300, 400), config=capped)
    game = table.game
    game.place_bet(1, 1, 10_000, None, None, 0)
    game.place_bet(1, 1, 10_000, None, None, 1)
    game.advance(RUN + 600_000)
    cashouts = of_type(table.drain()[0], CashoutDone)
    # 20,000 open across the two slots: forced out together at 1.50x.
    assert [(c.slot, c.multiplier, c.reason) for c in cashouts] == [
        (0, 150, "forced"),
        (1, 150, "forced"),
    ]
    assert sum(c.payout for c in cashouts) - 20_000 == capped.max_profit
