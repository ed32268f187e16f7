"""Issue 7, item 5: 50 concurrent cashouts of one bet over 5 connections pay once.

"Consistent" (protocol.md, ``cashout``): every cashout frame gets exactly one
``cashed_out`` carrying its own ``ref``, all with the same round, multiplier,
payout, balance and reason, and every connection of the user receives every
one of them. Money moves once: one payout in the ledger after the flush.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from .conftest import Player, RigFactory, chain_where

# Also run against Debian's PostgreSQL and Redis (python -m tests.external, in make test).
pytestmark = pytest.mark.external

CONNECTIONS = 5
PER_CONNECTION = 10
STAKE = 1000


async def test_fifty_cashouts_over_five_connections_pay_once(make_rig: RigFactory) -> None:
    # Every early round crashes between 3x and 6x: far from the first cashouts
    # (a second of real time), and soon enough to wait for.
    top, _ = chain_where(lambda points: all(300 <= p <= 600 for p in points), rounds=4)
    rig = await make_rig(top, speed=20, betting_ms=6000, cooldown_ms=500)
    alice, session = await rig.register("alice")
    user_id, token = session["user"]["id"], session["token"]
    # Three more sockets on the same session, one on a session of its own.
    connections = [alice, *[await rig.login(token) for _ in range(3)]]
    fifth = await rig.connect()
    await fifth.send(type="login", username="alice", password="correct horse battery")
    await fifth.next("session")
    connections.append(fifth)

    await alice.next("betting")
    round_id = (await alice.bet(STAKE, "bet"))["round_id"]
    await alice.next("running", round_id=round_id)

    refs = [f"c{c}-{i}" for c in range(CONNECTIONS) for i in range(PER_CONNECTION)]
    await asyncio.gather(
        *(
            connections[c].send(type="cashout", ref=f"c{c}-{i}")
            for i in range(PER_CONNECTION)
            for c in range(CONNECTIONS)
        )
    )

    def answers(player: Player) -> list[dict[str, Any]]:
        return [f for f in player.frames if f["type"] in ("cashed_out", "error")]

    for player in connections:
        for _ in refs:
            await player.next("cashed_out", round_id=round_id)
    crashed = await alice.next("crashed", round_id=round_id, within=30)
    await rig.flushed()

    first = answers(alice)[0]
    assert first["type"] == "cashed_out"
    assert first["reason"] == "manual"
    assert 100 <= first["multiplier"] * 100 < crashed["crash_point"] * 100
    payout = first["payout"]
    assert payout == STAKE * round(first["multiplier"] * 100) // 100
    assert first["balance"] == 100_000 - STAKE + payout
    for player in connections:
        got = answers(player)
        # Exactly one answer per cashout frame, on every connection, all the same.
        assert sorted(a["ref"] for a in got) == sorted(refs)
        for answer in got:
            assert {**answer, "ref": None} == {**first, "ref": None}

    # One payout in PostgreSQL, and the balance is the ledger's sum.
    ledger = await rig.ledger(user_id)
    assert ledger == [
        ("grant", 100_000, None),
        ("bet", -STAKE, round_id),
        ("payout", payout, round_id),
    ]
    assert await rig.balance(user_id) == 100_000 - STAKE + payout
    bets = await rig.fetch(
        "SELECT status, winnings, cash_out_multiplier_x100 FROM bets WHERE user_id = $1", user_id
    )
    assert [tuple(b) for b in bets] == [
        ("cashed_out", payout, round(first["multiplier"] * 100)),
    ]
    assert rig.app.runner.game.balance_of(user_id) == 100_000 - STAKE + payout
    await rig.assert_audit_clean()
