"""Self-imposed limits over the wire: set_limits, limits, the refusals, a restart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from pillarpayout_ws.engine.limits import DAY_MS, LIMIT_NAMES
from pillarpayout_ws.server.app import App
from pillarpayout_ws.server.clock import ManualClock
from pillarpayout_ws.storage import Storage
from pillarpayout_ws.storage.audit import audit

from .conftest import ManualGame, fast_config, start_game

# 2026-11-30 12:00 UTC, a Monday: the day, the week and the month reset at
# 2026-12-01 00:00, 2026-12-07 00:00 and 2026-12-01 00:00.
T0 = datetime(2026, 11, 30, 12, tzinfo=UTC).timestamp()
T0_MS = round(T0 * 1000)


@pytest.fixture
async def limits_game(storage_for_game: Storage) -> AsyncIterator[ManualGame]:
    clock = ManualClock(T0)
    app = await start_game(storage_for_game, clock=clock, stop_timeout_s=0)
    try:
        yield ManualGame(app, clock)
    finally:
        await app.stop()


def no_limit() -> dict[str, object]:
    return {"amount": None, "pending": False, "pending_amount": None, "effective_at_ms": None}


async def test_set_tighten_loosen_and_the_limit_reached_error(limits_game: ManualGame) -> None:
    alice, _ = await limits_game.register("alice")
    await alice.send(type="limits", ref="q")
    shown = await alice.next("limits", ref="q")
    assert shown["limits"] == {name: no_limit() for name in LIMIT_NAMES}
    assert shown["cool_off_until_ms"] is None and shown["self_excluded_until_ms"] is None

    await alice.send(type="set_limits", ref="s", limits={"daily_loss": 5000})
    shown = await alice.next("limits", ref="s")
    assert shown["limits"]["daily_loss"] == {**no_limit(), "amount": 5000}
    await alice.send(type="bet", amount=3000, ref="b1")
    await alice.next("bet_accepted", ref="b1")
    await alice.send(type="bet", amount=2001, ref="b2", slot=1)
    error = await alice.next("error", ref="b2")
    assert error == {
        "type": "error",
        "code": "limit_reached",
        "message": "daily loss limit 50.00 reached; resets 2026-12-01 00:00 UTC",
        "ref": "b2",
    }
    # Raising waits 24 hours: shown pending, and the old value still holds.
    now = limits_game.now_ms
    await alice.send(type="set_limits", ref="up", limits={"daily_loss": 10_000})
    shown = await alice.next("limits", ref="up")
    assert shown["limits"]["daily_loss"] == {
        "amount": 5000,
        "pending": True,
        "pending_amount": 10_000,
        "effective_at_ms": now + DAY_MS,
    }
    assert shown["usage"]["daily_loss"] == 3000 and shown["usage"]["monthly_wager"] == 3000
    await alice.send(type="bet", amount=2001, ref="b3", slot=1)
    assert (await alice.next("error", ref="b3"))["code"] == "limit_reached"
    await alice.send(type="bet", amount=2000, ref="b4", slot=1)
    await alice.next("bet_accepted", ref="b4")
    # Stored: what PostgreSQL holds is what the engine checks.
    db = limits_game.app.storage.db
    rows = await db.fetch("SELECT name, amount, pending FROM player_limits")
    assert [tuple(r) for r in rows] == [("daily_loss", 5000, 10_000)]


async def test_cooling_off_and_self_excluded(limits_game: ManualGame) -> None:
    alice, _ = await limits_game.register("alice")
    await alice.send(type="set_limits", ref="c", cool_off_days=2)
    shown = await alice.next("limits", ref="c")
    assert shown["cool_off_until_ms"] == limits_game.now_ms + 2 * DAY_MS
    await alice.send(type="bet", amount=1000, ref="b")
    error = await alice.next("error", ref="b")
    assert error["code"] == "cooling_off"
    assert error["message"] == "you are cooling off until 2026-12-02 12:00 UTC"

    bob, _ = await limits_game.register("bob")
    await bob.send(type="set_limits", ref="x", self_exclusion_months=6)
    shown = await bob.next("limits", ref="x")
    assert shown["self_excluded_until_ms"] == round(
        datetime(2027, 5, 30, 12, tzinfo=UTC).timestamp() * 1000
    )
    # Asking for a shorter one changes nothing.
    await bob.send(type="set_limits", ref="x2", self_exclusion_months=6, cool_off_days=1)
    again = await bob.next("limits", ref="x2")
    assert again["self_excluded_until_ms"] == shown["self_excluded_until_ms"]
    await bob.send(type="bet", amount=1000, ref="b")
    error = await bob.next("error", ref="b")
    assert error["code"] == "self_excluded"
    assert error["message"] == "you excluded yourself until 2027-05-30 12:00 UTC"
    assert limits_game.app.runner.game.balance_of(1) == 100_000


async def test_limits_and_totals_survive_a_restart(storage_for_game: Storage) -> None:
    clock = ManualClock(T0)
    app = await start_game(storage_for_game, clock=clock, stop_timeout_s=0)
    try:
        game = ManualGame(app, clock)
        alice, _ = await game.register("alice")
        await alice.send(type="set_limits", ref="s", limits={"daily_wager": 5000})
        await alice.next("limits", ref="s")
        await alice.send(type="bet", amount=3000, ref="b1")
        await alice.next("bet_accepted", ref="b1")
        await alice.send(type="bet", amount=1000, ref="b2", slot=1)
        await alice.next("bet_accepted", ref="b2")
        await alice.close()
    finally:
        await app.stop()  # the round never crashed: voided, its bets refunded

    clock = ManualClock(T0 + 60)
    app = App(fast_config(), storage_for_game, clock=clock, stop_timeout_s=0)
    await app.start()
    try:
        game = ManualGame(app, clock)
        alice = await game.connect()
        await alice.send(type="login", username="alice", password="correct horse battery")
        await alice.next("session")
        await alice.send(type="limits", ref="q")
        shown = await alice.next("limits", ref="q")
        assert shown["limits"]["daily_wager"]["amount"] == 5000
        assert shown["usage"]["daily_wager"] == 0  # the void round's bets were refunded
        await alice.send(type="bet", amount=3000, ref="c1")
        await alice.next("bet_accepted", ref="c1")
        await game.to_phase("crashed")
        await game.to_phase("betting")
        await alice.close()
    finally:
        await app.stop()

    # A third start, the crashed round flushed: its 30.00 counts from PostgreSQL.
    clock = ManualClock(T0 + 120)
    app = App(fast_config(), storage_for_game, clock=clock, stop_timeout_s=0)
    await app.start()
    try:
        game = ManualGame(app, clock)
        alice = await game.connect()
        await alice.send(type="login", username="alice", password="correct horse battery")
        await alice.next("session")
        await alice.send(type="bet", amount=2001, ref="d1")
        error = await alice.next("error", ref="d1")
        assert error["code"] == "limit_reached"
        assert error["message"].startswith("daily wager limit 50.00 reached")
        await alice.send(type="bet", amount=2000, ref="d2")
        await alice.next("bet_accepted", ref="d2")
        await alice.close()
    finally:
        await app.stop()
    report = await audit(storage_for_game.db, storage_for_game.live)
    assert report.clean, report.render()


async def test_an_unflushed_round_counts_for_a_second_login(storage_for_game: Storage) -> None:
    """PostgreSQL has not seen the bets yet; the engine, which holds the account, has."""
    clock = ManualClock(T0)
    app = await start_game(
        storage_for_game,
        clock=clock,
        stop_timeout_s=0,
        flush_rounds=1000,
        flush_interval_ms=3_600_000,
    )
    try:
        game = ManualGame(app, clock)
        alice, session = await game.register("alice")
        await alice.send(type="set_limits", ref="s", limits={"daily_wager": 5000})
        await alice.next("limits", ref="s")
        await alice.send(type="bet", amount=3000, ref="b1")
        await alice.next("bet_accepted", ref="b1")
        await game.to_phase("crashed")
        await game.to_phase("betting")
        db = app.storage.db
        assert await db.fetch("SELECT 1 FROM bets") == []  # not flushed
        await alice.close()
        again = await game.resume(session["token"])
        await again.send(type="bet", amount=2001, ref="b2")
        assert (await again.next("error", ref="b2"))["code"] == "limit_reached"
        await again.send(type="limits", ref="q")
        assert (await again.next("limits", ref="q"))["usage"]["daily_wager"] == 3000
        await again.close()
    finally:
        await app.stop()
