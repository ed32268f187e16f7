"""Operator adjustments (server/admin.py): straight to PostgreSQL, or through the game."""

from __future__ import annotations

import pytest

from pillarpayout_ws.exceptions import InsufficientBalance, UnknownUser
from pillarpayout_ws.server.admin import adjust
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
