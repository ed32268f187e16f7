"""A full round over real sockets: a spectator, two players, manual and auto cashout."""

from __future__ import annotations

import hashlib

from pillarpayout_ws.engine.fairness import crash_point
from pillarpayout_ws.storage.audit import audit

from .conftest import GameServer


async def test_a_full_round(game_server: GameServer) -> None:
    spectator = await game_server.connect()
    hello = await spectator.next("hello")
    assert hello["phase"] in ("betting", "running", "crashed")
    alice, alice_session = await game_server.register("alice")
    bob, _ = await game_server.register("bob")
    assert alice_session["user"]["balance"] == 100_000

    betting = await spectator.next("betting")  # a fresh window for both players
    round_id = betting["round_id"]
    await alice.send(type="bet", amount=1000, auto_cashout=None, ref="a1")
    await bob.send(type="bet", amount=2000, auto_cashout=1.2, ref="b1")
    a_ack = await alice.next("bet_accepted", ref="a1")
    b_ack = await bob.next("bet_accepted", ref="b1")
    assert (a_ack["round_id"], a_ack["amount"], a_ack["balance"]) == (round_id, 1000, 99_000)
    assert (b_ack["auto_cashout"], b_ack["balance"]) == (1.2, 98_000)

    await alice.next("running", round_id=round_id)
    while (await alice.next("tick", round_id=round_id))["m"] < 1.3:
        pass
    await alice.send(type="cashout", ref="c1")
    a_out = await alice.next("cashed_out", ref="c1")
    assert a_out["multiplier"] >= 1.3
    assert a_out["payout"] == 1000 * round(a_out["multiplier"] * 100) // 100
    assert a_out["balance"] == 99_000 + a_out["payout"]

    b_out = await bob.next("cashed_out", round_id=round_id)
    assert (b_out["multiplier"], b_out["payout"], b_out["reason"]) == (1.2, 2400, "auto")

    crashed = await spectator.next("crashed", round_id=round_id, within=20)
    assert hashlib.sha256(bytes.fromhex(crashed["server_seed"])).hexdigest() == betting["seed_hash"]
    assert crash_point(crashed["server_seed"], crashed["client_seed"]) == round(
        crashed["crash_point"] * 100
    )
    assert crashed["crash_point"] >= a_out["multiplier"]
    # Every tick the spectator saw stayed below the crash point.
    ticks = [f for f in spectator.frames if f["type"] == "tick" and f["round_id"] == round_id]
    assert ticks
    assert all(t["m"] < crashed["crash_point"] for t in ticks)
    bets_frames = [f for f in spectator.frames if f["type"] == "bets"]
    assert {b["username"] for f in bets_frames for b in f["bets"]} >= {"alice", "bob"}

    app = game_server.app
    await app.flusher.wait_until(
        lambda: app.flusher.backlog == 0 and app.flusher.rounds_flushed > 0
    )
    for player in (spectator, alice, bob):
        await player.close()
    report = await audit(app.storage.db, app.storage.live)
    assert report.clean, report.render()
