"""Cancelling a bet while its round is betting (Game.cancel_bet), with injected time."""

from __future__ import annotations

from pillarpayout_ws.engine.events import BetAccepted, BetView, CancelDone, CommandRejected
from pillarpayout_ws.engine.game import GameConfig
from pillarpayout_ws.engine.limits import Activity, Limits
from pillarpayout_ws.engine.records import BetCancelled, BetPlaced
from tests.engine.helpers import Table, make_table, of_type

RUN = GameConfig().betting_ms  # round 1 runs from here


def rejected(table: Table) -> str:
    (rejection,) = of_type(table.drain()[0], CommandRejected)
    return rejection.code


def test_a_cancel_refunds_the_stake_once_and_the_bet_leaves_the_list() -> None:
    table = make_table()
    game = table.game
    game.place_bet(100, 1, 2500, 150, "b0")
    game.place_bet(100, 2, 1000, None, "other")
    table.drain()
    game.cancel_bet(200, 1, "c0")
    events, records = table.drain()
    assert events == [CancelDone(1, "c0", 1, 0, 2500, 100_000)]
    assert records == [BetCancelled(1, 1, 0, 2500, 100_000, 200)]
    assert game.balance_of(1) == 100_000
    # The public list no longer has it; the bets frame's view says it went.
    assert [v.user_id for v in game.snapshot().bets] == [2]
    assert game.bet_view(1, 1) == BetView(1, "user1", 2500, "cancelled", None, None, 0)
    # A replayed cancel (any ref) gets the same answer, with no second refund.
    game.cancel_bet(300, 1, "c0-again")
    assert table.drain() == ([CancelDone(1, "c0-again", 1, 0, 2500, 100_000)], [])
    assert game.balance_of(1) == 100_000
    # Its auto cash-out target (1.50x, below this round's crash) never fires.
    game.advance(RUN + 10_000)
    records = table.drain()[1]
    assert not [r for r in records if getattr(r, "user_id", None) == 1]


def test_no_bet_wrong_slot_and_a_bet_of_the_last_round() -> None:
    table = make_table()
    game = table.game
    game.cancel_bet(100, 1, "c")
    assert rejected(table) == "no_active_bet"
    game.place_bet(100, 1, 1000, None, "b")
    table.drain()
    game.cancel_bet(110, 1, "c1", 1)
    assert rejected(table) == "no_active_bet"
    game.cancel_bet(120, 1, "c2", 2)
    assert rejected(table) == "invalid_slot"
    game.cancel_bet(130, 99, "c3")
    assert rejected(table) == "unknown_account"
    assert game.balance_of(1) == 99_000


def test_betting_closed_is_decided_by_the_commands_own_time() -> None:
    table = make_table()
    game = table.game
    game.place_bet(100, 1, 1000, None, "b")
    table.drain()
    # Stamped one ms before betting ends: taken, even if the caller is late.
    game.cancel_bet(RUN - 1, 1, "in-time")
    assert of_type(table.drain()[0], CancelDone)
    game.place_bet(RUN - 1, 1, 1000, None, "b1", 1)
    table.drain()
    # Stamped at the instant betting ends: the bet rides.
    game.cancel_bet(RUN, 1, "late", 1)
    events, records = table.drain()
    assert of_type(events, CommandRejected)[0].code == "betting_closed"
    assert not of_type(records, BetCancelled)
    assert game.balance_of(1) == 99_000
    game.cancel_bet(RUN + 1000, 1, "running", 1)
    assert rejected(table) == "betting_closed"
    # Once the next round is betting, the last round's bet is no bet of this one.
    game.advance(RUN + 60_000)
    table.drain()
    assert game.round_id == 2
    game.cancel_bet(RUN + 60_001, 1, "after", 1)
    assert rejected(table) == "no_active_bet"


def test_a_cancelled_slot_takes_no_second_bet_this_round_the_other_slot_does() -> None:
    table = make_table()
    game = table.game
    game.place_bet(100, 1, 1000, None, "b")
    game.cancel_bet(200, 1, "c")
    table.drain()
    game.place_bet(300, 1, 500, None, "b-again")
    assert rejected(table) == "already_bet"
    game.place_bet(300, 1, 500, None, "b-other", 1)
    assert of_type(table.drain()[0], BetAccepted)
    # A replay of the cancelled bet's ref is that frame's answer: no debit.
    game.place_bet(400, 1, 1000, None, "b")
    events, records = table.drain()
    assert events == [BetAccepted(1, "b", 1, 1000, None, 99_000, 0)]
    assert records == []
    assert game.balance_of(1) == 99_500
    # Next round the slot is free again.
    game.advance(RUN + 60_000)
    table.drain()
    assert game.round_id == 2
    game.place_bet(RUN + 60_000, 1, 700, None, "r2")
    assert of_type(table.drain()[1], BetPlaced)


def test_a_cancelled_bet_cannot_be_cashed_out() -> None:
    table = make_table()
    game = table.game
    game.place_bet(100, 1, 1000, None, "b")
    game.cancel_bet(200, 1, "c")
    table.drain()
    game.cash_out(RUN + 1000, 1, "out")
    assert rejected(table) == "no_active_bet"
    assert game.balance_of(1) == 100_000


def test_a_void_refunds_the_open_bets_not_the_cancelled_one_again() -> None:
    table = make_table()
    game = table.game
    game.place_bet(100, 1, 1000, None, "b0")
    game.place_bet(100, 1, 2000, None, "b1", 1)
    game.cancel_bet(200, 1, "c0")
    table.drain()
    assert game.void_round(300) == (1, 1)
    assert game.balance_of(1) == 100_000


def test_a_cancelled_bet_no_longer_counts_toward_the_limits() -> None:
    table = make_table(balances=())
    game = table.game
    limits = Limits().request(0, {"daily_wager": 5000, "daily_loss": 5000})
    game.load_account(7, "lim", 100_000, limits, Activity())
    game.place_bet(100, 7, 5000, None, "b")
    assert (game.usage_of(7, 100) or {})["daily_wager"] == 5000
    game.cancel_bet(200, 7, "c")
    usage = game.usage_of(7, 200) or {}
    assert (usage["daily_wager"], usage["daily_loss"]) == (0, 0)
    table.drain()
    # The room is back: the full limit can be bet in the other slot.
    game.place_bet(300, 7, 5000, None, "b1", 1)
    assert of_type(table.drain()[0], BetAccepted)
