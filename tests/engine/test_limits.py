"""Self-imposed limits: checked when a bet is accepted, with injected time."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pillarpayout_ws.engine.config import GameConfig
from pillarpayout_ws.engine.events import BetAccepted, CommandRejected
from pillarpayout_ws.engine.game import Game
from pillarpayout_ws.engine.growth import elapsed_for
from pillarpayout_ws.engine.limits import (
    DAY_MS,
    Activity,
    Limit,
    Limits,
    add_months,
    period_bounds,
)
from tests.engine.helpers import ScriptedSeeds, of_type, seed_with_crash


def ms(text: str) -> int:
    return round(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


# A Monday afternoon: 2026-11-30 is a Monday, the last day of the month.
T0 = ms("2026-11-30 12:00:00")
BETTING = GameConfig().betting_ms


def table(limits: Limits, activity: Activity | None = None, start: int = T0) -> Game:
    game = Game(GameConfig(), ScriptedSeeds(seed_with_crash(300, 400)), next_round_id=1)
    game.load_account(1, "ann", 1_000_000, limits, activity or Activity())
    game.start(start)
    game.events_to_send()
    return game


def bet(game: Game, now: int, amount: int, slot: int = 0) -> str:
    """Place a bet; "ok" or the rejection's code and message."""
    game.place_bet(now, 1, amount, None, None, slot)
    events = game.events_to_send()
    rejected = of_type(events, CommandRejected)
    if rejected:
        return f"{rejected[0].code}: {rejected[0].message}"
    assert of_type(events, BetAccepted)
    return "ok"


def next_round(game: Game, at: int) -> int:
    """Play the round out and open the next one at ``at`` (past the crash); its time."""
    game.advance(at)
    assert game.phase.value == "betting", game.phase
    game.events_to_send()
    return at


def test_tightening_is_immediate_and_two_slots_count_together() -> None:
    game = table(Limits())
    limits = Limits().request(T0, {"daily_loss": 5000})
    assert limits.limit("daily_loss") == Limit(5000)
    game.set_limits(1, limits)
    assert bet(game, T0 + 1, 3000, 0) == "ok"
    assert bet(game, T0 + 2, 2001, 1) == (
        "limit_reached: daily loss limit 50.00 reached; resets 2026-12-01 00:00 UTC"
    )
    assert bet(game, T0 + 3, 2000, 1) == "ok"  # exactly the limit
    assert game.balance_of(1) == 1_000_000 - 5000
    assert (game.usage_of(1, T0) or {})["daily_loss"] == 5000


def test_a_payout_gives_room_and_open_stakes_count_as_loss() -> None:
    game = table(Limits().request(T0, {"daily_loss": 5000, "daily_wager": 20_000}))
    assert bet(game, T0 + 1, 5000) == "ok"
    game.cash_out(T0 + BETTING + elapsed_for(200), 1, None, 0)  # 2.00x: paid 10,000
    after = next_round(game, T0 + 60_000)
    assert game.usage_of(1, after) == {
        "daily_loss": -5000,
        "daily_wager": 5000,
        "weekly_loss": -5000,
        "weekly_wager": 5000,
        "monthly_loss": -5000,
        "monthly_wager": 5000,
    }
    assert bet(game, after + 1, 10_000) == "ok"  # loss 5,000: at the limit
    assert bet(game, after + 2, 10, 1).startswith("limit_reached: daily loss limit 50.00")
    # Removing a limit is a loosening: it waits 24 hours.
    game.set_limits(1, game.limits_of(1).request(after, {"daily_loss": None}))  # type: ignore[union-attr]
    assert game.limits_of(1).limit("daily_loss").current == 5000  # type: ignore[union-attr]


def test_loosening_takes_effect_after_exactly_24_hours() -> None:
    limits = Limits().request(T0, {"daily_wager": 1000, "weekly_wager": 5000})
    raised = limits.request(T0 + 10, {"daily_wager": 3000, "weekly_wager": None})
    assert raised.limit("daily_wager") == Limit(1000, 3000, T0 + 10 + DAY_MS)
    assert raised.limit("weekly_wager") == Limit(5000, None, T0 + 10 + DAY_MS)
    assert raised.at(T0 + 9 + DAY_MS).limit("daily_wager").current == 1000
    assert raised.at(T0 + 10 + DAY_MS).limit("daily_wager") == Limit(3000)
    assert raised.at(T0 + 10 + DAY_MS).limit("weekly_wager") == Limit()
    # Tightening while a loosening waits: at once, and the loosening is gone.
    assert raised.request(T0 + 20, {"daily_wager": 500}).limit("daily_wager") == Limit(500)
    # Asking again restarts the 24 hours; asking for the value in force cancels.
    again = raised.request(T0 + 30, {"daily_wager": 2000})
    assert again.limit("daily_wager") == Limit(1000, 2000, T0 + 30 + DAY_MS)
    assert raised.request(T0 + 40, {"daily_wager": 1000}).limit("daily_wager") == Limit(1000)

    start = T0 + 10 + DAY_MS - BETTING // 2  # a betting window around the instant
    game = table(raised, start=start)
    assert bet(game, T0 + 9 + DAY_MS, 2000).startswith("limit_reached: daily wager")
    assert bet(game, T0 + 10 + DAY_MS, 2000) == "ok"


@pytest.mark.parametrize(
    ("name", "last_ms", "resets"),
    [
        ("daily_wager", "2026-11-30 23:59:59.999", "2026-12-01 00:00 UTC"),
        ("weekly_wager", "2026-12-06 23:59:59.999", "2026-12-07 00:00 UTC"),  # Sunday -> Monday
        ("monthly_wager", "2026-11-30 23:59:59.999", "2026-12-01 00:00 UTC"),
    ],
)
def test_totals_reset_at_the_period_boundary(name: str, last_ms: str, resets: str) -> None:
    limits = Limits().request(T0, {name: 1000})
    game = table(limits)
    assert bet(game, T0 + 1, 1000) == "ok"
    last = ms(last_ms)
    game.advance(last - BETTING + 1)
    game.events_to_send()
    assert bet(game, last, 10) == f"limit_reached: {name.replace('_', ' ')} limit 10.00 " + (
        f"reached; resets {resets}"
    )
    first = ms(resets.removesuffix(" UTC"))
    game.advance(first + 60_000 - BETTING)
    game.events_to_send()
    assert bet(game, first + 60_000 - 1, 1000) == "ok"


def test_periods_are_utc_day_iso_week_and_calendar_month() -> None:
    day = ms("2026-02-11 08:00:00") // DAY_MS  # a Wednesday
    assert period_bounds("daily", day) == (day, day + 1)
    assert period_bounds("weekly", day) == (day - 2, day + 5)
    assert period_bounds("monthly", day) == (
        ms("2026-02-01 00:00:00") // DAY_MS,
        ms("2026-03-01 00:00:00") // DAY_MS,
    )
    assert add_months(ms("2026-08-31 10:00:00"), 6) == ms("2027-02-28 10:00:00")


def test_flushed_activity_counts_from_login() -> None:
    today = T0 // DAY_MS
    # Earlier this month (the week began Monday = today): 4,000 lost last week.
    activity = Activity({today - 3: (4000, 4000), today - 40: (99_999, 99_999)})
    game = table(Limits().request(T0, {"monthly_loss": 5000, "weekly_loss": 1000}), activity)
    assert bet(game, T0 + 1, 1001).startswith("limit_reached: weekly loss limit 10.00")
    assert bet(game, T0 + 2, 1000) == "ok"
    assert bet(game, T0 + 3, 10, 1).startswith("limit_reached: weekly loss")


def test_cool_off_and_self_exclusion_block_bets_and_cannot_be_shortened() -> None:
    limits = Limits().request(T0, {}, cool_off_days=2)
    assert limits.cool_off_until_ms == T0 + 2 * DAY_MS
    assert limits.request(T0 + 5, {}, cool_off_days=1).cool_off_until_ms == T0 + 2 * DAY_MS
    game = table(limits)
    assert bet(game, T0 + 1, 100) == "cooling_off: you are cooling off until 2026-12-02 12:00 UTC"
    excluded = limits.request(T0, {}, exclusion_months=6)
    assert excluded.excluded_until_ms == ms("2027-05-30 12:00:00")
    game.set_limits(1, excluded)
    assert bet(game, T0 + 2, 100) == (
        "self_excluded: you excluded yourself until 2027-05-30 12:00 UTC"
    )
    with pytest.raises(ValueError, match="6 to"):
        limits.request(T0, {}, exclusion_months=5)
    with pytest.raises(ValueError, match="1 to 42 days"):
        limits.request(T0, {}, cool_off_days=43)
    # Over at its end: bets are taken again.
    start = T0 + 2 * DAY_MS - BETTING // 2
    game = table(limits, start=start)
    assert bet(game, start + 1, 100).startswith("cooling_off")
    assert bet(game, T0 + 2 * DAY_MS, 100) == "ok"


def test_an_account_loaded_without_limits_gets_them_at_login() -> None:
    game = Game(GameConfig(), ScriptedSeeds(seed_with_crash(300, 400)), next_round_id=1)
    game.load_account(1, "ann", 0)  # a grant before the first login
    game.grant(1, 10_000, "g")
    game.load_account(1, "ann", 0, Limits().request(T0, {"daily_wager": 100}), Activity())
    game.start(T0)
    assert game.balance_of(1) == 10_000
    assert bet(game, T0 + 1, 101).startswith("limit_reached")


def test_the_calendar_arithmetic_agrees_with_datetime() -> None:
    from datetime import date, timedelta

    from pillarpayout_ws.engine.limits import format_instant

    epoch = date(1970, 1, 1)
    for day in range(-800, 80_000, 7):
        d = epoch + timedelta(days=day)
        start, end = period_bounds("monthly", day)
        assert epoch + timedelta(days=start) == d.replace(day=1)
        assert (epoch + timedelta(days=end)).day == 1 and end > day >= start
        week_start, _ = period_bounds("weekly", day)
        assert epoch + timedelta(days=week_start) == d - timedelta(days=d.weekday())
        at = day * DAY_MS + 37_000_000  # 10:16:40
        assert format_instant(at) == f"{d.isoformat()} 10:16 UTC"
    assert add_months(ms("2024-01-31 00:00:00"), 1) == ms("2024-02-29 00:00:00")
    assert add_months(ms("2026-11-30 12:00:00"), 14) == ms("2028-01-30 12:00:00")
