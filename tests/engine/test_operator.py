"""Operator commands in the engine: adjust (never below the balance held) and void_round."""

from __future__ import annotations

import pytest

from pillarpayout_ws.engine.errors import UnknownAccountError
from pillarpayout_ws.engine.events import FundsGranted
from pillarpayout_ws.engine.records import Granted
from tests.engine.helpers import make_table


def test_credit_debit_and_a_debit_below_zero_refused() -> None:
    table = make_table()
    game = table.game
    game.place_bet(1, 1, 40_000, None, "b")  # the balance the engine holds: 60,000
    table.drain()
    game.adjust(1, 500, "a1", "goodwill")
    game.adjust(1, -60_500, "a2", "chargeback")
    events, records = table.drain()
    assert events == [
        FundsGranted(1, "a1", 500, 60_500, "adjust"),
        FundsGranted(1, "a2", -60_500, 0, "adjust"),
    ]
    assert records == [
        Granted(1, 500, "a1", 60_500, "adjust", "goodwill"),
        Granted(1, -60_500, "a2", 0, "adjust", "chargeback"),
    ]
    with pytest.raises(ValueError, match="below zero"):
        game.adjust(1, -1, "a3", "one cent too many")
    with pytest.raises(ValueError, match="non-zero"):
        game.adjust(1, 0, "a4", "nothing")
    with pytest.raises(UnknownAccountError):
        game.adjust(99, 100, "a5", "who")
    assert table.drain() == ([], [])
    game.adjust(1, -60_500, "a2", "chargeback")  # the same key: the first answer again
    assert table.drain() == ([FundsGranted(1, "a2", -60_500, 0, "adjust")], [])
    assert game.balance_of(1) == 0


def test_void_round_refunds_open_bets_keeps_cashouts_and_opens_the_next() -> None:
    from pillarpayout_ws.engine.errors import TransitionError
    from pillarpayout_ws.engine.events import (
        BetRefunded,
        BettingOpened,
        CashoutDone,
        CommandRejected,
        RoundVoided,
    )
    from pillarpayout_ws.engine.growth import elapsed_for
    from tests.engine.helpers import seed_with_crash

    table = make_table(seed_with_crash(500, 600))
    game = table.game
    run = game.config.betting_ms
    game.place_bet(1, 1, 1000, None, "a")
    game.place_bet(2, 2, 2000, None, "b")
    game.place_bet(3, 2, 500, None, "c", 1)
    game.cash_out(run + elapsed_for(200), 1, "out")
    table.drain()
    now = run + elapsed_for(300)
    assert game.void_round(now) == (1, 2)
    events, records = table.drain()
    assert [e for e in events if isinstance(e, BetRefunded | RoundVoided)] == [
        BetRefunded(2, 1, 0, 2000, 99_500),
        BetRefunded(2, 1, 1, 500, 100_000),
        RoundVoided(1, 2),
    ]
    opened = [e for e in events if isinstance(e, BettingOpened)]
    assert [(e.round_id, e.betting_ms) for e in opened] == [(2, game.config.betting_ms)]
    # No record of the void: round 1's write-ahead ends without a crash (void).
    assert [type(r).__name__ for r in records] == ["RoundOpened"]
    assert game.balance_of(1) == 100_000 - 1000 + 2000
    assert game.balance_of(2) == 100_000
    assert (game.round_id, game.phase.value) == (2, "betting")
    assert not [v for v in game.snapshot().bets]
    game.cash_out(now + 1, 2, "late")
    (rejected,) = [e for e in table.drain()[0] if isinstance(e, CommandRejected)]
    assert rejected.code == "no_active_bet" and "voided" in rejected.message
    assert not [e for e in table.events if isinstance(e, CashoutDone) and e.user_id == 2]
    # Nothing to void once a round has crashed.
    due = now
    while game.phase.value != "crashed":
        due = game.next_due_ms() or due
        game.advance(due)
    table.drain()
    with pytest.raises(TransitionError):
        game.void_round(due)
    assert table.drain() == ([], [])
