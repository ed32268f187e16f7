from __future__ import annotations

import pytest

from pillarpayout_ws.engine.records import BetCancelled, BetPlaced, CashedOut, RoundCrashed
from pillarpayout_ws.exceptions import StorageError
from pillarpayout_ws.storage.settle import settle_round

from .helpers import round_records

# Also run against Debian's PostgreSQL and Redis (python -m tests.external, in make test).
pytestmark = pytest.mark.external


def test_crashed_round_pays_cashouts_and_loses_the_rest() -> None:
    balances = {1: 1000, 2: 1000}
    settled = settle_round(round_records(7, 1, balances, {1: 100, 2: 200}, {1: 250}, 300))
    assert settled.crash_point == 300 and not settled.void
    by_user = {b.user_id: b for b in settled.bets}
    assert (by_user[1].status, by_user[1].payout, by_user[1].multiplier) == ("cashed_out", 250, 250)
    assert (by_user[2].status, by_user[2].payout) == ("lost", 0)
    assert settled.total_wagered == 300 and settled.total_paid == 250
    assert settled.ledger == (
        (1, "bet", -100, 7, "bet:7:1", 0),
        (1, "payout", 250, 7, "payout:7:1", 0),
        (2, "bet", -200, 7, "bet:7:2", 0),
    )


def test_uncrashed_round_is_void_cashouts_honoured_others_refunded() -> None:
    balances = {1: 1000, 2: 1000}
    settled = settle_round(round_records(8, 1, balances, {1: 100, 2: 200}, {1: 150}, None))
    assert settled.void and settled.crash_point is None
    by_user = {b.user_id: b for b in settled.bets}
    assert by_user[1].status == "cashed_out" and by_user[1].payout == 150
    assert by_user[2].status == "refunded"
    assert settled.ledger == (
        (1, "bet", -100, 8, "bet:8:1", 0),
        (1, "payout", 150, 8, "payout:8:1", 0),
        (2, "bet", -200, 8, "bet:8:2", 0),
        (2, "refund", 200, 8, "refund:8:2", 0),
    )
    assert settled.total_wagered == 100


@pytest.mark.parametrize(
    "extra",
    [
        BetPlaced(9, 1, None, 5, None, 0),  # a second bet of the same user
        CashedOut(9, 3, 150, 10, 10, "manual"),  # a cashout without a bet
        CashedOut(9, 1, 150, 10, 10, "manual"),  # a second cashout
    ],
)
def test_malformed_write_ahead_is_refused(extra: BetPlaced | CashedOut) -> None:
    records = round_records(9, 1, {1: 1000}, {1: 100}, {1: 120}, None)
    with pytest.raises(StorageError):
        settle_round([*records, extra])


def test_cashout_above_the_crash_point_is_refused() -> None:
    records = round_records(10, 1, {1: 1000}, {1: 100}, {1: 500}, None)
    with pytest.raises(StorageError, match="above the crash point"):
        settle_round([*records, RoundCrashed(10, 400, 10)])


def test_records_must_start_with_the_round() -> None:
    with pytest.raises(StorageError):
        settle_round([])


def test_two_slots_of_a_user_settle_apart_with_their_own_keys() -> None:
    balances = {1: 1000}
    records = round_records(9, 1, balances, {1: 100}, {}, 300, slots=(0, 1))
    records.insert(-1, CashedOut(9, 1, 200, 200, balances[1] + 200, "auto", 1))
    settled = settle_round(records)
    by_slot = {b.slot: b for b in settled.bets}
    assert (by_slot[0].status, by_slot[0].payout) == ("lost", 0)
    assert (by_slot[1].status, by_slot[1].payout, by_slot[1].ref) == ("cashed_out", 200, "ref-9-1")
    assert settled.ledger == (
        (1, "bet", -100, 9, "bet:9:1", 0),
        (1, "bet", -100, 9, "bet:9:1:1", 1),
        (1, "payout", 200, 9, "payout:9:1:1", 1),
    )
    assert settled.total_wagered == 200 and settled.total_paid == 200


def test_two_bets_in_one_slot_are_refused() -> None:
    records = round_records(9, 1, {1: 1000}, {1: 100}, {}, 300)
    records.insert(2, BetPlaced(9, 1, "again", 100, None, 800, None, 0))
    with pytest.raises(StorageError, match="two bets of user 1 in slot 0"):
        settle_round(records)


def test_a_cancelled_bet_is_refunded_in_a_crashed_round_with_the_slots_keys() -> None:
    balances = {1: 1000, 2: 1000}
    records = round_records(11, 1, balances, {1: 100, 2: 200}, {}, 300, slots=(0, 1))
    balances[1] += 100
    records.insert(-1, BetCancelled(11, 1, 1, 100, balances[1]))
    settled = settle_round(records)
    statuses = {(b.user_id, b.slot): b.status for b in settled.bets}
    assert statuses == {(1, 0): "lost", (1, 1): "refunded", (2, 0): "lost", (2, 1): "lost"}
    assert settled.cancelled == {(1, 1)}
    assert [row for row in settled.ledger if row[0] == 1] == [
        (1, "bet", -100, 11, "bet:11:1", 0),
        (1, "bet", -100, 11, "bet:11:1:1", 1),
        (1, "refund", 100, 11, "refund:11:1:1", 1),
    ]
    assert settled.total_wagered == 100 + 400


def test_a_cancelled_bet_of_a_void_round_is_refunded_once() -> None:
    records = round_records(12, 1, {1: 1000}, {1: 100}, {}, None)
    records.append(BetCancelled(12, 1, 0, 100, 1000))
    settled = settle_round(records)
    assert settled.ledger == (
        (1, "bet", -100, 12, "bet:12:1", 0),
        (1, "refund", 100, 12, "refund:12:1", 0),
    )


@pytest.mark.parametrize(
    "extra",
    [
        [BetCancelled(13, 2, 0, 100, 1000)],  # no such bet
        [BetCancelled(13, 1, 0, 100, 1000)] * 2,  # cancelled twice
        [BetCancelled(13, 1, 0, 100, 1000), CashedOut(13, 1, 150, 150, 1150, "manual")],
        [CashedOut(13, 1, 150, 150, 1050, "manual"), BetCancelled(13, 1, 0, 100, 1150)],
    ],
)
def test_a_cancel_that_does_not_fit_is_refused(extra: list[BetCancelled | CashedOut]) -> None:
    records = round_records(13, 1, {1: 1000}, {1: 100}, {}, None)
    with pytest.raises(StorageError, match="without one open bet"):
        settle_round([*records, *extra])
