"""Issue 7, item 7: one bet ``ref`` sent 100 times, across a reconnect and a restart, debits once.

A client that does not know whether its bet got through (its socket dropped,
the server restarted) sends it again with the same ``ref``. In the bet's
round every copy gets the first ``bet_accepted`` again, whichever connection
it reaches; once its round is over (here: voided by the restart), every copy
gets ``ref_reused`` naming that round, never an old ack taken for a new bet.
PostgreSQL ends up with one bet and one debit (refunded with the void).
"""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import Client, RigFactory, chain_where

# Also run against Debian's PostgreSQL and Redis (python -m tests.external, in make test).
pytestmark = pytest.mark.external

STAKE = 700
PER_CONNECTION = 25


async def replay(player: Client, ref: str, times: int) -> list[dict[str, Any]]:
    for _ in range(times):
        await player.send(type="bet", amount=STAKE, auto_cashout=None, ref=ref)
    return [await player.answer(ref) for _ in range(times)]


async def test_a_bet_ref_sent_100_times_across_a_reconnect_and_a_restart(
    make_rig: RigFactory,
) -> None:
    top, _ = chain_where(lambda points: all(150 <= p <= 400 for p in points), rounds=6)
    # A long betting window (10 s of real time, never waited for): the restart
    # lands in it, so the round of the bet never runs and the stop voids it.
    rig = await make_rig(top, betting_ms=100_000, cooldown_ms=500)
    first, session = await rig.register("alice")
    user_id, token = session["user"]["id"], session["token"]

    accepted = await first.bet(STAKE, "same")
    answers = [accepted, *await replay(first, "same", PER_CONNECTION - 1)]
    await first.close()  # the socket drops; the client reconnects and sends it again
    second = await rig.login(token)
    answers += await replay(second, "same", PER_CONNECTION)

    await rig.restart()  # the same storage, a new process as far as the game knows
    third = await rig.login(token)
    later = await replay(third, "same", PER_CONNECTION)
    await third.close()
    fourth = await rig.login(token)
    later += await replay(fourth, "same", PER_CONNECTION)

    assert len(answers) == len(later) == 50
    assert [answer for answer in answers if answer != accepted] == []
    assert accepted["balance"] == 100_000 - STAKE
    # The restart voided the bet's round: a copy now is tied to that round.
    assert {(a["type"], a["code"]) for a in later} == {("error", "ref_reused")}
    assert all(f"round {accepted['round_id']}" in a["message"] for a in later)

    # The restarted server still takes new bets (a new ref), in a new round.
    fresh = await fourth.bet(STAKE, "another")
    assert fresh["round_id"] > accepted["round_id"]

    await rig.stop()  # flushes everything, the open round as void
    bets = await rig.fetch(
        "SELECT round_id, ref, bet_amount, status FROM bets WHERE user_id = $1 ORDER BY id",
        user_id,
    )
    assert [tuple(b) for b in bets] == [
        (accepted["round_id"], "same", STAKE, "refunded"),
        (fresh["round_id"], "another", STAKE, "refunded"),
    ]
    assert await rig.ledger(user_id) == [
        ("grant", 100_000, None),
        ("bet", -STAKE, accepted["round_id"]),
        ("refund", STAKE, accepted["round_id"]),
        ("bet", -STAKE, fresh["round_id"]),
        ("refund", STAKE, fresh["round_id"]),
    ]
    assert await rig.balance(user_id) == 100_000
    await rig.assert_audit_clean()
