-- PillarPayout schema. Applied at every start-up; every statement is idempotent.
--
-- Money is BIGINT cents everywhere (1250 = 12.50): integers add exactly and
-- asyncpg hands them over as Python ints, so no conversion happens until the
-- CLI parses or prints an amount. Multipliers are INTEGER hundredths
-- (columns end in _x100: 235 = 2.35x), as in the engine.
--
-- The seed's tables (users, rounds, bets, community_goals, chat_messages) keep
-- their names and columns, corrected for money safety: NUMERIC money became
-- BIGINT cents, free-text statuses became CHECKed ones, and the plain-salt
-- column went away (argon2 hashes carry their salt).

SELECT pg_advisory_xact_lock(7170420);  -- one schema writer at a time

CREATE TABLE IF NOT EXISTS schema_version (
    version     INTEGER PRIMARY KEY,
    applied_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS users (
    id             BIGSERIAL PRIMARY KEY,
    username       VARCHAR(32)  NOT NULL,  -- unique case-insensitively (index below)
    email          VARCHAR(254) NOT NULL UNIQUE,
    password_hash  TEXT         NOT NULL,
    -- Always equal to SUM(ledger.amount) of the user: changed only by deltas.
    balance        BIGINT       NOT NULL DEFAULT 0 CHECK (balance >= 0),
    created_at     TIMESTAMPTZ  NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ  NOT NULL DEFAULT now(),
    -- Roles and moderation (schema version 8): who may moderate, and the
    -- ban and mute in force. A ban lasts until an unban; a mute until
    -- muted_until. Every change of these is also a row of moderation_log.
    role           TEXT         NOT NULL DEFAULT 'player'
                                CHECK (role IN ('player', 'moderator', 'admin')),
    banned_at      TIMESTAMPTZ,  -- NULL: not banned
    ban_reason     TEXT,
    muted_until    TIMESTAMPTZ,  -- NULL or past: not muted
    mute_reason    TEXT
) WITH (fillfactor = 70);  -- room for HOT updates: a flush moves thousands of balances
-- Schema version 8: databases made before roles and moderation.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM information_schema.columns
                   WHERE table_schema = current_schema() AND table_name = 'users'
                     AND column_name = 'role') THEN
        ALTER TABLE users
            ADD COLUMN role TEXT NOT NULL DEFAULT 'player'
                CHECK (role IN ('player', 'moderator', 'admin')),
            ADD COLUMN banned_at TIMESTAMPTZ,
            ADD COLUMN ban_reason TEXT,
            ADD COLUMN muted_until TIMESTAMPTZ,
            ADD COLUMN mute_reason TEXT;
    END IF;
END $$;
-- "Alice" and "alice" are one account.
CREATE UNIQUE INDEX IF NOT EXISTS users_username_lower ON users (lower(username));
-- So are "Ann@Example.com" and "ann@example.com" (schema version 5). A
-- database that already holds two such accounts keeps them, says so at every
-- start, and gets the index once an operator has merged or renamed them.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_indexes WHERE indexname = 'users_email_lower') THEN
        IF EXISTS (SELECT lower(email) FROM users GROUP BY 1 HAVING count(*) > 1) THEN
            NULL;  -- apply_schema() warns about it
        ELSE
            CREATE UNIQUE INDEX users_email_lower ON users (lower(email));
        END IF;
    END IF;
END $$;

-- Provably fair seed chains: seed[i] = sha256(seed[i+1]); the commitment is
-- published when the chain is created (created_at, on /api/fairness). The
-- salt (client_seed) is set later, once, before any round of the chain is
-- played, from a value the operator names and does not control (a seeding
-- event: client_seed_source says which); only salted chains are played.
CREATE TABLE IF NOT EXISTS seed_chains (
    id                  BIGSERIAL PRIMARY KEY,
    top_seed            CHAR(64)    NOT NULL,  -- secret: every seed of the chain derives from it
    length              INTEGER     NOT NULL CHECK (length > 0),
    commitment          CHAR(64)    NOT NULL UNIQUE,
    client_seed         TEXT,
    client_seed_source  TEXT,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    salted_at           TIMESTAMPTZ,
    CONSTRAINT seed_chains_salted
        CHECK ((client_seed IS NULL) = (salted_at IS NULL)
               AND (client_seed IS NULL) = (client_seed_source IS NULL))
);
-- Schema version 4: chains made before seeding events were salted when made.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM information_schema.columns
                   WHERE table_schema = current_schema() AND table_name = 'seed_chains'
                     AND column_name = 'salted_at') THEN
        ALTER TABLE seed_chains ALTER COLUMN client_seed DROP NOT NULL,
            ADD COLUMN client_seed_source TEXT, ADD COLUMN salted_at TIMESTAMPTZ;
        UPDATE seed_chains SET salted_at = created_at,
            client_seed_source = 'chosen with the chain (before seeding events)';
        ALTER TABLE seed_chains ADD CONSTRAINT seed_chains_salted
            CHECK ((client_seed IS NULL) = (salted_at IS NULL)
                   AND (client_seed IS NULL) = (client_seed_source IS NULL));
        ALTER TABLE rounds ALTER COLUMN server_seed DROP NOT NULL;
    END IF;
END $$;

CREATE TABLE IF NOT EXISTS rounds (
    id               BIGINT PRIMARY KEY,  -- assigned by the engine, in order
    chain_id         BIGINT      NOT NULL REFERENCES seed_chains (id),
    nonce            INTEGER     NOT NULL CHECK (nonce > 0),
    seed_hash        CHAR(64)    NOT NULL,
    server_seed      CHAR(64),  -- revealed at the crash; NULL for a void round
    client_seed      TEXT        NOT NULL,
    house_edge       NUMERIC(5, 2) NOT NULL,
    -- NULL for a void round (the server stopped before it crashed).
    crash_point_x100 INTEGER CHECK (crash_point_x100 >= 100),
    status           TEXT        NOT NULL CHECK (status IN ('crashed', 'void')),
    bets_count       INTEGER     NOT NULL DEFAULT 0,
    total_wagered    BIGINT      NOT NULL DEFAULT 0,
    total_paid       BIGINT      NOT NULL DEFAULT 0,
    -- The game's own times: when it began running and when it crashed (a void
    -- round: NULL, and when it was flushed).
    started_at       TIMESTAMPTZ,
    ended_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (chain_id, nonce),
    CHECK ((status = 'crashed') = (crash_point_x100 IS NOT NULL))
);
CREATE INDEX IF NOT EXISTS rounds_ended_at ON rounds (ended_at DESC);

CREATE TABLE IF NOT EXISTS bets (
    id                       BIGSERIAL PRIMARY KEY,
    user_id                  BIGINT  NOT NULL REFERENCES users (id),
    round_id                 BIGINT  NOT NULL REFERENCES rounds (id),
    ref                      TEXT,
    bet_amount               BIGINT  NOT NULL CHECK (bet_amount > 0),
    auto_cashout_x100        INTEGER CHECK (auto_cashout_x100 >= 101),
    cash_out_multiplier_x100 INTEGER CHECK (cash_out_multiplier_x100 >= 100),
    winnings                 BIGINT  NOT NULL DEFAULT 0 CHECK (winnings >= 0),
    -- Every flushed bet has ended exactly once.
    status                   TEXT    NOT NULL CHECK (status IN ('cashed_out', 'lost', 'refunded')),
    cashout_reason           TEXT    CHECK (cashout_reason IN ('manual', 'auto', 'forced')),
    -- The bettor's balance right after the debit, as its bet_accepted said:
    -- a restarted server answers a replayed ref with that same frame.
    balance_after            BIGINT,
    -- When the game accepted the bet (bets flushed before schema version 4:
    -- when they were flushed).
    placed_at                TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Which of the user's two bets of the round (schema version 6; the bets
    -- of older databases are slot 0).
    slot                     SMALLINT NOT NULL DEFAULT 0 CHECK (slot IN (0, 1)),
    -- One bet per user per slot per round; also the per-round index, and what
    -- a ledger row names its bet by.
    UNIQUE (round_id, user_id, slot),
    CHECK ((status = 'cashed_out') = (cash_out_multiplier_x100 IS NOT NULL)),
    CHECK (status = 'cashed_out' OR winnings = 0)
);
-- Databases created before the column existed (their older bets keep NULL).
-- Checked first, so a start on an up-to-date database takes no table lock.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM information_schema.columns
                   WHERE table_schema = current_schema() AND table_name = 'bets'
                     AND column_name = 'balance_after') THEN
        ALTER TABLE bets ADD COLUMN balance_after BIGINT;
    END IF;
END $$;
-- A player's bets, newest first by id (/api/me/bets pages by id); also the
-- way to a user's ledger rows (below). Schema version 7: it replaces
-- bets_user_recent (user_id, round_id DESC), which no query used, so a flush
-- still updates one index per user.
CREATE INDEX IF NOT EXISTS bets_user_id ON bets (user_id, id DESC);
DROP INDEX IF EXISTS bets_user_recent;

-- Every balance change. users.balance == SUM(amount) per user (audit checks it).
--
-- Each row is checked by exactly one foreign key, which keeps a 10,000-bet
-- flush within its budget (PostgreSQL checks a key with a lookup per row): a
-- bet's rows name their bet by its (round_id, user_id, slot), so the row's
-- user is its bet's user, whose own key pins it to users; a grant's row
-- (round_id NULL) is checked by grant_user_id.
CREATE TABLE IF NOT EXISTS ledger (
    id             BIGSERIAL PRIMARY KEY,
    user_id        BIGINT      NOT NULL,  -- exists: one of the two keys below checks it
    kind           TEXT        NOT NULL CHECK (kind IN ('grant', 'bet', 'payout', 'refund')),
    amount         BIGINT      NOT NULL CHECK (amount <> 0),  -- signed: a bet is negative
    round_id       BIGINT,  -- with user_id and slot, the bet this row belongs to; NULL for a grant
    slot           SMALLINT    NOT NULL DEFAULT 0,  -- 0 for a grant
    grant_user_id  BIGINT GENERATED ALWAYS AS (CASE WHEN round_id IS NULL THEN user_id END)
                   STORED CONSTRAINT ledger_grant_user_fkey REFERENCES users (id),
    -- Replaying a flush or a grant inserts nothing twice: grants are unique by
    -- this key, a bet's rows by (round_id, user_id, slot, kind), i.e. by the
    -- same (kind, round, user, slot) the key spells out (indexes below).
    idem_key       TEXT        NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT ledger_bet_fkey FOREIGN KEY (round_id, user_id, slot)
        REFERENCES bets (round_id, user_id, slot),
    CHECK ((kind = 'bet') = (amount < 0)),
    CHECK ((kind = 'grant') = (round_id IS NULL))
);
-- Databases of schema versions 1 and 2 named a bet by ledger.bet_id (version
-- 1 with a key on each of user_id and bet_id, version 2 with one on (bet_id,
-- user_id)). Dropping the column drops those keys, its check and its index.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM information_schema.columns
               WHERE table_schema = current_schema() AND table_name = 'ledger'
                 AND column_name = 'bet_id') THEN
        UPDATE ledger l SET round_id = b.round_id FROM bets b
        WHERE b.id = l.bet_id AND l.round_id IS DISTINCT FROM b.round_id;
        ALTER TABLE ledger DROP COLUMN IF EXISTS grant_user_id;
        ALTER TABLE ledger DROP COLUMN bet_id;
        ALTER TABLE ledger DROP CONSTRAINT IF EXISTS ledger_user_id_fkey;
        ALTER TABLE bets DROP CONSTRAINT IF EXISTS bets_id_user_id_key;
        DROP INDEX IF EXISTS ledger_user;
        DROP INDEX IF EXISTS bets_user_ref;
        ALTER TABLE ledger ADD COLUMN grant_user_id BIGINT
            GENERATED ALWAYS AS (CASE WHEN round_id IS NULL THEN user_id END) STORED
            CONSTRAINT ledger_grant_user_fkey REFERENCES users (id);
        ALTER TABLE ledger ADD CONSTRAINT ledger_bet_fkey
            FOREIGN KEY (round_id, user_id) REFERENCES bets (round_id, user_id);
        ALTER TABLE ledger ADD CHECK ((kind = 'grant') = (round_id IS NULL));
    END IF;
END $$;
-- Schema version 6: two bets a round. A user's bet is (round, user, slot);
-- every bet and ledger row an older version wrote is slot 0.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM information_schema.columns
                   WHERE table_schema = current_schema() AND table_name = 'bets'
                     AND column_name = 'slot') THEN
        ALTER TABLE ledger DROP CONSTRAINT ledger_bet_fkey;
        DROP INDEX IF EXISTS ledger_round_user_kind;  -- made again below, with the slot
        ALTER TABLE bets
            ADD COLUMN slot SMALLINT NOT NULL DEFAULT 0 CHECK (slot IN (0, 1)),
            DROP CONSTRAINT bets_round_id_user_id_key,
            ADD CONSTRAINT bets_round_id_user_id_slot_key UNIQUE (round_id, user_id, slot);
        ALTER TABLE ledger
            ADD COLUMN slot SMALLINT NOT NULL DEFAULT 0,
            ADD CONSTRAINT ledger_bet_fkey FOREIGN KEY (round_id, user_id, slot)
                REFERENCES bets (round_id, user_id, slot);
    END IF;
END $$;
-- Round first: a flush appends to the index instead of writing all over it
-- (6 % of a 10,000-bet flush against user first). A user's history goes
-- through bets_user_id to their bets' rows here, and ledger_grant_user.
CREATE UNIQUE INDEX IF NOT EXISTS ledger_round_user_kind ON ledger (round_id, user_id, slot, kind)
    WHERE round_id IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS ledger_grant_key ON ledger (idem_key) WHERE kind = 'grant';
CREATE INDEX IF NOT EXISTS ledger_grant_user ON ledger (user_id) WHERE kind = 'grant';

CREATE TABLE IF NOT EXISTS sessions (
    token_sha256  CHAR(64)    PRIMARY KEY,  -- the token itself is never stored
    user_id       BIGINT      NOT NULL REFERENCES users (id),
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at    TIMESTAMPTZ NOT NULL,
    revoked_at    TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS sessions_user ON sessions (user_id);

-- Players' totals for /api/users/NAME and /api/leaderboard (schema version 7),
-- summed from bets in a short transaction of their own right after each
-- flush commits (postgres.py, summarise_bets): one row per user and UTC day,
-- ISO week (starts: its Monday, UTC) and all time (starts: 1970-01-01). A
-- refunded bet counts in rounds and bets only. The watermark is the last
-- bets.id summed: a summary adds the bets above it and moves it in the same
-- transaction, so a crash between a flush and its summary is caught up by the
-- next, and nothing is summed twice.
CREATE TABLE IF NOT EXISTS player_stats (
    period       TEXT    NOT NULL CHECK (period IN ('day', 'week', 'all')),
    starts       DATE    NOT NULL,
    user_id      BIGINT  NOT NULL REFERENCES users (id),
    rounds       INTEGER NOT NULL,  -- distinct rounds with a bet
    bets         INTEGER NOT NULL,
    wagered      BIGINT  NOT NULL,  -- stakes of the bets not refunded
    profit       BIGINT  NOT NULL,  -- winnings - stakes of the bets not refunded
    best_x100    INTEGER,           -- the highest cash-out multiplier; NULL: none
    biggest_win  BIGINT,            -- the highest winnings - stake of a cash-out; NULL: none
    PRIMARY KEY (period, starts, user_id)
);
-- A leaderboard reads its top 50 off one of these (a period's rows lie all
-- over the table: every summary updates some of each period's rows).
CREATE INDEX IF NOT EXISTS player_stats_profit
    ON player_stats (period, starts, profit DESC, user_id) WHERE wagered > 0;
CREATE INDEX IF NOT EXISTS player_stats_wagered
    ON player_stats (period, starts, wagered DESC, user_id) WHERE wagered > 0;
CREATE INDEX IF NOT EXISTS player_stats_multiplier
    ON player_stats (period, starts, best_x100 DESC, user_id) WHERE best_x100 IS NOT NULL;
CREATE TABLE IF NOT EXISTS player_stats_watermark (
    only_row     BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row),
    last_bet_id  BIGINT  NOT NULL
);
INSERT INTO player_stats_watermark (last_bet_id) VALUES (0) ON CONFLICT DO NOTHING;

-- Blocks built by everyone, across rounds (the seed's heights are blocks).
CREATE TABLE IF NOT EXISTS community_goals (
    id              BIGSERIAL PRIMARY KEY,
    name            VARCHAR(100) NOT NULL UNIQUE,
    target_height   INTEGER      NOT NULL CHECK (target_height > 0),
    current_height  INTEGER      NOT NULL DEFAULT 0 CHECK (current_height >= 0),
    reward          TEXT         NOT NULL,
    status          TEXT         NOT NULL DEFAULT 'pending'
                                 CHECK (status IN ('pending', 'active', 'completed')),
    position        INTEGER      NOT NULL DEFAULT 0,
    start_date      TIMESTAMPTZ,
    end_date        TIMESTAMPTZ
);

-- Which round advanced which goal: makes the goal update of a flush idempotent.
CREATE TABLE IF NOT EXISTS goal_progress (
    round_id  BIGINT  NOT NULL REFERENCES rounds (id),
    goal_id   BIGINT  NOT NULL REFERENCES community_goals (id),
    blocks    INTEGER NOT NULL CHECK (blocks >= 0),
    PRIMARY KEY (round_id, goal_id)
);

CREATE TABLE IF NOT EXISTS chat_messages (
    id          BIGSERIAL PRIMARY KEY,
    user_id     BIGINT      NOT NULL REFERENCES users (id),
    round_id    BIGINT,
    message     VARCHAR(280) NOT NULL,
    "timestamp" TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Set by a moderator's delete_chat (schema version 8): the line is kept,
    -- never shown again (hello, /api/chat). moderation_log says who and why.
    deleted_at  TIMESTAMPTZ
);
-- The running server numbers its lines itself (every chat frame carries its
-- id, so a moderator can delete it before it is stored) and keeps this
-- table's sequence ahead of the ids it hands out (server/chat.py).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM information_schema.columns
                   WHERE table_schema = current_schema() AND table_name = 'chat_messages'
                     AND column_name = 'deleted_at') THEN
        ALTER TABLE chat_messages ADD COLUMN deleted_at TIMESTAMPTZ;
    END IF;
END $$;
CREATE INDEX IF NOT EXISTS chat_messages_recent ON chat_messages (id DESC);

-- Every moderation action and role change, append-only: a trigger refuses
-- UPDATE, DELETE and TRUNCATE. actor is the moderator's username or
-- 'cli:<os user>' (actor_id NULL) for the command line; until is a mute's
-- end; chat_id the line a delete_chat removed; role the role a role change gave.
CREATE TABLE IF NOT EXISTS moderation_log (
    id         BIGSERIAL   PRIMARY KEY,
    actor_id   BIGINT      REFERENCES users (id),
    actor      TEXT        NOT NULL,
    action     TEXT        NOT NULL
                           CHECK (action IN ('ban', 'unban', 'mute', 'unmute', 'delete_chat', 'role')),
    target_id  BIGINT      NOT NULL REFERENCES users (id),
    target     TEXT        NOT NULL,  -- the target's username then
    reason     TEXT        NOT NULL DEFAULT '',
    until      TIMESTAMPTZ,
    chat_id    BIGINT,
    role       TEXT,
    at         TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS moderation_log_target ON moderation_log (target_id, id);
CREATE OR REPLACE FUNCTION moderation_log_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'moderation_log is append-only: % refused', TG_OP;
END $$;
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'moderation_log_append_only'
                   AND tgrelid = 'moderation_log'::regclass) THEN
        CREATE TRIGGER moderation_log_append_only
            BEFORE UPDATE OR DELETE ON moderation_log
            FOR EACH ROW EXECUTE FUNCTION moderation_log_append_only();
        CREATE TRIGGER moderation_log_no_truncate
            BEFORE TRUNCATE ON moderation_log
            FOR EACH STATEMENT EXECUTE FUNCTION moderation_log_append_only();
    END IF;
END $$;

-- The starting goals; operators edit this table to add more.
INSERT INTO community_goals (name, target_height, reward, status, position) VALUES
    ('Foundation', 500, 'Bronze builder badge for everyone who bet', 'active', 1),
    ('Tower of Ten Thousand', 10000, 'Silver builder badge', 'pending', 2),
    ('Skyline', 100000, 'Gold builder badge', 'pending', 3)
ON CONFLICT (name) DO NOTHING;


INSERT INTO schema_version (version) VALUES (1), (2), (3), (4), (5), (6), (7), (8)
    ON CONFLICT DO NOTHING;
