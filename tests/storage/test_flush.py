from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pillarpayout_ws.engine.records import BetCancelled, CashedOut, RoundCrashed
from pillarpayout_ws.exceptions import DatabaseUnavailable, StorageError
from pillarpayout_ws.storage import Storage, open_storage
from pillarpayout_ws.storage.audit import audit
from pillarpayout_ws.storage.flush import Flusher, flush_rounds, recover

from .helpers import make_chain, make_users, round_records


async def balances_in_db(storage: Storage, user_ids: list[int]) -> dict[int, int]:
    rows = await storage.db.fetch(
        "SELECT id, balance FROM users WHERE id = ANY($1::bigint[])", user_ids
    )
    return {r["id"]: r["balance"] for r in rows}


@pytest.mark.external
async def test_recovery_flushes_a_crashed_round_as_it_is(storage: Storage) -> None:
    users = await make_users(storage, 2)
    chain = await make_chain(storage)
    balances = {u.id: u.balance for u in users}
    a, b = (u.id for u in users)
    await storage.live.commit(round_records(1, chain, balances, {a: 500, b: 700}, {a: 300}, 420))
    report = await recover(storage.live, storage.db)
    assert (report.crashed, report.voided, report.skipped) == (1, 0, 0)
    assert await balances_in_db(storage, [a, b]) == balances == {a: 100_000 + 1000, b: 99_300}
    rows = await storage.db.fetch("SELECT status, crash_point_x100 FROM rounds WHERE id = 1")
    assert (rows[0]["status"], rows[0]["crash_point_x100"]) == ("crashed", 420)
    assert await storage.live.pending_round_ids() == []
    assert (await audit(storage.db, storage.live)).clean


@pytest.mark.external
async def test_recovery_voids_an_uncrashed_round(storage: Storage) -> None:
    users = await make_users(storage, 3)
    chain = await make_chain(storage)
    ids = [u.id for u in users]
    balances = {u.id: u.balance for u in users}
    # Player 0 cashed out (acknowledged) before the server died; 1 and 2 did not.
    await storage.live.commit(
        round_records(
            5, chain, balances, {ids[0]: 1000, ids[1]: 2000, ids[2]: 3000}, {ids[0]: 180}, None
        )
    )
    report = await recover(storage.live, storage.db)
    assert (report.crashed, report.voided) == (0, 1)
    assert await balances_in_db(storage, ids) == {
        ids[0]: 100_000 - 1000 + 1800,  # cashout honoured
        ids[1]: 100_000,  # refunded
        ids[2]: 100_000,
    }
    statuses = await storage.db.fetch("SELECT user_id, status FROM bets ORDER BY user_id")
    assert [r["status"] for r in statuses] == ["cashed_out", "refunded", "refunded"]
    assert (await audit(storage.db, storage.live)).clean
    # Twice changes nothing.
    before = await balances_in_db(storage, ids)
    again = await recover(storage.live, storage.db)
    assert (again.crashed, again.voided, again.skipped) == (0, 0, 0)
    assert await balances_in_db(storage, ids) == before


async def test_recovery_of_a_round_with_both_slots_open_pays_one_refunds_the_other(
    storage: Storage,
) -> None:
    """The server died mid-round while a user held two bets: the one whose
    cash-out was acknowledged is paid, the one still riding is refunded."""
    (user,) = await make_users(storage, 1)
    chain = await make_chain(storage)
    balances = {user.id: user.balance}
    records = round_records(6, chain, balances, {user.id: 1000}, {}, None, slots=(0, 1))
    balance = balances[user.id] + 1500
    records.append(CashedOut(6, user.id, 150, 1500, balance, "manual", 1))
    await storage.live.commit(records)
    report = await recover(storage.live, storage.db)
    assert (report.crashed, report.voided) == (0, 1)
    assert await balances_in_db(storage, [user.id]) == {user.id: 100_000 - 1000 + 1500}
    rows = await storage.db.fetch(
        "SELECT slot, status, winnings FROM bets WHERE round_id = 6 ORDER BY slot"
    )
    assert [tuple(r) for r in rows] == [(0, "refunded", 0), (1, "cashed_out", 1500)]
    keys = await storage.db.fetch(
        "SELECT idem_key, slot FROM ledger WHERE round_id = 6 ORDER BY id"
    )
    assert [tuple(k) for k in keys] == [
        (f"bet:6:{user.id}", 0),
        (f"refund:6:{user.id}", 0),
        (f"bet:6:{user.id}:1", 1),
        (f"payout:6:{user.id}:1", 1),
    ]
    assert (await audit(storage.db, storage.live)).clean


async def test_a_cancel_acked_before_a_kill_is_refunded_by_recovery_once(
    storage: Storage,
) -> None:
    """The server died after a cancel was acknowledged (its record is in Redis)
    and before the round was flushed: whether the round had crashed or not,
    recovery refunds the cancelled bet, once, and the audit adds up."""
    users = await make_users(storage, 2)
    chain = await make_chain(storage)
    a, b = (u.id for u in users)
    balances = {a: 100_000, b: 100_000}
    # Round 20 crashed after a's cancel; round 21 was still betting when it died.
    crashed = round_records(20, chain, balances, {a: 1000, b: 2000}, {}, None)
    balances[a] += 1000
    crashed += [BetCancelled(20, a, 0, 1000, balances[a]), RoundCrashed(20, 300, 1000)]
    betting = round_records(21, chain, balances, {a: 500, b: 700}, {}, None)
    balances[a] += 500
    betting.append(BetCancelled(21, a, 0, 500, balances[a]))
    await storage.live.commit([*crashed, *betting])
    report = await recover(storage.live, storage.db)
    assert (report.crashed, report.voided) == (1, 1)
    # a: both bets cancelled, nothing lost; b: lost round 20's, refunded round 21's.
    assert await balances_in_db(storage, [a, b]) == {a: 100_000, b: 98_000}
    rows = await storage.db.fetch(
        "SELECT round_id, status FROM bets WHERE user_id = $1 ORDER BY round_id", a
    )
    assert [tuple(r) for r in rows] == [(20, "refunded"), (21, "refunded")]
    refunds = await storage.db.fetch(
        "SELECT idem_key FROM ledger WHERE user_id = $1 AND kind = 'refund' ORDER BY id", a
    )
    assert [r["idem_key"] for r in refunds] == [f"refund:20:{a}", f"refund:21:{a}"]
    assert (await audit(storage.db, storage.live)).clean
    again = await recover(storage.live, storage.db)
    assert (again.crashed, again.voided) == (0, 0)
    assert await balances_in_db(storage, [a, b]) == {a: 100_000, b: 98_000}


@pytest.mark.external
async def test_recovery_after_commit_but_before_redis_cleanup(storage: Storage) -> None:
    """The process died between PostgreSQL's commit and deleting the Redis keys."""
    users = await make_users(storage, 1)
    chain = await make_chain(storage)
    uid = users[0].id
    balances = {uid: users[0].balance}
    await storage.live.commit(round_records(2, chain, balances, {uid: 100}, {}, 150))
    records = await storage.live.round_records([2])
    from pillarpayout_ws.storage.settle import settle_round

    await storage.db.flush([settle_round(records[2])])  # committed, Redis untouched
    report = await recover(storage.live, storage.db)
    assert (report.crashed, report.skipped) == (0, 1)
    assert await balances_in_db(storage, [uid]) == {uid: 99_900}
    assert await storage.live.pending_round_ids() == []


@pytest.mark.external
async def test_flusher_batches_completed_rounds(storage: Storage) -> None:
    users = await make_users(storage, 4)
    chain = await make_chain(storage)
    balances = {u.id: u.balance for u in users}
    flusher = Flusher(storage.live, storage.db, batch_rounds=5, interval_s=3600)
    task = asyncio.create_task(flusher.run())
    try:
        for rid in range(1, 6):
            bets = {u.id: 100 * rid for u in users}
            await storage.live.commit(
                round_records(rid, chain, balances, bets, {users[0].id: 140}, 150)
            )
            flusher.round_completed(rid)
        # The fifth round fills the batch and wakes the loop (the interval is an hour).
        async with asyncio.timeout(10):
            await flusher.wait_until(lambda: flusher.rounds_flushed == 5)
    finally:
        task.cancel()
    assert await balances_in_db(storage, list(balances)) == balances
    assert (await audit(storage.db, storage.live)).clean


async def test_postgres_down_during_a_flush_then_catch_up(tmp_path: Path) -> None:
    storage = await open_storage(data_dir=tmp_path / "data")
    try:
        assert storage.embedded is not None
        users = await make_users(storage, 2)
        chain = await make_chain(storage)
        balances = {u.id: u.balance for u in users}
        flusher = Flusher(
            storage.live, storage.db, batch_rounds=100, interval_s=0.05, max_backoff_s=0.2
        )
        await asyncio.to_thread(storage.embedded.stop_postgres)
        for rid in (1, 2, 3):
            await storage.live.commit(
                round_records(rid, chain, balances, {u.id: 100 for u in users}, {}, 130)
            )
            flusher.round_completed(rid)
        with pytest.raises(DatabaseUnavailable):
            await flusher.flush_now()
        task = asyncio.create_task(flusher.run())
        try:
            async with asyncio.timeout(10):
                await flusher.wait_until(lambda: not flusher.healthy)
            # Nothing dropped: the rounds wait in Redis and in the queue.
            assert flusher.backlog == 3
            assert await storage.live.pending_round_ids() == [1, 2, 3]
            await asyncio.to_thread(storage.embedded.start)
            async with asyncio.timeout(30):
                await flusher.wait_until(lambda: flusher.healthy and flusher.backlog == 0)
        finally:
            task.cancel()
        assert await balances_in_db(storage, list(balances)) == balances
        assert await storage.live.pending_round_ids() == []
        assert (await audit(storage.db, storage.live)).clean
    finally:
        await storage.close()


@pytest.mark.external
async def test_flush_rounds_reads_grants_too(storage: Storage) -> None:
    from pillarpayout_ws.engine.records import Granted

    (user,) = await make_users(storage, 1, balance=0)
    await storage.live.commit([Granted(user.id, 777, "grant:x", 777)])
    result = await flush_rounds(storage.live, storage.db, [])
    assert result.ledger_rows == 1
    assert await balances_in_db(storage, [user.id]) == {user.id: 777}
    assert await storage.live.pending_grants() == []


@pytest.mark.external
async def test_bet_refs_survive_the_flush_with_their_first_answer(storage: Storage) -> None:
    from pillarpayout_ws.storage.postgres import BetRefRow

    a, b = (u.id for u in await make_users(storage, 2))
    chain = await make_chain(storage)
    balances = {a: 100_000, b: 100_000}
    # round_records gives every bet the ref "ref-{round}"; round 4 is void.
    await storage.live.commit(round_records(3, chain, balances, {a: 500}, {a: 200}, 300))
    await storage.live.commit(round_records(4, chain, balances, {a: 250, b: 100}, {}, None))
    await flush_rounds(storage.live, storage.db, [3, 4])
    assert await storage.db.bet_refs(3) == [
        BetRefRow(a, "ref-3", 3, 500, None, 99_500, 0),
        BetRefRow(a, "ref-4", 4, 250, None, 100_500 - 250, 0),
        BetRefRow(b, "ref-4", 4, 100, None, 99_900, 0),
    ]
    assert [r.round_id for r in await storage.db.bet_refs(4)] == [4, 4]


@pytest.mark.external
async def test_a_refused_round_is_held_and_the_others_still_flush(storage: Storage) -> None:
    users = await make_users(storage, 2)
    chain = await make_chain(storage)
    balances = {u.id: u.balance for u in users}
    flusher = Flusher(storage.live, storage.db, batch_rounds=3, interval_s=3600)
    task = asyncio.create_task(flusher.run())
    try:
        # Round 2 is a bet of a user PostgreSQL has not got: bets.user_id's key
        # refuses it, and with it the whole batch.
        await storage.live.commit(round_records(1, chain, balances, {users[0].id: 100}, {}, 150))
        await storage.live.commit(round_records(2, chain, {-1: 1000}, {-1: 100}, {}, 150))
        await storage.live.commit(round_records(3, chain, balances, {users[1].id: 100}, {}, 150))
        for rid in (1, 2, 3):
            flusher.round_completed(rid)
        async with asyncio.timeout(10):
            await flusher.wait_until(lambda: flusher.backlog == 0)
        assert list(flusher.held) == [2] and "bets_user_id_fkey" in flusher.held[2]
        assert not flusher.healthy
        assert await storage.live.pending_round_ids() == [2]
        # Later rounds are not held up by it.
        for rid in (4, 5, 6):
            await storage.live.commit(
                round_records(rid, chain, balances, {users[0].id: 10}, {}, 150)
            )
            flusher.round_completed(rid)
        async with asyncio.timeout(10):
            await flusher.wait_until(lambda: flusher.rounds_flushed == 5)
        assert not flusher.healthy and list(flusher.held) == [2]
    finally:
        task.cancel()
    rounds = await storage.db.fetch("SELECT id FROM rounds ORDER BY id")
    assert [r["id"] for r in rounds] == [1, 3, 4, 5, 6]
    assert await balances_in_db(storage, list(balances)) == balances
    assert await storage.live.pending_round_ids() == [2]


@pytest.mark.external
async def test_recovery_flushes_the_others_then_refuses_to_start(storage: Storage) -> None:
    (user,) = await make_users(storage, 1)
    chain = await make_chain(storage)
    balances = {user.id: user.balance}
    await storage.live.commit(round_records(1, chain, balances, {user.id: 100}, {}, 150))
    await storage.live.commit(round_records(2, chain, {-1: 1000}, {-1: 100}, {}, 150))
    await storage.live.commit(round_records(3, chain, balances, {user.id: 100}, {}, None))
    with pytest.raises(StorageError, match=r"round\(s\) 2 cannot be flushed .* other 2 were"):
        await recover(storage.live, storage.db)
    rounds = await storage.db.fetch("SELECT id, status FROM rounds ORDER BY id")
    assert [tuple(r) for r in rounds] == [(1, "crashed"), (3, "void")]
    assert await storage.live.pending_round_ids() == [2]
    # Round 1 lost its bet; void round 3 refunded its own.
    assert await balances_in_db(storage, [user.id]) == {user.id: user.balance - 100}


async def test_two_flushes_at_once_flush_each_round_once(storage: Storage) -> None:
    """The flusher's loop and another caller (a test, a stop) at the same moment:
    the second waits for the first, then finds nothing left (before, both took
    the same rounds and the second failed on a queue the first had emptied)."""
    users = await make_users(storage, 2)
    chain = await make_chain(storage)
    balances = {u.id: u.balance for u in users}
    await storage.live.commit(round_records(1, chain, balances, {users[0].id: 100}, {}, 150))
    flusher = Flusher(storage.live, storage.db, interval_s=3600)
    flusher.round_completed(1)
    first, second = await asyncio.gather(flusher.flush_now(), flusher.flush_now())
    assert first is not None and first.rounds_written == 1 and second is None
    assert flusher.rounds_flushed == 1 and flusher.backlog == 0
