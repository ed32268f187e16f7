from __future__ import annotations

import pytest

from pillarpayout_ws.exceptions import StorageError
from pillarpayout_ws.storage import Storage
from pillarpayout_ws.storage.audit import audit
from pillarpayout_ws.storage.settle import settle_round

from .helpers import make_chain, make_users, round_records

# Also run against Debian's PostgreSQL and Redis (python -m tests.external, in make test).
pytestmark = pytest.mark.external


async def played(storage: Storage) -> tuple[int, int]:
    users = await make_users(storage, 2)
    chain = await make_chain(storage)
    balances = {u.id: u.balance for u in users}
    a, b = users[0].id, users[1].id
    await storage.db.flush(
        [settle_round(round_records(1, chain, balances, {a: 500, b: 500}, {a: 200}, 250))]
    )
    assert (await audit(storage.db, storage.live)).clean
    return a, b


async def test_audit_catches_a_tampered_balance(storage: Storage) -> None:
    a, _ = await played(storage)
    await storage.db.execute("UPDATE users SET balance = balance + 1 WHERE id = $1", a)
    report = await audit(storage.db, storage.live)
    assert not report.clean
    assert any(f"user {a}" in p and "ledger sums to" in p for p in report.problems)
    assert any("money not conserved" in p for p in report.problems)


async def test_audit_catches_a_double_settlement(storage: Storage) -> None:
    a, _ = await played(storage)
    bet = (await storage.db.fetch("SELECT id, bet_amount FROM bets WHERE user_id = $1", a))[0]
    # The bet was cashed out; a refund on top, with the balance moved to match so
    # that only the settlement is wrong.
    await storage.db.execute(
        "INSERT INTO ledger (user_id, kind, amount, round_id, idem_key) "
        "VALUES ($1, 'refund', $2, 1, 'refund:again')",
        a,
        bet["bet_amount"],
    )
    await storage.db.execute(
        "UPDATE users SET balance = balance + $2 WHERE id = $1", a, bet["bet_amount"]
    )
    report = await audit(storage.db, storage.live)
    assert any(f"bet {bet['id']}" in p and "exactly once" in p for p in report.problems)


async def test_the_schema_refuses_a_second_payout(storage: Storage) -> None:
    a, _ = await played(storage)
    bet = (await storage.db.fetch("SELECT winnings FROM bets WHERE user_id = $1", a))[0]
    with pytest.raises(StorageError, match="ledger_round_user_kind"):
        await storage.db.execute(
            "INSERT INTO ledger (user_id, kind, amount, round_id, idem_key) "
            "VALUES ($1, 'payout', $2, 1, 'payout:again')",
            a,
            bet["winnings"],
        )


async def test_audit_catches_a_payout_above_the_crash_point(storage: Storage) -> None:
    await played(storage)
    await storage.db.execute("UPDATE rounds SET crash_point_x100 = 150 WHERE id = 1")
    report = await audit(storage.db, storage.live)
    assert any("crash point 1.50x" in p for p in report.problems)


async def test_audit_checks_the_redis_write_ahead(storage: Storage) -> None:
    from pillarpayout_ws.engine.records import CashedOut

    await storage.live.commit(round_records(9, 1, {1: 100}, {1: 10}, {}, None))
    assert (await audit(storage.db, storage.live)).clean
    await storage.live.commit([CashedOut(9, 2, 150, 15, 15, "manual")])  # no such bet
    report = await audit(storage.db, storage.live)
    assert any("round 9" in p for p in report.problems)
