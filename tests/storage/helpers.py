"""Building write-ahead records for storage tests, as the engine would emit them."""

from __future__ import annotations

from pillarpayout_ws.engine.records import (
    BetPlaced,
    CashedOut,
    GoalAdvanced,
    RoundCrashed,
    RoundOpened,
    RoundRecord,
)
from pillarpayout_ws.storage import Storage
from pillarpayout_ws.storage.postgres import UserRow

SEED = "ab" * 32


async def make_users(storage: Storage, count: int, balance: int = 100_000) -> list[UserRow]:
    users = []
    for i in range(count):
        user = await storage.db.create_user(f"player{i}", f"p{i}@example.com", "x", balance)
        assert user is not None
        users.append(user)
    return users


async def make_chain(storage: Storage) -> int:
    return await storage.db.create_seed_chain("cd" * 32, 1000, "ef" * 32, "salt")


def round_records(
    round_id: int,
    chain_id: int,
    balances: dict[int, int],
    bets: dict[int, int],
    cashouts: dict[int, int],
    crash_point: int | None,
    goal_id: int | None = None,
    slots: tuple[int, ...] = (0,),
) -> list[RoundRecord]:
    """One round: ``bets`` user -> amount, ``cashouts`` user -> multiplier, crashed or not.

    Each user bets the amount (and cashes out) in each of ``slots``; a bet's
    ref is ``ref-{round}`` in slot 0, ``ref-{round}-{slot}`` in the others.
    ``balances`` (user -> balance) is updated as the engine would.
    """
    records: list[RoundRecord] = [RoundOpened(round_id, chain_id, round_id, "00" * 32, "salt", 1.0)]
    for user_id, amount in bets.items():
        for slot in slots:
            balances[user_id] -= amount
            ref = f"ref-{round_id}" if slot == 0 else f"ref-{round_id}-{slot}"
            records.append(
                BetPlaced(round_id, user_id, ref, amount, None, balances[user_id], None, slot)
            )
    for user_id, multiplier in cashouts.items():
        payout = bets[user_id] * multiplier // 100
        for slot in slots:
            balances[user_id] += payout
            records.append(
                CashedOut(round_id, user_id, multiplier, payout, balances[user_id], "manual", slot)
            )
    if crash_point is not None:
        records.append(RoundCrashed(round_id, crash_point, 1000, SEED))
        if goal_id is not None:
            records.append(GoalAdvanced(round_id, goal_id, len(bets), False))
    return records
