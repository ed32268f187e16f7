"""Replays and races over the wire: one debit, one payout, consistent answers."""

from __future__ import annotations

import asyncio

from .conftest import GameServer, Player


async def test_a_bet_ref_replayed_across_connections_debits_once(game_server: GameServer) -> None:
    alice, session = await game_server.register("alice")
    second = await game_server.connect()
    await second.send(type="resume", token=session["token"])
    await second.next("session")
    await alice.next("betting")
    for i in range(100):
        player = alice if i % 2 else second
        await player.send(type="bet", amount=700, auto_cashout=None, ref="same")
    answers = [await alice.next("bet_accepted", ref="same") for _ in range(50)]
    assert {(a["round_id"], a["balance"]) for a in answers} == {
        (answers[0]["round_id"], 100_000 - 700)
    }
    assert game_server.app.runner.game.balance_of(session["user"]["id"]) == 100_000 - 700
    for player in (alice, second):
        await player.close()


async def test_fifty_concurrent_cashouts_pay_once(game_server: GameServer) -> None:
    alice, session = await game_server.register("alice")
    others: list[Player] = []
    for _ in range(4):
        other = await game_server.connect()
        await other.send(type="resume", token=session["token"])
        await other.next("session")
        others.append(other)
    connections = [alice, *others]
    betting = await alice.next("betting")
    await alice.send(type="bet", amount=1000, ref="b")
    await alice.next("bet_accepted", ref="b")
    await alice.next("running", round_id=betting["round_id"])
    await asyncio.gather(
        *(c.send(type="cashout", ref=f"c{i}") for i in range(10) for c in connections)
    )
    # Every connection of the user sees every answer; take alice's 50.
    answers = [await alice.next("cashed_out", round_id=betting["round_id"]) for _ in range(50)]
    assert len({(a["multiplier"], a["payout"], a["balance"]) for a in answers}) == 1
    payout = answers[0]["payout"]
    assert answers[0]["balance"] == 100_000 - 1000 + payout
    assert game_server.app.runner.game.balance_of(session["user"]["id"]) == 99_000 + payout
    for player in connections:
        await player.close()
