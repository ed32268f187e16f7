"""``player_stats``: the players' totals summed from flushed bets (postgres.py,
``summarise_bets``; storage/stats.py), which ``/api/users/NAME`` and
``/api/leaderboard`` read."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from typing import Any

from pillarpayout_ws.engine.records import (
    BetPlaced,
    CashedOut,
    RoundCrashed,
    RoundOpened,
    RoundRecord,
)
from pillarpayout_ws.storage import Storage
from pillarpayout_ws.storage.audit import audit
from pillarpayout_ws.storage.postgres import ALL_TIME
from pillarpayout_ws.storage.settle import settle_round
from pillarpayout_ws.storage.stats import PlayerStats

from .helpers import make_chain, make_users

SUNDAY_LATE = datetime(2026, 11, 29, 23, 59, 59, 999_000, tzinfo=UTC)  # week of Nov 23
MONDAY = datetime(2026, 11, 30, tzinfo=UTC)  # a new day and ISO week


def ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def a_round(
    round_id: int,
    chain_id: int,
    at: datetime,
    bets: dict[int, tuple[int, int | None]],
    *,
    crashed: bool = True,
) -> list[RoundRecord]:
    """One round placed at ``at``: user -> (stake, cash-out hundredths or None: lost)."""
    records: list[RoundRecord] = [
        RoundOpened(round_id, chain_id, round_id, "00" * 32, "salt", 1.0, ms(at))
    ]
    for user_id, (amount, _) in bets.items():
        records.append(BetPlaced(round_id, user_id, None, amount, None, 0, ms(at)))
    for user_id, (amount, multiplier) in bets.items():
        if multiplier is not None:
            payout = amount * multiplier // 100
            records.append(CashedOut(round_id, user_id, multiplier, payout, 0, "manual"))
    if crashed:
        records.append(RoundCrashed(round_id, 500, 1000, "11" * 32, ms(at) + 1000))
    return records


async def flush(storage: Storage, *rounds: list[RoundRecord]) -> None:
    await storage.db.flush([settle_round(r) for r in rounds])


async def board(storage: Storage, by: str, period: str, starts: date) -> list[tuple[str, Any]]:
    rows = await storage.db.leaderboard(by, period, starts, 50)
    return [(r["username"], r["value"]) for r in rows]


async def table(storage: Storage) -> list[tuple[Any, ...]]:
    rows = await storage.db.fetch("SELECT * FROM player_stats ORDER BY period, starts, user_id")
    return [tuple(r) for r in rows]


async def test_each_bet_counts_in_its_utc_day_its_iso_week_and_all_time(
    storage: Storage,
) -> None:
    a, b, c = await make_users(storage, 3)
    chain = await make_chain(storage)
    await flush(
        storage,
        # Sunday 23:59:59.999 UTC: a wins 150 at 2.50x, b loses 200.
        a_round(1, chain, SUNDAY_LATE, {a.id: (100, 250), b.id: (200, None)}),
        # Monday 00:00 UTC: a loses 300, b wins 50 at 1.50x.
        a_round(2, chain, MONDAY, {a.id: (300, None), b.id: (100, 150)}),
        # Void (never crashed): refunded, so a wagers nothing more; c only had this.
        a_round(3, chain, MONDAY, {a.id: (500, None), c.id: (700, None)}, crashed=False),
    )
    assert await storage.db.summarise_bets() == 6
    sunday, monday = SUNDAY_LATE.date(), MONDAY.date()
    last_week = date(2026, 11, 23)
    assert await board(storage, "profit", "day", sunday) == [("player0", 150), ("player1", -200)]
    assert await board(storage, "profit", "day", monday) == [("player1", 50), ("player0", -300)]
    assert await board(storage, "profit", "week", last_week) == await board(
        storage, "profit", "day", sunday
    )
    assert await board(storage, "wagered", "week", monday) == [
        ("player0", 300),
        ("player1", 100),
    ]
    assert await board(storage, "multiplier", "week", monday) == [("player1", 150)]
    # All time: a tie on profit goes to the older account; c (refunded only) is on no board.
    assert await board(storage, "profit", "all", ALL_TIME) == [
        ("player0", -150),
        ("player1", -150),
    ]
    assert await board(storage, "wagered", "all", ALL_TIME) == [
        ("player0", 400),
        ("player1", 300),
    ]
    assert await board(storage, "multiplier", "all", ALL_TIME) == [
        ("player0", 250),
        ("player1", 150),
    ]
    profile = await storage.db.player_profile("PLAYER0")
    assert profile is not None
    assert dict(profile) | {"created_at": None} == {
        "username": "player0",
        "created_at": None,
        "rounds": 3,
        "bets": 3,  # the refunded one included: it was placed
        "wagered": 400,
        "profit": -150,
        "best_x100": 250,
        "biggest_win": 150,
    }
    profile = await storage.db.player_profile("player2")
    assert profile is not None
    assert (profile["bets"], profile["wagered"], profile["profit"]) == (1, 0, 0)
    assert (profile["best_x100"], profile["biggest_win"]) == (None, None)
    assert await storage.db.player_profile("nobody") is None
    assert await storage.db.player_profile("a\x00b") is None
    assert (await audit(storage.db, storage.live)).clean


async def test_a_summary_adds_each_bet_once_whenever_it_runs(storage: Storage) -> None:
    a, b = await make_users(storage, 2)
    chain = await make_chain(storage)
    # Two flushes with no summary between them (a crash after each flush):
    # the next summary catches both up.
    await flush(storage, a_round(1, chain, MONDAY, {a.id: (100, 200)}))
    await flush(storage, a_round(2, chain, MONDAY, {a.id: (100, None), b.id: (50, 300)}))
    assert await storage.db.summarise_bets() == 3
    once = await table(storage)
    assert await storage.db.summarise_bets() == 0
    assert await table(storage) == once
    # A flush replayed (its rounds already there) adds no bets, so nothing changes.
    await flush(storage, a_round(2, chain, MONDAY, {a.id: (100, None), b.id: (50, 300)}))
    assert await storage.db.summarise_bets() == 0
    assert await table(storage) == once
    # Then only the new bets are added.
    await flush(storage, a_round(3, chain, MONDAY, {a.id: (100, 150)}))
    assert await storage.db.summarise_bets() == 1
    profile = await storage.db.player_profile("player0")
    assert profile is not None
    assert (profile["rounds"], profile["bets"], profile["wagered"]) == (3, 3, 300)
    assert (profile["profit"], profile["best_x100"], profile["biggest_win"]) == (50, 200, 100)


async def test_summaries_at_once_add_nothing_twice(storage: Storage) -> None:
    (a,) = await make_users(storage, 1)
    chain = await make_chain(storage)
    await flush(storage, *(a_round(i, chain, MONDAY, {a.id: (100, 120)}) for i in range(1, 6)))
    added = await asyncio.gather(*(storage.db.summarise_bets() for _ in range(4)))
    assert sorted(added) == [0, 0, 0, 5]
    profile = await storage.db.player_profile("player0")
    assert profile is not None and (profile["bets"], profile["profit"]) == (5, 100)


async def test_the_loop_catches_up_at_start_and_after_each_poke(storage: Storage) -> None:
    (a,) = await make_users(storage, 1)
    chain = await make_chain(storage)
    await flush(storage, a_round(1, chain, MONDAY, {a.id: (100, None)}))  # before any summary
    stats = PlayerStats(storage.db, interval_s=3600)
    task = asyncio.create_task(stats.run())
    try:
        await stats.wait_until(lambda: stats.bets_summarised == 1)
        assert stats.generation == 1
        await flush(storage, a_round(2, chain, MONDAY, {a.id: (100, None)}))
        stats.poke()
        await stats.wait_until(lambda: stats.bets_summarised == 2)
        assert stats.generation == 2
    finally:
        stats.close()
        await task


async def test_a_long_catch_up_goes_a_few_whole_rounds_at_a_time(storage: Storage) -> None:
    a, b, c = await make_users(storage, 3)
    chain = await make_chain(storage)
    three = {a.id: (100, 150), b.id: (200, None), c.id: (300, 120)}
    await flush(storage, *(a_round(i, chain, MONDAY, three) for i in range(1, 5)))
    # At most 4 bets a transaction: the round of the 5th is taken whole.
    assert [await storage.db.summarise_bets(max_bets=4) for _ in range(3)] == [6, 6, 0]
    chunked = await table(storage)
    await storage.db.execute("TRUNCATE player_stats")
    await storage.db.execute("UPDATE player_stats_watermark SET last_bet_id = 0")
    assert await storage.db.summarise_bets() == 12
    assert await table(storage) == chunked
    profile = await storage.db.player_profile("player2")
    assert profile is not None and (profile["rounds"], profile["bets"]) == (4, 4)
