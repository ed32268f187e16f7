"""Two bets a round over real sockets and real storage: each slot is its own bet."""

from __future__ import annotations

import pytest

from pillarpayout_ws.engine.growth import elapsed_for
from pillarpayout_ws.server.app import App
from pillarpayout_ws.storage.audit import audit

from .conftest import GameServer, ManualGame

# Also run against Debian's PostgreSQL and Redis (python -m tests.external, in make test).
pytestmark = pytest.mark.external


async def test_an_auto_cashout_in_one_slot_and_a_hand_cashout_in_the_other(
    manual_game: ManualGame,
) -> None:
    game = manual_game
    alice, session = await game.register("alice")
    round_id = game.app.runner.round_id
    await alice.send(type="bet", amount=1000, auto_cashout=1.2, ref="b0")
    await alice.send(type="bet", amount=2000, ref="b1", slot=1)
    first = await alice.next("bet_accepted", ref="b0")
    second = await alice.next("bet_accepted", ref="b1")
    assert (first["slot"], first["balance"]) == (0, 99_000)
    assert (second["slot"], second["balance"]) == (1, 97_000)
    assert await alice.refused("again", type="bet", amount=100, slot=1) == "already_bet"
    assert await alice.refused("bad", type="bet", amount=100, slot=2) == "invalid_slot"
    assert await alice.refused("bad-c", type="cashout", slot="1") == "invalid_slot"
    await game.to_phase("running")
    await game.advance(elapsed_for(130))
    auto = await alice.next("cashed_out", reason="auto")
    assert (auto["slot"], auto["multiplier"], auto["payout"]) == (0, 1.2, 1200)
    await alice.send(type="cashout", ref="c1", slot=1)
    hand = await alice.next("cashed_out", ref="c1")
    assert hand["slot"] == 1 and hand["reason"] == "manual" and hand["multiplier"] >= 1.3
    assert hand["balance"] == 97_000 + 1200 + hand["payout"]
    # The live bets list both, told apart by their slot (the hand cash-out's
    # change goes out with the next tick).
    await game.advance(100)
    await alice.next_where(lambda f: f["type"] == "bets" and any(b["slot"] == 1 for b in f["bets"]))
    shown = {
        (b["slot"], b["status"])
        for f in alice.frames
        if f["type"] == "bets"
        for b in f["bets"]
        if b["username"] == "alice"
    }
    assert {(0, "cashed_out"), (1, "cashed_out")} <= shown
    assert round_id is not None
    await game.to_phase("betting", round_id + 1)
    flusher = game.app.flusher
    await flusher.wait_until(lambda: flusher.rounds_flushed >= 1)
    rows = await game.app.storage.db.fetch(
        "SELECT slot, ref, bet_amount, winnings, cashout_reason FROM bets "
        "WHERE round_id = $1 ORDER BY slot",
        round_id,
    )
    assert [tuple(r) for r in rows] == [
        (0, "b0", 1000, 1200, "auto"),
        (1, "b1", 2000, hand["payout"], "manual"),
    ]
    user = await game.app.storage.db.user_by_id(session["user"]["id"])
    assert user is not None and user.balance == hand["balance"]
    assert (await audit(game.app.storage.db, game.app.storage.live)).clean
    await alice.close()


async def test_a_replayed_ref_gets_its_own_slots_answer(manual_game: ManualGame) -> None:
    alice, _ = await manual_game.register("alice")
    await alice.send(type="bet", amount=1000, ref="r0")
    await alice.send(type="bet", amount=2000, ref="r1", slot=1)
    await alice.next("bet_accepted", ref="r0")
    await alice.next("bet_accepted", ref="r1")
    # Replays, one naming the wrong slot: each gets its first answer, no money moves.
    await alice.send(type="bet", amount=1000, ref="r1")
    await alice.send(type="bet", amount=5000, ref="r0", slot=1)
    await alice.next("bet_accepted", ref="r1")
    await alice.next("bet_accepted", ref="r0")
    answers = [
        (f["ref"], f["slot"], f["amount"], f["balance"])
        for f in alice.frames
        if f["type"] == "bet_accepted"
    ]
    assert answers == [
        ("r0", 0, 1000, 99_000),
        ("r1", 1, 2000, 97_000),
        ("r1", 1, 2000, 97_000),
        ("r0", 0, 1000, 99_000),
    ]
    assert manual_game.app.runner.game.balance_of(alice_id(manual_game)) == 97_000
    await alice.close()


def alice_id(game: GameServer) -> int:
    (view,) = {v.user_id for v in game.app.runner.game.snapshot().bets}
    return view


async def test_a_crash_with_both_slots_open_loses_both(manual_game: ManualGame) -> None:
    game = manual_game
    alice, _ = await game.register("alice")
    round_id = game.app.runner.round_id
    await alice.send(type="bet", amount=1000, ref="b0")
    await alice.send(type="bet", amount=1000, ref="b1", slot=1)
    await alice.next("bet_accepted", ref="b1")
    await game.to_phase("crashed")
    await alice.next("crashed", round_id=round_id)
    assert await alice.refused("late", type="cashout", slot=1) == "round_crashed"
    assert await alice.refused("late0", type="cashout") == "round_crashed"
    flusher = game.app.flusher
    await flusher.wait_until(lambda: flusher.rounds_flushed >= 1)
    rows = await game.app.storage.db.fetch(
        "SELECT slot, status FROM bets WHERE round_id = $1 ORDER BY slot", round_id
    )
    assert [tuple(r) for r in rows] == [(0, "lost"), (1, "lost")]
    await alice.close()


async def test_a_restart_mid_round_pays_the_acked_cashout_and_refunds_the_other_slot(
    manual_game: ManualGame,
) -> None:
    game = manual_game
    app = game.app
    alice, session = await game.register("alice")
    round_id = app.runner.round_id
    await alice.send(type="bet", amount=1000, ref="b0")
    await alice.send(type="bet", amount=3000, ref="b1", slot=1)
    await alice.next("bet_accepted", ref="b1")
    await game.to_phase("running")
    await game.advance(elapsed_for(110))
    await alice.send(type="cashout", ref="c0")
    paid = await alice.next("cashed_out", ref="c0")
    assert paid["slot"] == 0
    await app.stop()  # the round will not end: it is voided
    refund = await alice.next("balance")
    assert (refund["reason"], refund["slot"], refund["amount"]) == ("refund", 1, 3000)
    assert refund["balance"] == paid["balance"] + 3000
    await alice.closed
    # The next server starts from what PostgreSQL holds, and the ledger adds up.
    db = app.storage.db
    rows = await db.fetch(
        "SELECT slot, status, winnings FROM bets WHERE round_id = $1 ORDER BY slot", round_id
    )
    assert [tuple(r) for r in rows] == [(0, "cashed_out", paid["payout"]), (1, "refunded", 0)]
    assert (await audit(db, app.storage.live)).clean
    again = App(app.config, app.storage, clock=game.clock, stop_timeout_s=0)
    await again.start()
    try:
        back = await GameServer(again).resume(session["token"])
        (resumed,) = [f for f in back.frames if f["type"] == "session"]
        assert resumed["user"]["balance"] == refund["balance"]
        await back.send(type="bet", amount=100, ref="b1", slot=1)
        assert (await back.next("error", ref="b1"))["code"] == "ref_reused"
        await back.close()
    finally:
        await again.stop()
