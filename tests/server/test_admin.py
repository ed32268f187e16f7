"""Operator adjustments (server/admin.py): straight to PostgreSQL, or through the game."""

from __future__ import annotations

import pytest

from pillarpayout_ws.exceptions import InsufficientBalance, StorageError, UnknownUser
from pillarpayout_ws.server.admin import adjust, void_round
from pillarpayout_ws.storage import Storage
from pillarpayout_ws.storage.audit import audit

from ..conftest import another_process
from ..storage.helpers import make_users
from .conftest import ManualGame


async def test_without_a_server_credit_debit_and_a_refused_debit(storage: Storage) -> None:
    (user,) = await make_users(storage, 1, balance=1000)
    name = user.username
    assert await adjust(storage, name, 500, "goodwill", key="a1") == (
        user.id,
        1500,
        "in PostgreSQL (no server running)",
    )
    assert (await adjust(storage, name, -500, "duplicate payment", key="a2"))[1] == 1000
    with pytest.raises(InsufficientBalance, match="below zero"):
        await adjust(storage, name, -1001, "too much", key="a3")
    with pytest.raises(UnknownUser):
        await adjust(storage, "nobody", 100, "x", key="a4")
    # The same key again changes nothing.
    assert (await adjust(storage, name, 500, "goodwill", key="a1"))[1] == 1000
    rows = await storage.db.fetch(
        "SELECT kind, amount, reason FROM ledger WHERE kind = 'adjust' ORDER BY id"
    )
    assert [tuple(r) for r in rows] == [
        ("adjust", 500, "goodwill"),
        ("adjust", -500, "duplicate payment"),
    ]
    report = await audit(storage.db, storage.live)
    assert report.clean, report.render()


async def test_a_running_server_adjusts_through_the_game(manual_game: ManualGame) -> None:
    app = manual_game.app
    storage = await another_process(app.storage)  # as `pillarpayout adjust` is
    alice, session = await manual_game.register("alice")
    await alice.send(type="bet", amount=1000, ref="b")
    await alice.next("bet_accepted", ref="b")
    user_id = session["user"]["id"]
    # The game's balance (99,000: the bet is not flushed) is what a debit is checked against.
    with pytest.raises(InsufficientBalance, match="below zero"):
        await adjust(storage, "alice", -99_001, "too much", key="k0")
    assert await adjust(storage, "alice", -9_000, "chargeback", key="k1") == (
        user_id,
        90_000,
        "through the running server",
    )
    frame = await alice.next("balance")
    assert (frame["amount"], frame["balance"], frame["reason"]) == (-9_000, 90_000, "adjust")
    assert (await adjust(storage, "alice", 250, "goodwill", key="k2"))[1] == 90_250
    with pytest.raises(UnknownUser):
        await adjust(storage, "nobody", 100, "x", key="k3")
    await manual_game.to_phase("crashed")
    await manual_game.to_phase("betting")
    await app.flusher.wait_until(lambda: app.flusher.rounds_flushed >= 1)
    rows = await app.storage.db.fetch(
        "SELECT amount, reason FROM ledger WHERE kind = 'adjust' ORDER BY id"
    )
    assert [tuple(r) for r in rows] == [(-9_000, "chargeback"), (250, "goodwill")]
    report = await audit(app.storage.db, app.storage.live)
    assert report.clean, report.render()
    await storage.close()
    await alice.close()


async def test_void_round_through_the_running_server(manual_game: ManualGame) -> None:
    app = manual_game.app
    storage = await another_process(app.storage)  # as `pillarpayout void-round` is
    alice, a = await manual_game.register("alice")
    bob, b = await manual_game.register("bob")
    voided = app.runner.round_id
    assert voided is not None
    await alice.send(type="bet", amount=1000, ref="a")
    await alice.next("bet_accepted", ref="a")
    await bob.send(type="bet", amount=2000, ref="b0")
    await bob.next("bet_accepted", ref="b0")
    await bob.send(type="bet", amount=500, ref="b1", slot=1)
    await bob.next("bet_accepted", ref="b1")
    await manual_game.to_phase("running")
    await manual_game.advance(200)
    await alice.send(type="cashout", ref="out")
    cashed = await alice.next("cashed_out", ref="out")
    assert await void_round(storage, key="v1") == (voided, 2)
    frame = await bob.next("round_voided")
    assert frame == {"type": "round_voided", "round_id": voided, "refunded": 2}
    assert (await alice.next("round_voided"))["round_id"] == voided
    refunds = [f for f in bob.frames if f["type"] == "balance" and f["reason"] == "refund"]
    assert refunds == [
        {"type": "balance", "balance": 99_500, "amount": 2000, "reason": "refund",
         "round_id": voided, "slot": 0},
        {"type": "balance", "balance": 100_000, "amount": 500, "reason": "refund",
         "round_id": voided, "slot": 1},
    ]  # fmt: skip
    betting = await bob.next("betting")
    assert betting["round_id"] == voided + 1 == app.runner.round_id
    # The voided round is flushed through settle_round's void path.
    await app.flusher.wait_until(lambda: app.flusher.rounds_flushed >= 1)
    db = app.storage.db
    (row,) = await db.fetch("SELECT status, crash_point_x100 FROM rounds WHERE id = $1", voided)
    assert tuple(row) == ("void", None)
    bets = await db.fetch(
        "SELECT user_id, slot, status, winnings FROM bets WHERE round_id = $1 ORDER BY id", voided
    )
    assert [tuple(r) for r in bets] == [
        (a["user"]["id"], 0, "cashed_out", cashed["payout"]),
        (b["user"]["id"], 0, "refunded", 0),
        (b["user"]["id"], 1, "refunded", 0),
    ]
    game = app.runner.game
    assert game.balance_of(b["user"]["id"]) == 100_000
    assert game.balance_of(a["user"]["id"]) == 99_000 + cashed["payout"]
    balances = await db.fetch("SELECT id, balance FROM users ORDER BY id")
    assert {r["id"]: r["balance"] for r in balances} == {
        a["user"]["id"]: 99_000 + cashed["payout"],
        b["user"]["id"]: 100_000,
    }
    report = await audit(db, app.storage.live)
    assert report.clean, report.render()
    # The next round plays on.
    await alice.send(type="bet", amount=1000, ref="next")
    assert (await alice.next("bet_accepted", ref="next"))["round_id"] == voided + 1
    await storage.close()
    await alice.close()
    await bob.close()


async def test_void_round_needs_a_running_server(storage: Storage) -> None:
    with pytest.raises(StorageError, match="no server is running"):
        await void_round(storage, key="v")
