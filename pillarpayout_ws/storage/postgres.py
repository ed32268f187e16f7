"""PostgreSQL: accounts, seed chains, and the batched flush of completed rounds.

A flush writes a batch of settled rounds (and unflushed grants) in ONE
transaction, one statement per table (``unnest`` arrays, or a binary COPY):

1. round rows ``ON CONFLICT DO NOTHING``: a round already there is skipped
   whole, which makes the flush idempotent by round id;
2. the bets of the newly inserted rounds (COPY);
3. their ledger rows (COPY), which name their bet by (round_id, user_id, slot), and
   the grants
   ``ON CONFLICT (idem_key) WHERE kind = 'grant' DO NOTHING``;
4. ``users.balance += delta`` for exactly the ledger rows inserted in 3:
   balances only ever move by deltas, never by absolute values;
5. community-goal progress, once per (round, goal).
"""

from __future__ import annotations

import contextlib
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import asyncpg

from ..engine.fairness import SeedChain
from ..engine.limits import Limit, Limits
from ..engine.records import Granted
from ..exceptions import (
    ConfigError,
    DatabaseUnavailable,
    InsufficientBalance,
    StorageError,
    UnknownUser,
)
from .live import _mask
from .settle import SettledRound

log = logging.getLogger("pillarpayout.storage")

# Held by `serve` for its whole life: `grant` uses it to tell whether a server
# owns the balances (then the grant goes through that server) or not.
SERVER_LOCK_KEY = 7170421

# Chat ids (server/chat.py): the table's sequence is kept this far ahead of
# the ids the running server has handed out, so a restart after a crash
# never hands out an id a lost (never stored) line had.
CHAT_IDS_AHEAD = 100_000
_CHAT_SEQUENCE_AHEAD = (
    "SELECT setval(pg_get_serial_sequence('chat_messages', 'id'), "
    "GREATEST($1::bigint, (SELECT last_value FROM chat_messages_id_seq)))"
)

# The source of a salt set together with its chain.
CHOSEN_WITH_CHAIN = "chosen with the chain (no seeding event)"

_CONNECTION_ERRORS = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
)


@dataclass(frozen=True, slots=True)
class UserRow:
    id: int
    username: str
    email: str
    password_hash: str
    balance: int
    # Roles and moderation (server/moderation.py).
    role: str = "player"
    banned: bool = False
    muted_until: float | None = None  # Unix time; None: not muted


# A users row as UserRow takes it (aliased "u" where joined).
_USER_COLUMNS = (
    "u.id, u.username, u.email, u.password_hash, u.balance, u.role, "
    "u.banned_at IS NOT NULL AS banned, "
    "CASE WHEN u.muted_until > now() THEN extract(epoch FROM u.muted_until)::float8 END "
    "AS muted_until"
)


def _user(row: asyncpg.Record | None) -> UserRow | None:
    return UserRow(**dict(row)) if row is not None else None


@dataclass(frozen=True, slots=True)
class SeedChainRow:
    id: int
    top_seed: str
    length: int
    commitment: str
    client_seed: str | None  # None until its seeding event
    client_seed_source: str | None
    created_at: datetime  # when the commitment was published
    salted_at: datetime | None
    last_nonce: int  # the last nonce of it PostgreSQL has seen played (0: none)

    @property
    def rounds_left(self) -> int:
        return self.length - self.last_nonce


@dataclass(frozen=True, slots=True)
class BetRefRow:
    """A flushed bet placed with a ``ref``: enough to repeat its ``bet_accepted``."""

    user_id: int
    ref: str
    round_id: int
    amount: int
    auto_cashout: int | None
    balance_after: int
    slot: int


@dataclass(frozen=True, slots=True)
class FlushResult:
    rounds_written: int
    rounds_voided: int
    rounds_skipped: int
    ledger_rows: int


_BET_COLUMNS = (
    "round_id",
    "user_id",
    "ref",
    "bet_amount",
    "auto_cashout_x100",
    "cash_out_multiplier_x100",
    "winnings",
    "status",
    "cashout_reason",
    "balance_after",
    "placed_at",
    "slot",
)
_LEDGER_COLUMNS = ("user_id", "kind", "amount", "round_id", "idem_key", "slot")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _instant(ms: int | None) -> datetime | None:
    """Unix milliseconds as an exact ``datetime`` (no float on the way)."""
    return None if ms is None else _EPOCH + timedelta(milliseconds=ms)


def _ms(instant: datetime | None) -> int | None:
    return None if instant is None else (instant - _EPOCH) // timedelta(milliseconds=1)


_ROUND_FIELDS = (
    "id, chain_id, nonce, seed_hash, server_seed, client_seed, house_edge, crash_point_x100, "
    "status, bets_count, total_wagered, total_paid, started_at, ended_at"
)


# A bet on ``/api/me/bets``: selected under the names the JSON uses.
_MY_BET_FIELDS = (
    "id, round_id, bet_amount AS amount, auto_cashout_x100::float8 / 100 AS auto_cashout, "
    "cash_out_multiplier_x100::float8 / 100 AS cashout_multiplier, winnings AS payout, "
    "status, extract(epoch FROM placed_at)::float8 AS placed_at, slot"
)

# Bets summed in one transaction at most (a little more: whole rounds).
SUMMARY_CHUNK = 100_000

# ``player_stats.starts`` of the all-time rows.
ALL_TIME = date(1970, 1, 1)

# A leaderboard's value and which rows have one: profit and wagered count
# the players with a bet that was not refunded, multiplier those who cashed out.
LEADERBOARD_VALUES = {
    "profit": ("s.profit", "s.wagered > 0"),
    "wagered": ("s.wagered", "s.wagered > 0"),
    "multiplier": ("s.best_x100", "s.best_x100 IS NOT NULL"),
}

# Bets (last_bet_id, max id] into player_stats: each bet counts in its UTC
# day, its ISO week (from Monday, UTC) and all time. A refunded bet counts in
# rounds and bets, not in wagered, profit or the bests.
_SUMMARISE = """
INSERT INTO player_stats AS s (period, starts, user_id, rounds, bets, wagered, profit,
                               best_x100, biggest_win)
SELECT p.period, p.starts, b.user_id, count(DISTINCT b.round_id), count(*),
       COALESCE(sum(b.bet_amount) FILTER (WHERE b.status <> 'refunded'), 0),
       COALESCE(sum(b.winnings - b.bet_amount) FILTER (WHERE b.status <> 'refunded'), 0),
       max(b.cash_out_multiplier_x100),
       max(b.winnings - b.bet_amount) FILTER (WHERE b.status = 'cashed_out')
FROM bets b
CROSS JOIN LATERAL (VALUES
    ('day', (b.placed_at AT TIME ZONE 'UTC')::date),
    ('week', date_trunc('week', b.placed_at AT TIME ZONE 'UTC')::date),
    ('all', $3::date)) AS p (period, starts)
WHERE b.id > $1 AND b.id <= $2
GROUP BY p.period, p.starts, b.user_id
ON CONFLICT (period, starts, user_id) DO UPDATE SET
    rounds = s.rounds + excluded.rounds,
    bets = s.bets + excluded.bets,
    wagered = s.wagered + excluded.wagered,
    profit = s.profit + excluded.profit,
    best_x100 = GREATEST(s.best_x100, excluded.best_x100),
    biggest_win = GREATEST(s.biggest_win, excluded.biggest_win)
"""


async def _revealed_seeds(
    conn: asyncpg.Connection, rounds: Sequence[SettledRound]
) -> list[str | None]:
    """Each round's server seed: from its crash record, or (a crash record written
    before it carried the seed) from its chain; ``None`` for a void round."""
    missing = {r.opened.chain_id for r in rounds if not r.void and r.server_seed is None}
    chains: dict[int, SeedChain] = {}
    for row in (
        await conn.fetch(
            "SELECT id, top_seed, length FROM seed_chains WHERE id = ANY($1::bigint[])",
            list(missing),
        )
        if missing
        else []
    ):
        chains[row["id"]] = SeedChain.from_top(row["top_seed"], row["length"])
    return [
        r.server_seed
        if r.void or r.server_seed is not None
        else chains[r.opened.chain_id].seed_for(r.opened.nonce)
        for r in rounds
    ]


def schema_sql() -> str:
    # A symlink to the repo's schema.sql; a built wheel carries it as a file.
    return (Path(__file__).parent.parent / "schema.sql").read_text()


@contextlib.asynccontextmanager
async def _translated(what: str) -> AsyncIterator[None]:
    """Turn asyncpg's errors into the project's own at this boundary."""
    try:
        yield
    except _CONNECTION_ERRORS as exc:
        raise DatabaseUnavailable(f"PostgreSQL unavailable during {what}: {exc}") from None
    except asyncpg.PostgresError as exc:
        raise StorageError(f"PostgreSQL refused {what}: {exc}") from None


class Database:
    """A pool of connections to PostgreSQL. Raises ``DatabaseUnavailable``/``StorageError``."""

    def __init__(self, pool: asyncpg.Pool, url: str) -> None:
        self._pool = pool
        self.url = url
        self._lock_conn: asyncpg.Connection | None = None

    @classmethod
    async def connect(cls, url: str, *, max_size: int = 10, connect_s: float = 10.0) -> Database:
        try:
            pool = await asyncpg.create_pool(
                url, min_size=1, max_size=max_size, timeout=connect_s, command_timeout=60
            )
        except _CONNECTION_ERRORS as exc:
            raise DatabaseUnavailable(
                f"cannot connect to PostgreSQL at {_mask(url)}: {exc}"
            ) from None
        except (asyncpg.PostgresError, ValueError) as exc:
            raise DatabaseUnavailable(
                f"cannot connect to PostgreSQL at {_mask(url)}: {exc}"
            ) from None
        return cls(pool, url)

    async def close(self) -> None:
        if self._lock_conn is not None:
            with contextlib.suppress(Exception):
                await self._lock_conn.close()
            self._lock_conn = None
        await self._pool.close()

    async def apply_schema(self) -> None:
        sql = schema_sql()
        async with _translated("applying the schema"), self._pool.acquire() as conn:
            await conn.execute(sql)
            if await conn.fetchval(
                "SELECT NOT EXISTS (SELECT 1 FROM pg_indexes WHERE indexname = 'users_email_lower')"
            ):
                log.warning(
                    "two accounts have emails that differ only in case: merge or rename them "
                    "(SELECT lower(email) FROM users GROUP BY 1 HAVING count(*) > 1); until "
                    "then emails are unique only as written"
                )

    async def ping(self) -> None:
        async with _translated("a health check"):
            await self._pool.fetchval("SELECT 1", timeout=2)

    # -- the server lock ---------------------------------------------------

    async def try_server_lock(self) -> bool:
        """Take the session-level lock a running server holds. False: another holds it."""
        async with _translated("taking the server lock"):
            if self._lock_conn is not None and not self._lock_conn.is_closed():
                return True
            conn = await asyncpg.connect(self.url, timeout=10)
            if await conn.fetchval("SELECT pg_try_advisory_lock($1)", SERVER_LOCK_KEY):
                self._lock_conn = conn
                return True
            await conn.close()
            return False

    async def keep_server_lock(self) -> bool:
        """Whether this process still holds the server lock ``try_server_lock`` took,
        taking it again if its session ended (PostgreSQL restarted, a failover, an
        idle timeout): False when another process holds it now."""
        conn = self._lock_conn
        if conn is not None and not conn.is_closed():
            try:
                await conn.fetchval("SELECT 1", timeout=2)
                return True
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
                if not conn.is_closed():
                    # Slow or hung, not ended: its session, and the lock, may be
                    # fine; letting go of it here could hand the lock to another.
                    raise DatabaseUnavailable(f"the server lock's session: {exc}") from None
        self._lock_conn = None
        taken = await self.try_server_lock()
        if taken:
            log.warning("the server lock's PostgreSQL session had ended: the lock is taken again")
        return taken

    async def release_server_lock(self) -> None:
        if self._lock_conn is not None:
            with contextlib.suppress(Exception):
                await self._lock_conn.close()
            self._lock_conn = None

    # -- accounts ----------------------------------------------------------

    async def user_by_name(self, username: str) -> UserRow | None:
        if "\x00" in username:
            return None  # PostgreSQL text cannot hold U+0000, so no name has one
        async with _translated("reading a user"):
            row = await self._pool.fetchrow(
                f"SELECT {_USER_COLUMNS} FROM users u WHERE lower(username) = lower($1)",
                username,
            )
        return _user(row)

    async def user_by_id(self, user_id: int) -> UserRow | None:
        async with _translated("reading a user"):
            row = await self._pool.fetchrow(
                f"SELECT {_USER_COLUMNS} FROM users u WHERE id = $1",
                user_id,
            )
        return _user(row)

    async def create_user(
        self, username: str, email: str, password_hash: str, starting_balance: int
    ) -> UserRow | None:
        """Create an account and grant its starting balance; None if the name or email is taken."""
        async with _translated("creating a user"), self._pool.acquire() as conn, conn.transaction():
            user_id = await conn.fetchval(
                "INSERT INTO users (username, email, password_hash) VALUES ($1, $2, $3) "
                "ON CONFLICT DO NOTHING RETURNING id",
                username,
                email,
                password_hash,
            )
            if user_id is None:
                return None
            if starting_balance > 0:
                await self._credit(conn, user_id, starting_balance, f"grant:start:{user_id}")
        return UserRow(user_id, username, email, password_hash, starting_balance)

    async def grant(self, username: str, amount: int, key: str) -> tuple[int, int]:
        """Credit ``username`` directly in PostgreSQL (no server running); (user id, balance)."""
        async with _translated("a grant"), self._pool.acquire() as conn, conn.transaction():
            user_id = await conn.fetchval(
                "SELECT id FROM users WHERE lower(username) = lower($1) FOR UPDATE", username
            )
            if user_id is None:
                raise UnknownUser(f"no user named {username!r}")
            await self._credit(conn, user_id, amount, key)
            balance: int = await conn.fetchval("SELECT balance FROM users WHERE id = $1", user_id)
        return user_id, balance

    async def adjust(self, username: str, amount: int, key: str, reason: str) -> tuple[int, int]:
        """Adjust ``username``'s balance directly in PostgreSQL (no server running):
        a ledger row of kind ``adjust`` with ``reason`` and the balance delta, in
        one transaction; (user id, balance). ``InsufficientBalance`` for a debit
        below zero (nothing changes)."""
        async with _translated("an adjustment"), self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT id, balance FROM users WHERE lower(username) = lower($1) FOR UPDATE",
                username,
            )
            if row is None:
                raise UnknownUser(f"no user named {username!r}")
            user_id, balance = row["id"], row["balance"]
            if balance + amount < 0:
                raise InsufficientBalance(
                    f"the balance is {balance / 100:.2f}: a debit of {-amount / 100:.2f} "
                    "would take it below zero"
                )
            inserted = await conn.fetchval(
                "INSERT INTO ledger (user_id, kind, amount, idem_key, reason) "
                "VALUES ($1, 'adjust', $2, $3, $4) "
                "ON CONFLICT (idem_key) WHERE kind = 'adjust' DO NOTHING RETURNING id",
                user_id,
                amount,
                key,
                reason,
            )
            if inserted is not None:
                balance = await conn.fetchval(
                    "UPDATE users SET balance = balance + $2, updated_at = now() "
                    "WHERE id = $1 RETURNING balance",
                    user_id,
                    amount,
                )
        return user_id, balance

    @staticmethod
    async def _credit(conn: asyncpg.Connection, user_id: int, amount: int, key: str) -> None:
        inserted = await conn.fetchval(
            "INSERT INTO ledger (user_id, kind, amount, idem_key) VALUES ($1, 'grant', $2, $3) "
            "ON CONFLICT (idem_key) WHERE kind = 'grant' DO NOTHING RETURNING id",
            user_id,
            amount,
            key,
        )
        if inserted is not None:
            await conn.execute(
                "UPDATE users SET balance = balance + $2, updated_at = now() WHERE id = $1",
                user_id,
                amount,
            )

    async def set_password_hash(self, user_id: int, password_hash: str) -> None:
        async with _translated("updating a password hash"):
            await self._pool.execute(
                "UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1",
                user_id,
                password_hash,
            )

    # -- sessions (only the SHA-256 of a token is stored) -------------------

    async def create_session(self, token_sha256: str, user_id: int, ttl_s: int) -> None:
        async with _translated("creating a session"):
            await self._pool.execute(
                "INSERT INTO sessions (token_sha256, user_id, expires_at) "
                "VALUES ($1, $2, now() + make_interval(secs => $3))",
                token_sha256,
                user_id,
                ttl_s,
            )

    async def session_user(self, token_sha256: str) -> tuple[UserRow, float] | None:
        """The user of a live session (not revoked, not expired), and the seconds
        the session has left (PostgreSQL's clock both ways)."""
        async with _translated("reading a session"):
            row = await self._pool.fetchrow(
                f"SELECT {_USER_COLUMNS}, "
                "extract(epoch FROM s.expires_at - now())::float8 AS session_left_s "
                "FROM sessions s JOIN users u ON u.id = s.user_id "
                "WHERE s.token_sha256 = $1 AND s.revoked_at IS NULL AND s.expires_at > now()",
                token_sha256,
            )
        if row is None:
            return None
        fields = dict(row)
        left_s = float(fields.pop("session_left_s"))
        return UserRow(**fields), left_s

    async def revoke_session(self, token_sha256: str) -> None:
        async with _translated("revoking a session"):
            await self._pool.execute(
                "UPDATE sessions SET revoked_at = now() "
                "WHERE token_sha256 = $1 AND revoked_at IS NULL",
                token_sha256,
            )

    async def revoke_user_sessions(self, user_id: int) -> None:
        async with _translated("revoking sessions"):
            await self._pool.execute(
                "UPDATE sessions SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL",
                user_id,
            )

    # -- seed chains and round ids -----------------------------------------

    async def seed_chains(self) -> list[SeedChainRow]:
        """Every chain, oldest first, with the last nonce of it played."""
        async with _translated("reading the seed chains"):
            rows = await self._pool.fetch(
                """
                SELECT c.id, c.top_seed, c.length, c.commitment, c.client_seed,
                       c.client_seed_source, c.created_at, c.salted_at,
                       COALESCE((SELECT max(nonce) FROM rounds r WHERE r.chain_id = c.id), 0)
                           AS last_nonce
                FROM seed_chains c ORDER BY c.id
                """
            )
        return [SeedChainRow(**dict(row)) for row in rows]

    async def create_seed_chain(
        self,
        top_seed: str,
        length: int,
        commitment: str,
        client_seed: str | None = None,
        client_seed_source: str | None = None,
    ) -> int:
        """Store a new chain: unsalted (the usual way, see ``salt_seed_chain``), or
        salted at once when ``client_seed`` is given (no seeding event, and its
        source says so unless another is named)."""
        if client_seed is not None and client_seed_source is None:
            client_seed_source = CHOSEN_WITH_CHAIN
        async with _translated("creating a seed chain"):
            chain_id: int = await self._pool.fetchval(
                "INSERT INTO seed_chains (top_seed, length, commitment, client_seed, "
                "client_seed_source, salted_at) VALUES ($1, $2, $3, $4, $5, "
                "CASE WHEN $4::text IS NULL THEN NULL ELSE now() END) RETURNING id",
                top_seed,
                length,
                commitment,
                client_seed,
                client_seed_source,
            )
        return chain_id

    async def salt_seed_chain(self, chain_id: int, client_seed: str, source: str) -> None:
        """Set a chain's salt: once, and only before any round of it was played
        (a one-line ``ConfigError`` says why not)."""
        async with (
            _translated("salting a seed chain"),
            self._pool.acquire() as conn,
            conn.transaction(),
        ):
            row = await conn.fetchrow(
                "SELECT client_seed, EXISTS (SELECT 1 FROM rounds WHERE chain_id = $1) "
                "AS played FROM seed_chains WHERE id = $1 FOR UPDATE",
                chain_id,
            )
            if row is None:
                raise ConfigError(f"there is no seed chain {chain_id}")
            if row["client_seed"] is not None:
                raise ConfigError(f"seed chain {chain_id} already has its salt")
            if row["played"]:
                raise ConfigError(f"seed chain {chain_id} has been played: too late to salt")
            await conn.execute(
                "UPDATE seed_chains SET client_seed = $2, client_seed_source = $3, "
                "salted_at = now() WHERE id = $1",
                chain_id,
                client_seed,
                source,
            )

    async def last_round_id(self) -> int:
        async with _translated("reading the last round"):
            value = await self._pool.fetchval("SELECT COALESCE(max(id), 0) FROM rounds")
        return int(value)

    async def bet_refs(self, from_round_id: int) -> list[BetRefRow]:
        """The bets placed with a ``ref`` in rounds ``>= from_round_id``, oldest round first.

        What a restarted server needs to answer a replayed bet ``ref`` with its
        first ``bet_accepted`` (bets flushed before ``balance_after`` existed
        are left out: their first answer is not known).
        """
        async with _translated("reading bet refs"):
            rows = await self._pool.fetch(
                "SELECT user_id, ref, round_id, bet_amount, auto_cashout_x100, balance_after, slot "
                "FROM bets WHERE round_id >= $1 AND ref IS NOT NULL "
                "AND balance_after IS NOT NULL ORDER BY round_id, id",
                from_round_id,
            )
        return [BetRefRow(*row) for row in rows]

    async def goals(self) -> list[asyncpg.Record]:
        """Community goals not yet completed, the active one first."""
        async with _translated("reading the goals"):
            return list(
                await self._pool.fetch(
                    "SELECT id, name, target_height, current_height, reward FROM community_goals "
                    "WHERE status <> 'completed' "
                    "ORDER BY (status = 'active') DESC, position, id"
                )
            )

    async def save_chat(
        self,
        lines: Sequence[tuple[int, int | None, str]],
        ids: Sequence[int] | None = None,
        deleted: Sequence[bool] | None = None,
        next_id: int | None = None,
    ) -> None:
        """Store chat lines (user id, round id, text) in one statement: with the
        server's ``ids`` and ``deleted`` marks when given; ``next_id`` keeps the
        table's sequence ahead of the ids the server hands out (``reserve_chat_ids``)."""
        async with _translated("storing chat"), self._pool.acquire() as conn, conn.transaction():
            if ids is None:
                await conn.execute(
                    "INSERT INTO chat_messages (user_id, round_id, message) "
                    "SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[])",
                    [u for u, _, _ in lines],
                    [r for _, r, _ in lines],
                    [t for _, _, t in lines],
                )
            else:
                await conn.execute(
                    "INSERT INTO chat_messages (id, user_id, round_id, message, deleted_at) "
                    "SELECT i, u, r, t, CASE WHEN d THEN now() END FROM unnest("
                    "$1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::bool[]"
                    ") AS x(i, u, r, t, d) ON CONFLICT (id) DO NOTHING",
                    list(ids),
                    [u for u, _, _ in lines],
                    [r for _, r, _ in lines],
                    [t for _, _, t in lines],
                    list(deleted) if deleted is not None else [False] * len(lines),
                )
            if next_id is not None:
                await conn.execute(_CHAT_SEQUENCE_AHEAD, next_id + CHAT_IDS_AHEAD)

    async def reserve_chat_ids(self) -> int:
        """The first chat id a starting server may hand out: past every id any
        earlier server handed out (it kept the sequence ``CHAT_IDS_AHEAD`` ahead)."""
        async with _translated("reserving chat ids"), self._pool.acquire() as conn:
            first: int = await conn.fetchval(
                "SELECT nextval(pg_get_serial_sequence('chat_messages', 'id'))"
            )
            await conn.execute(_CHAT_SEQUENCE_AHEAD, first + CHAT_IDS_AHEAD)
        return first

    async def recent_crashes(self, limit: int = 50) -> list[tuple[int, int]]:
        """(round_id, crash_point) of the last crashed rounds, oldest first."""
        async with _translated("reading the history"):
            rows = await self._pool.fetch(
                "SELECT id, crash_point_x100 FROM rounds WHERE status = 'crashed' "
                "ORDER BY id DESC LIMIT $1",
                limit,
            )
        return [(r["id"], r["crash_point_x100"]) for r in reversed(rows)]

    # -- the flush ---------------------------------------------------------

    async def flush(
        self, rounds: Sequence[SettledRound], grants: Sequence[Granted] = ()
    ) -> FlushResult:
        """Write settled rounds and grants in one transaction; idempotent (module docstring)."""
        async with _translated("a flush"), self._pool.acquire() as conn, conn.transaction():
            return await self._flush(conn, rounds, grants)

    @staticmethod
    async def _flush(
        conn: asyncpg.Connection, rounds: Sequence[SettledRound], grants: Sequence[Granted]
    ) -> FlushResult:
        new_ids: set[int] = set()
        if rounds:
            seeds = await _revealed_seeds(conn, rounds)
            inserted = await conn.fetch(
                """
                INSERT INTO rounds (id, chain_id, nonce, seed_hash, server_seed, client_seed,
                                    house_edge, crash_point_x100, status, bets_count,
                                    total_wagered, total_paid, started_at, ended_at)
                SELECT i, c, n, h, s, cs, e, p, st, bc, w, pd, sa, COALESCE(ea, now())
                FROM unnest($1::bigint[], $2::bigint[], $3::int[], $4::text[],
                            $5::text[], $6::text[], $7::numeric[], $8::int[],
                            $9::text[], $10::int[], $11::bigint[], $12::bigint[],
                            $13::timestamptz[], $14::timestamptz[])
                    AS r(i, c, n, h, s, cs, e, p, st, bc, w, pd, sa, ea)
                ON CONFLICT (id) DO NOTHING
                RETURNING id
                """,
                [r.round_id for r in rounds],
                [r.opened.chain_id for r in rounds],
                [r.opened.nonce for r in rounds],
                [r.opened.seed_hash for r in rounds],
                seeds,
                [r.opened.client_seed for r in rounds],
                [r.opened.house_edge for r in rounds],
                [r.crash_point for r in rounds],
                ["void" if r.void else "crashed" for r in rounds],
                [len(r.bets) for r in rounds],
                [r.total_wagered for r in rounds],
                [r.total_paid for r in rounds],
                [r.started_at for r in rounds],
                [r.ended_at for r in rounds],
            )
            new_ids = {row["id"] for row in inserted}
        fresh = [r for r in rounds if r.round_id in new_ids]
        # One binary COPY per table, of the rows settle_round made. No conflict
        # handling: the round rows above already made this idempotent, so a
        # conflict here would be a bug and fails the transaction.
        # A bet written before records carried its time is placed at the flush.
        now = datetime.now(UTC)
        bet_rows = [
            b if b.placed_at is not None else b._replace(placed_at=now)
            for r in fresh
            for b in r.bets
        ]
        entries = [e for r in fresh for e in r.ledger]
        if bet_rows:
            await conn.copy_records_to_table("bets", records=bet_rows, columns=_BET_COLUMNS)
            await conn.copy_records_to_table("ledger", records=entries, columns=_LEDGER_COLUMNS)
        deltas: dict[int, int] = defaultdict(int)
        for user_id, _, amount, _, _, _ in entries:
            deltas[user_id] += amount
        ledger_rows = len(entries)
        plain = [g for g in grants if g.kind == "grant"]
        adjusts = [g for g in grants if g.kind == "adjust"]
        if plain:
            # Grants are idempotent by their own key: only the new ones count.
            rows = await conn.fetch(
                """
                INSERT INTO ledger (user_id, kind, amount, idem_key)
                SELECT u, 'grant', a, k FROM unnest($1::bigint[], $2::bigint[], $3::text[])
                    AS g(u, a, k)
                ON CONFLICT (idem_key) WHERE kind = 'grant' DO NOTHING
                RETURNING user_id, amount
                """,
                [g.user_id for g in plain],
                [g.amount for g in plain],
                [g.key for g in plain],
            )
            ledger_rows += len(rows)
            for row in rows:
                deltas[row["user_id"]] += row["amount"]
        if adjusts:
            # So are an operator's adjustments, each with its reason.
            rows = await conn.fetch(
                """
                INSERT INTO ledger (user_id, kind, amount, idem_key, reason)
                SELECT u, 'adjust', a, k, r
                FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[]) AS g(u, a, k, r)
                ON CONFLICT (idem_key) WHERE kind = 'adjust' DO NOTHING
                RETURNING user_id, amount
                """,
                [g.user_id for g in adjusts],
                [g.amount for g in adjusts],
                [g.key for g in adjusts],
                [g.reason or "" for g in adjusts],
            )
            ledger_rows += len(rows)
            for row in rows:
                deltas[row["user_id"]] += row["amount"]
        changed = {u: d for u, d in deltas.items() if d}
        if changed:
            await conn.execute(
                """
                UPDATE users SET balance = users.balance + d.delta, updated_at = now()
                FROM unnest($1::bigint[], $2::bigint[]) AS d(id, delta)
                WHERE users.id = d.id
                """,
                list(changed),
                list(changed.values()),
            )
        for r in fresh:
            if r.goal is None:
                continue
            await conn.execute(
                "INSERT INTO goal_progress (round_id, goal_id, blocks) VALUES ($1, $2, $3)",
                r.round_id,
                r.goal.goal_id,
                r.goal.blocks,
            )
            await conn.execute(
                """
                UPDATE community_goals SET current_height = current_height + $2,
                    status = CASE WHEN $3 THEN 'completed' ELSE status END,
                    end_date = CASE WHEN $3 THEN now() ELSE end_date END
                WHERE id = $1
                """,
                r.goal.goal_id,
                r.goal.blocks,
                r.goal.completed,
            )
            if r.goal.completed:
                await conn.execute(
                    """
                    UPDATE community_goals SET status = 'active', start_date = now()
                    WHERE id = (SELECT id FROM community_goals WHERE status = 'pending'
                                ORDER BY position, id LIMIT 1)
                    """
                )
        return FlushResult(
            len(fresh), sum(r.void for r in fresh), len(rounds) - len(fresh), ledger_rows
        )

    # -- published history (the /api/* answers) -----------------------------

    async def rounds_before(self, before: int, limit: int) -> list[asyncpg.Record]:
        """Flushed rounds with ``id < before``, newest first."""
        async with _translated("reading rounds"):
            return list(
                await self._pool.fetch(
                    f"SELECT {_ROUND_FIELDS} FROM rounds WHERE id < $1 ORDER BY id DESC LIMIT $2",
                    before,
                    limit,
                )
            )

    async def round_with_bets(
        self, round_id: int
    ) -> tuple[asyncpg.Record | None, list[asyncpg.Record]]:
        """One flushed round and its bets, in the order they were placed."""
        async with _translated("reading a round"), self._pool.acquire() as conn:
            row = await conn.fetchrow(f"SELECT {_ROUND_FIELDS} FROM rounds WHERE id = $1", round_id)
            if row is None:
                return None, []
            bets = await conn.fetch(
                "SELECT u.username, b.bet_amount AS amount, "
                "b.cash_out_multiplier_x100 AS multiplier_x100, b.winnings AS payout, "
                "b.status, b.placed_at, b.slot FROM bets b JOIN users u ON u.id = b.user_id "
                "WHERE b.round_id = $1 ORDER BY b.placed_at, b.id",
                round_id,
            )
        return row, list(bets)

    # -- players: their bets, profiles and leaderboards ------------------------

    async def bets_of_user(self, user_id: int, before: int, limit: int) -> list[asyncpg.Record]:
        """The user's flushed bets with ``id < before``, newest first, as ``/api/me/bets``
        shows them (``_MY_BET_FIELDS``)."""
        async with _translated("reading a user's bets"):
            return list(
                await self._pool.fetch(
                    f"SELECT {_MY_BET_FIELDS} FROM bets "
                    "WHERE user_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
                    user_id,
                    before,
                    limit,
                )
            )

    async def player_profile(self, username: str) -> asyncpg.Record | None:
        """A user's all-time totals (``player_stats``, zeros before any bet); None if unknown."""
        if "\x00" in username:
            return None  # PostgreSQL text cannot hold U+0000, so no name has one
        async with _translated("reading a profile"):
            return await self._pool.fetchrow(
                "SELECT u.username, u.created_at, COALESCE(s.rounds, 0) AS rounds, "
                "COALESCE(s.bets, 0) AS bets, COALESCE(s.wagered, 0) AS wagered, "
                "COALESCE(s.profit, 0) AS profit, s.best_x100, s.biggest_win "
                "FROM users u LEFT JOIN player_stats s "
                "ON s.period = 'all' AND s.starts = $2 AND s.user_id = u.id "
                "WHERE lower(u.username) = lower($1)",
                username,
                ALL_TIME,
            )

    async def leaderboard(
        self, by: str, period: str, starts: date, limit: int
    ) -> list[asyncpg.Record]:
        """The top ``limit`` (username, value) of ``period`` starting ``starts`` by
        ``by`` (``LEADERBOARD_VALUES``), ties to the older account."""
        value, counted = LEADERBOARD_VALUES[by]
        async with _translated("reading a leaderboard"):
            return list(
                await self._pool.fetch(
                    f"SELECT u.username, {value} AS value FROM player_stats s "
                    "JOIN users u ON u.id = s.user_id "
                    f"WHERE s.period = $1 AND s.starts = $2 AND {counted} "
                    f"ORDER BY {value} DESC, s.user_id LIMIT $3",
                    period,
                    starts,
                    limit,
                )
            )

    async def summarise_bets(self, max_bets: int = SUMMARY_CHUNK) -> int:
        """Add bets flushed since the last summary to ``player_stats``; how many (0:
        none left). Call it until it answers 0.

        One short transaction of its own, after a flush has committed: it
        takes the watermark row (so summaries run one at a time), sums the
        bets with ``last_bet_id < id <= high`` into their users' rows of the
        bet's UTC day, ISO week and all time, and moves the watermark to
        ``high``, so running it twice adds nothing twice, and one that never
        ran (a crash after a flush) is caught up by the next. ``high`` is the
        newest bet, or, with more than ``max_bets`` waiting (a first summary
        of an older database), the last bet of the round of the
        ``max_bets``-th: each transaction stays well inside the command
        timeout, and a round's bets are never split between two summaries
        (its rounds are counted once per summary). Bets are written by one
        flush at a time (one server holds the server lock), a round's bets
        by one COPY, in one transaction per batch, so their ids are
        consecutive and every bet below the watermark was there when it
        moved.
        """
        async with (
            _translated("summarising bets"),
            self._pool.acquire() as conn,
            conn.transaction(),
        ):
            low = await conn.fetchval("SELECT last_bet_id FROM player_stats_watermark FOR UPDATE")
            high = await conn.fetchval(
                """
                SELECT COALESCE(
                    (SELECT max(b.id) FROM bets b WHERE b.round_id =
                        (SELECT round_id FROM bets WHERE id > $1 ORDER BY id OFFSET $2 LIMIT 1)),
                    (SELECT max(id) FROM bets))
                """,
                low,
                max_bets,
            )
            if high is None or high <= low:
                return 0
            added: int = await conn.fetchval(
                "SELECT count(*) FROM bets WHERE id > $1 AND id <= $2", low, high
            )
            await conn.execute(_SUMMARISE, low, high, ALL_TIME)
            await conn.execute("UPDATE player_stats_watermark SET last_bet_id = $1", high)
        return added

    async def usernames(self, user_ids: Sequence[int]) -> dict[int, str]:
        async with _translated("reading usernames"):
            rows = await self._pool.fetch(
                "SELECT id, username FROM users WHERE id = ANY($1::bigint[])", list(user_ids)
            )
        return {row["id"]: row["username"] for row in rows}

    async def recent_chat(self, limit: int) -> list[tuple[int, int, str, str, float]]:
        """The last ``limit`` chat lines not deleted (id, user id, username, text,
        Unix time), oldest first."""
        async with _translated("reading chat"):
            rows = await self._pool.fetch(
                'SELECT m.id, m.user_id, u.username, m.message, m."timestamp" '
                "FROM chat_messages m JOIN users u ON u.id = m.user_id "
                "WHERE m.deleted_at IS NULL ORDER BY m.id DESC LIMIT $1",
                limit,
            )
        return [
            (r["id"], r["user_id"], r["username"], r["message"], r["timestamp"].timestamp())
            for r in reversed(rows)
        ]

    # -- self-imposed limits (engine/limits.py) ----------------------------

    async def limits(self, user_id: int) -> Limits:
        """The limits ``user_id`` has set on themselves, as stored (pending changes
        not yet applied: ``Limits.at`` does that)."""
        async with _translated("reading limits"):
            rows = await self._pool.fetch(
                "SELECT name, amount, pending, effective_at FROM player_limits WHERE user_id = $1",
                user_id,
            )
            block = await self._pool.fetchrow(
                "SELECT cool_off_until, excluded_until FROM player_exclusions WHERE user_id = $1",
                user_id,
            )
        values = {r["name"]: Limit(r["amount"], r["pending"], _ms(r["effective_at"])) for r in rows}
        if block is None:
            return Limits(values)
        return Limits(values, _ms(block["cool_off_until"]), _ms(block["excluded_until"]))

    async def save_limits(self, user_id: int, limits: Limits) -> None:
        """Store ``user_id``'s limits (all of them: the rows not in ``limits`` go)."""
        rows = [
            (user_id, name, limit.current, limit.pending, _instant(limit.effective_at_ms))
            for name, limit in limits.values.items()
        ]
        async with (
            _translated("saving limits"),
            self._pool.acquire() as conn,
            conn.transaction(),
        ):
            await conn.execute("DELETE FROM player_limits WHERE user_id = $1", user_id)
            await conn.executemany(
                "INSERT INTO player_limits (user_id, name, amount, pending, effective_at) "
                "VALUES ($1, $2, $3, $4, $5)",
                rows,
            )
            await conn.execute(
                "INSERT INTO player_exclusions (user_id, cool_off_until, excluded_until) "
                "VALUES ($1, $2, $3) ON CONFLICT (user_id) DO UPDATE SET "
                "cool_off_until = $2, excluded_until = $3, updated_at = now()",
                user_id,
                _instant(limits.cool_off_until_ms),
                _instant(limits.excluded_until_ms),
            )

    async def activity(self, user_id: int, since_ms: int) -> dict[int, tuple[int, int]]:
        """``user_id``'s flushed bets placed since ``since_ms``, per UTC day (days
        since 1970-01-01): (stakes, stakes minus payouts). Refunded bets count
        nothing (their stake came back)."""
        async with _translated("reading bets for limits"):
            rows = await self._pool.fetch(
                "SELECT (placed_at AT TIME ZONE 'UTC')::date - DATE '1970-01-01' AS day, "
                "sum(bet_amount)::bigint AS wagered, sum(bet_amount - winnings)::bigint AS loss "
                "FROM bets WHERE user_id = $1 AND status <> 'refunded' AND placed_at >= $2 "
                "GROUP BY 1",
                user_id,
                _instant(since_ms),
            )
        return {r["day"]: (r["wagered"], r["loss"]) for r in rows}

    # -- read access for audit and tests -----------------------------------

    async def fetch(self, query: str, *args: object) -> list[asyncpg.Record]:
        async with _translated("a query"):
            return list(await self._pool.fetch(query, *args))

    async def execute(self, query: str, *args: object) -> str:
        async with _translated("a statement"):
            result: str = await self._pool.execute(query, *args)
        return result
