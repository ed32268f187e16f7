from __future__ import annotations

import pytest

from pillarpayout_ws.engine.records import Granted
from pillarpayout_ws.exceptions import StorageError
from pillarpayout_ws.storage import Storage
from pillarpayout_ws.storage.audit import audit
from pillarpayout_ws.storage.settle import settle_round

from .helpers import make_chain, make_users, round_records

# Also run against Debian's PostgreSQL and Redis (python -m tests.external, in make test).
pytestmark = pytest.mark.external


async def test_schema_applies_twice(storage: Storage) -> None:
    await storage.db.apply_schema()
    await storage.db.apply_schema()
    rows = await storage.db.fetch("SELECT version FROM schema_version")
    assert [r["version"] for r in rows] == [1, 2, 3, 4, 5, 6, 7, 8]
    goals = await storage.db.fetch("SELECT name FROM community_goals")
    assert len(goals) == 3


async def test_schema_adds_balance_after_to_an_older_database(storage: Storage) -> None:
    users = await make_users(storage, 1)
    chain = await make_chain(storage)
    balances = {users[0].id: users[0].balance}
    # A database from before bets.balance_after, with a bet flushed then.
    await storage.db.execute("ALTER TABLE bets DROP COLUMN balance_after")
    await storage.db.execute(
        "INSERT INTO rounds (id, chain_id, nonce, seed_hash, server_seed, client_seed, "
        "house_edge, crash_point_x100, status) VALUES (1, $1, 1, $2, $2, 's', 1, 150, 'crashed')",
        chain,
        "00" * 32,
    )
    await storage.db.execute(
        "INSERT INTO bets (round_id, user_id, ref, bet_amount, status) "
        "VALUES (1, $1, 'old', 100, 'lost')",
        users[0].id,
    )
    await storage.db.apply_schema()
    # The old bet has no known first answer; new bets store theirs.
    await storage.db.flush(
        [settle_round(round_records(2, chain, balances, {users[0].id: 100}, {}, 150))]
    )
    rows = await storage.db.fetch("SELECT ref, balance_after FROM bets ORDER BY round_id")
    assert [tuple(r) for r in rows] == [("old", None), ("ref-2", 99_900)]
    assert [r.ref for r in await storage.db.bet_refs(1)] == ["ref-2"]


async def test_schema_version_4_salts_the_older_chains_where_they_were_made(
    storage: Storage,
) -> None:
    # A version 3 database: a chain salted when made, no seeding-event columns.
    await storage.db.execute(
        "ALTER TABLE seed_chains DROP CONSTRAINT seed_chains_salted, "
        "DROP COLUMN client_seed_source, DROP COLUMN salted_at"
    )
    await storage.db.execute("DELETE FROM schema_version WHERE version = 4")
    await storage.db.execute(
        "INSERT INTO seed_chains (top_seed, length, commitment, client_seed) "
        "VALUES ($1, 10, $2, 'old-salt')",
        "cd" * 32,
        "ef" * 32,
    )
    await storage.db.apply_schema()
    chain = 1
    (row,) = await storage.db.seed_chains()
    assert (row.id, row.client_seed) == (chain, "old-salt")
    assert row.client_seed_source == "chosen with the chain (before seeding events)"
    assert row.salted_at == row.created_at
    # A void round keeps no seed; the chain without a salt is allowed now.
    await storage.db.create_seed_chain("ab" * 32, 10, "12" * 32)
    void = settle_round(round_records(1, chain, {}, {}, {}, None))
    await storage.db.flush([void])
    rows = await storage.db.fetch("SELECT server_seed, status FROM rounds")
    assert [tuple(r) for r in rows] == [(None, "void")]


# What each older version had in place of ledger_bet_fkey on (round_id, user_id).
_OLDER_LEDGER_KEYS = {
    1: (
        "ALTER TABLE ledger ADD FOREIGN KEY (user_id) REFERENCES users (id)",
        "ALTER TABLE ledger ADD FOREIGN KEY (bet_id) REFERENCES bets (id)",
    ),
    2: (
        "ALTER TABLE bets ADD CONSTRAINT bets_id_user_id_key UNIQUE (id, user_id)",
        "ALTER TABLE ledger ADD COLUMN grant_user_id BIGINT GENERATED ALWAYS AS "
        "(CASE WHEN bet_id IS NULL THEN user_id END) STORED "
        "CONSTRAINT ledger_grant_user_fkey REFERENCES users (id)",
        "ALTER TABLE ledger ADD CONSTRAINT ledger_bet_fkey "
        "FOREIGN KEY (bet_id, user_id) REFERENCES bets (id, user_id)",
    ),
}


@pytest.mark.parametrize("version", sorted(_OLDER_LEDGER_KEYS))
async def test_schema_moves_an_older_ledger_to_rows_naming_their_bet(
    storage: Storage, version: int
) -> None:
    users = await make_users(storage, 2)
    chain = await make_chain(storage)
    balances = {u.id: u.balance for u in users}
    await storage.db.flush(
        [settle_round(round_records(1, chain, balances, {users[0].id: 100}, {}, 150))]
    )
    # Back to the older version: the ledger names a bet by bet_id.
    await back_to_version_5(storage)
    for statement in (
        "ALTER TABLE ledger DROP CONSTRAINT ledger_bet_fkey",
        "ALTER TABLE ledger DROP COLUMN grant_user_id",
        "DROP INDEX ledger_round_user_kind",
        "DROP INDEX ledger_grant_user",
        "ALTER TABLE ledger ADD COLUMN bet_id BIGINT",
        "UPDATE ledger l SET bet_id = b.id FROM bets b "
        "WHERE b.round_id = l.round_id AND b.user_id = l.user_id",
        "ALTER TABLE ledger ADD CHECK ((kind = 'grant') = (bet_id IS NULL))",
        "CREATE INDEX ledger_user ON ledger (user_id, id DESC)",
        "CREATE UNIQUE INDEX ledger_bet_kind ON ledger (bet_id, kind) WHERE bet_id IS NOT NULL",
        "CREATE INDEX bets_user_ref ON bets (user_id, ref) WHERE ref IS NOT NULL",
        *_OLDER_LEDGER_KEYS[version],
    ):
        await storage.db.execute(statement)
    await storage.db.apply_schema()
    keys = await storage.db.fetch(
        "SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint "
        "WHERE conrelid = 'ledger'::regclass AND contype = 'f' ORDER BY conname"
    )
    assert [(k["conname"], k["def"]) for k in keys] == [
        (
            "ledger_bet_fkey",
            "FOREIGN KEY (round_id, user_id, slot) REFERENCES bets(round_id, user_id, slot)",
        ),
        ("ledger_grant_user_fkey", "FOREIGN KEY (grant_user_id) REFERENCES users(id)"),
    ]
    indexes = await storage.db.fetch(
        "SELECT indexname FROM pg_indexes WHERE tablename IN ('bets', 'ledger') ORDER BY 1"
    )
    assert [i["indexname"] for i in indexes] == [
        "bets_pkey",
        "bets_round_id_user_id_slot_key",
        "bets_user_id",
        "ledger_grant_key",
        "ledger_grant_user",
        "ledger_pkey",
        "ledger_round_user_kind",
    ]
    await storage.db.flush(
        [settle_round(round_records(2, chain, balances, {users[1].id: 100}, {}, 150))]
    )
    assert (await audit(storage.db, storage.live)).clean


async def back_to_version_5(storage: Storage) -> None:
    """The database as schema version 5 had it: one bet per user per round, no slot."""
    for statement in (
        "ALTER TABLE ledger DROP CONSTRAINT ledger_bet_fkey",
        "DROP INDEX ledger_round_user_kind",
        "ALTER TABLE ledger DROP COLUMN slot",
        "ALTER TABLE bets DROP COLUMN slot",
        "ALTER TABLE bets ADD CONSTRAINT bets_round_id_user_id_key UNIQUE (round_id, user_id)",
        "ALTER TABLE ledger ADD CONSTRAINT ledger_bet_fkey "
        "FOREIGN KEY (round_id, user_id) REFERENCES bets (round_id, user_id)",
        "CREATE UNIQUE INDEX ledger_round_user_kind ON ledger (round_id, user_id, kind) "
        "WHERE round_id IS NOT NULL",
        "DELETE FROM schema_version WHERE version = 6",
    ):
        await storage.db.execute(statement)


async def test_schema_version_6_makes_the_bets_of_an_older_database_slot_0(
    storage: Storage,
) -> None:
    users = await make_users(storage, 2)
    chain = await make_chain(storage)
    balances = {u.id: u.balance for u in users}
    a, b = users[0].id, users[1].id
    await back_to_version_5(storage)
    # A version 5 flush: one bet each, a's cashed out (the ledger has no slot).
    for statement, args in (
        (
            "INSERT INTO rounds (id, chain_id, nonce, seed_hash, server_seed, client_seed, "
            "house_edge, crash_point_x100, status) VALUES (1, $1, 1, $2, $2, 's', 1, 150, "
            "'crashed')",
            (chain, "00" * 32),
        ),
        (
            "INSERT INTO bets (round_id, user_id, ref, bet_amount, cash_out_multiplier_x100, "
            "winnings, status, balance_after) VALUES (1, $1, 'old', 100, 120, 120, "
            "'cashed_out', 99900), (1, $2, NULL, 200, NULL, 0, 'lost', 99800)",
            (a, b),
        ),
        (
            "INSERT INTO ledger (user_id, kind, amount, round_id, idem_key) VALUES "
            "($1, 'bet', -100, 1, $3), ($1, 'payout', 120, 1, $4), ($2, 'bet', -200, 1, $5)",
            (a, b, f"bet:1:{a}", f"payout:1:{a}", f"bet:1:{b}"),
        ),
        ("UPDATE users SET balance = balance + 20 WHERE id = $1", (a,)),
        ("UPDATE users SET balance = balance - 200 WHERE id = $1", (b,)),
    ):
        await storage.db.execute(statement, *args)
    await storage.db.apply_schema()
    rows = await storage.db.fetch("SELECT user_id, slot FROM bets ORDER BY user_id")
    assert [tuple(r) for r in rows] == [(a, 0), (b, 0)]
    assert {r["slot"] for r in await storage.db.fetch("SELECT slot FROM ledger")} == {0}
    assert (await audit(storage.db, storage.live)).clean
    # The old bet's ref is still known, and a new round takes both slots of a user.
    assert [(r.ref, r.slot) for r in await storage.db.bet_refs(1)] == [("old", 0)]
    balances = {a: 100_020, b: 99_800}
    await storage.db.flush(
        [settle_round(round_records(2, chain, balances, {a: 100}, {a: 150}, 300, slots=(0, 1)))]
    )
    rows = await storage.db.fetch("SELECT slot, status FROM bets WHERE round_id = 2 ORDER BY slot")
    assert [tuple(r) for r in rows] == [(0, "cashed_out"), (1, "cashed_out")]
    assert (await audit(storage.db, storage.live)).clean


async def test_every_ledger_row_is_checked_against_its_user(storage: Storage) -> None:
    a, b = await make_users(storage, 2)
    chain = await make_chain(storage)
    balances = {a.id: a.balance, b.id: b.balance}
    await storage.db.flush([settle_round(round_records(1, chain, balances, {a.id: 100}, {}, 150))])
    # A grant to nobody, and a payout of a's bet to b: both refused.
    with pytest.raises(StorageError, match="ledger_grant_user_fkey"):
        await storage.db.execute(
            "INSERT INTO ledger (user_id, kind, amount, idem_key) VALUES (-1, 'grant', 1, 'g')"
        )
    with pytest.raises(StorageError, match="ledger_bet_fkey"):
        await storage.db.execute(
            "INSERT INTO ledger (user_id, kind, amount, round_id, idem_key) "
            "VALUES ($1, 'payout', 1, 1, 'p')",
            b.id,
        )


async def test_new_account_is_granted_through_the_ledger(storage: Storage) -> None:
    user = await storage.db.create_user("Alice", "a@example.com", "h", 100_000)
    assert user is not None and user.balance == 100_000
    assert await storage.db.create_user("alice", "b@example.com", "h", 1) is None  # same name
    rows = await storage.db.fetch("SELECT kind, amount FROM ledger WHERE user_id = $1", user.id)
    assert [(r["kind"], r["amount"]) for r in rows] == [("grant", 100_000)]
    assert (await audit(storage.db, storage.live)).clean


async def test_flush_is_idempotent_by_round(storage: Storage) -> None:
    users = await make_users(storage, 3)
    chain = await make_chain(storage)
    balances = {u.id: u.balance for u in users}
    bets = {users[0].id: 1000, users[1].id: 2000, users[2].id: 3000}
    settled = settle_round(
        round_records(1, chain, balances, bets, {users[0].id: 250}, 300, goal_id=1)
    )
    first = await storage.db.flush([settled])
    assert (first.rounds_written, first.rounds_skipped, first.ledger_rows) == (1, 0, 4)
    again = await storage.db.flush([settled])
    assert (again.rounds_written, again.rounds_skipped, again.ledger_rows) == (0, 1, 0)
    for user in users:
        row = await storage.db.user_by_id(user.id)
        assert row is not None and row.balance == balances[user.id]
    goal = await storage.db.fetch("SELECT current_height FROM community_goals WHERE id = 1")
    assert goal[0]["current_height"] == 3  # counted once
    assert (await audit(storage.db, storage.live)).clean


async def test_grants_in_a_flush_apply_once(storage: Storage) -> None:
    (user,) = await make_users(storage, 1, balance=0)
    grant = Granted(user.id, 2500, "grant:test:1", 2500)
    await storage.db.flush([], [grant])
    await storage.db.flush([], [grant])
    row = await storage.db.user_by_id(user.id)
    assert row is not None and row.balance == 2500


async def test_balances_move_by_deltas_not_absolute_values(storage: Storage) -> None:
    (user,) = await make_users(storage, 1, balance=1000)
    chain = await make_chain(storage)
    # The write-ahead says "balance after: 900"; an operator grant lands in PostgreSQL
    # meanwhile. A delta flush keeps both; an absolute write would lose the grant.
    records = round_records(1, chain, {user.id: 1000}, {user.id: 100}, {}, 150)
    await storage.db.grant(user.username, 5000, "grant:meanwhile")
    await storage.db.flush([settle_round(records)])
    row = await storage.db.user_by_id(user.id)
    assert row is not None and row.balance == 1000 - 100 + 5000
    assert (await audit(storage.db, storage.live)).clean
