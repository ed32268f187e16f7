"""Cancelling a bet during betting over real sockets and real storage (issue 20)."""

from __future__ import annotations

import pytest

from pillarpayout_ws.engine.records import BetCancelled
from pillarpayout_ws.server.app import App
from pillarpayout_ws.storage.audit import audit

from .conftest import GameServer, ManualGame

# Also run against Debian's PostgreSQL and Redis (python -m tests.external, in make test).
pytestmark = pytest.mark.external


async def test_a_cancel_refunds_through_the_ledger_and_the_bet_leaves_every_list(
    manual_game: ManualGame,
) -> None:
    game = manual_game
    app = game.app
    alice, session = await game.register("alice")
    bob, _ = await game.register("bob")
    round_id = app.runner.round_id
    assert round_id is not None
    assert await alice.refused("none", type="cancel_bet") == "no_active_bet"
    await alice.send(type="bet", amount=2500, auto_cashout=1.5, ref="b0")
    await alice.send(type="bet", amount=1000, ref="b1", slot=1)
    await alice.next("bet_accepted", ref="b1")
    # Others see the bets while betting is still open (at most a frame a tick).
    await bob.next_where(
        lambda f: f["type"] == "bets" and any(b["username"] == "alice" for b in f["bets"])
    )
    assert app.runner.game.phase.value == "betting"
    await bob.send(type="bet", amount=700, ref="bob")
    await bob.next("bet_accepted", ref="bob")
    # A page loaded now lists alice's bet.
    early = await game.connect()
    hello = await early.next("hello")
    assert {(b["username"], b["slot"]) for b in hello["bets"]} >= {("alice", 0)}

    await alice.send(type="cancel_bet", slot=0, ref="c0")
    cancelled = await alice.next("bet_cancelled", ref="c0")
    assert cancelled == {
        "type": "bet_cancelled",
        "ref": "c0",
        "round_id": round_id,
        "slot": 0,
        "amount": 2500,
        "balance": 99_000,
    }
    # Acknowledged only once durable: the cancel is in Redis's write-ahead.
    records = (await app.storage.live.round_records([round_id]))[round_id]
    assert [
        (r.slot, r.amount, r.balance_after) for r in records if isinstance(r, BetCancelled)
    ] == [(0, 2500, 99_000)]
    # A replay (any ref) gets the same answer and moves no money.
    await alice.send(type="cancel_bet", slot=0, ref="c0-again")
    again = await alice.next("bet_cancelled", ref="c0-again")
    assert (again["amount"], again["balance"]) == (2500, 99_000)
    # The slot is spent for this round (its ledger keys are taken); the other is not.
    assert await alice.refused("rebet", type="bet", amount=300) == "already_bet"
    # A page loaded after the cancel does not list it.
    late = await game.connect()
    hello = await late.next("hello")
    assert ("alice", 0) not in {(b["username"], b["slot"]) for b in hello["bets"]}

    # Everyone who may have listed it is told it is gone, once, while betting.
    await game.advance(app.runner.game.config.tick_ms)
    bets = await early.next_where(
        lambda f: f["type"] == "bets" and any(b["username"] == "alice" for b in f["bets"])
    )
    assert app.runner.game.phase.value == "betting"
    assert [(b["slot"], b["status"]) for b in bets["bets"] if b["username"] == "alice"] == [
        (0, "cancelled")
    ]
    await game.to_phase("running")
    assert await alice.refused("closed", type="cancel_bet", slot=1) == "betting_closed"
    assert await alice.refused("out", type="cashout", slot=0) == "no_active_bet"

    await game.to_phase("betting", round_id + 1)
    flusher = app.flusher
    await flusher.wait_until(lambda: flusher.rounds_flushed >= 1)
    db = app.storage.db
    user_id = session["user"]["id"]
    rows = await db.fetch(
        "SELECT slot, status, bet_amount FROM bets WHERE round_id = $1 AND user_id = $2 "
        "ORDER BY slot",
        round_id,
        user_id,
    )
    assert [tuple(r) for r in rows] == [(0, "refunded", 2500), (1, "lost", 1000)]
    keys = await db.fetch(
        "SELECT idem_key, amount FROM ledger WHERE round_id = $1 AND user_id = $2 ORDER BY id",
        round_id,
        user_id,
    )
    assert [tuple(k) for k in keys] == [
        (f"bet:{round_id}:{user_id}", -2500),
        (f"refund:{round_id}:{user_id}", 2500),
        (f"bet:{round_id}:{user_id}:1", -1000),
    ]
    user = await db.user_by_id(user_id)
    assert user is not None and user.balance == 99_000
    assert (await audit(db, app.storage.live)).clean
    # A new round: the slot takes a bet again.
    await alice.send(type="bet", amount=300, ref="next")
    assert (await alice.next("bet_accepted", ref="next"))["round_id"] == round_id + 1
    for player in (alice, bob, early, late):
        await player.close()


async def test_a_cancel_then_a_stop_mid_betting_refunds_once_and_survives_the_restart(
    manual_game: ManualGame,
) -> None:
    game = manual_game
    app = game.app
    alice, session = await game.register("alice")
    round_id = app.runner.round_id
    await alice.send(type="bet", amount=4000, ref="b0")
    await alice.send(type="bet", amount=1000, ref="b1", slot=1)
    await alice.next("bet_accepted", ref="b1")
    await alice.send(type="cancel_bet", ref="c0")
    cancelled = await alice.next("bet_cancelled", ref="c0")
    assert cancelled["balance"] == 99_000
    await app.stop()  # the round never runs: it is voided, the open bet refunded
    refund = await alice.next("balance")
    assert (refund["slot"], refund["amount"], refund["balance"]) == (1, 1000, 100_000)
    await alice.closed
    db = app.storage.db
    rows = await db.fetch(
        "SELECT slot, status FROM bets WHERE round_id = $1 ORDER BY slot", round_id
    )
    assert [tuple(r) for r in rows] == [(0, "refunded"), (1, "refunded")]
    assert (await audit(db, app.storage.live)).clean
    again = App(app.config, app.storage, clock=game.clock, stop_timeout_s=0)
    await again.start()
    try:
        back = await GameServer(again).resume(session["token"])
        (resumed,) = [f for f in back.frames if f["type"] == "session"]
        assert resumed["user"]["balance"] == 100_000
        await back.close()
    finally:
        await again.stop()
