"""Game.adjust: an operator's credit or debit, never below the balance the engine holds."""

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
