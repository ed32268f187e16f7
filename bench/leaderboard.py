"""Players' pages on a database holding 1,000,000 bets (issue 18).

A fresh embedded PostgreSQL is filled the fast way (``generate_series``):
20,000 users, 5,000 crashed rounds of 200 bets each, placed over the last 60
days (a day holds about 17,000 bets, a week about 117,000); two bets in three
cashed out, one in 97 refunded. Then the real path: ``summarise_bets`` sums
them into ``player_stats`` (timed, as a first start after an upgrade would:
transactions of about ``SUMMARY_CHUNK`` bets), and rounds of 10,000 bets are
flushed and summed as ``serve`` would (both timed, medians; ``--flushes``
pairs, one flush with the user index ``/api/me/bets`` pages by,
``bets_user_id``, one with the one it replaced, ``bets_user_recent``).

Then each query behind the pages is timed, uncached, median of ``--repeat``:
the 9 leaderboards (by x period, target <= 50 ms), a profile
(``/api/users/NAME``), and a page of ``/api/me/bets`` (the first, and one
deep in a player's history).

Run with ``python -m bench.leaderboard``; ``make bench`` runs it too.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import uvloop

from pillarpayout_ws.engine.records import BetPlaced, CashedOut, RoundCrashed, RoundOpened
from pillarpayout_ws.server.api import LEADERBOARD_SIZE, PERIODS, period_start
from pillarpayout_ws.storage import open_storage
from pillarpayout_ws.storage.postgres import LEADERBOARD_VALUES, Database
from pillarpayout_ws.storage.settle import settle_round

USERS = 20_000
ROUNDS = 5_000
PER_ROUND = 200  # 1,000,000 bets
DAYS = 60
TARGET_MS = 50.0


async def _fill(db: Database) -> None:
    await db.execute(
        "INSERT INTO users (username, email, password_hash, balance) "
        "SELECT 'player' || i, 'player' || i || '@example.com', 'x', 1000000000 "
        f"FROM generate_series(1, {USERS}) AS i"
    )
    chain = await db.create_seed_chain("ab" * 32, ROUNDS + 100, "cd" * 32, "bench")
    # Round r is played at now - (ROUNDS - r) * (DAYS / ROUNDS) days.
    step = f"make_interval(secs => {DAYS * 86400 / ROUNDS})"
    await db.execute(
        "INSERT INTO rounds (id, chain_id, nonce, seed_hash, server_seed, client_seed, "
        "house_edge, crash_point_x100, status, bets_count, started_at, ended_at) "
        f"SELECT r, {chain}, r, repeat('0', 64), repeat('1', 64), 'bench', 1.0, "
        f"101 + (r * 37) % 2000, 'crashed', {PER_ROUND}, "
        f"now() - ({ROUNDS} - r) * {step}, now() - ({ROUNDS} - r) * {step} "
        f"FROM generate_series(1, {ROUNDS}) AS r"
    )
    # Bet i: round (i-1)/PER_ROUND + 1, user (i * 7919) % USERS + 1 (distinct
    # within a round); i % 97 = 0 refunded, else i % 3 = 0 lost, else cashed
    # out at 1.01x + (i * 31) % 900 hundredths.
    await db.execute(
        f"""
        INSERT INTO bets (user_id, round_id, bet_amount, auto_cashout_x100,
                          cash_out_multiplier_x100, winnings, status, placed_at)
        SELECT (i * 7919) % {USERS} + 1, r, a,
               NULL,
               CASE WHEN st = 'cashed_out' THEN m END,
               CASE WHEN st = 'cashed_out' THEN a * m / 100 ELSE 0 END,
               st,
               now() - ({ROUNDS} - r) * {step} - make_interval(secs => (i % {PER_ROUND}) / 40.0)
        FROM generate_series(1::bigint, {ROUNDS * PER_ROUND}) AS i,
             LATERAL (SELECT (i - 1) / {PER_ROUND} + 1 AS r, 100 + (i % 900) * 10 AS a,
                             101 + (i * 31) % 900 AS m,
                             CASE WHEN i % 97 = 0 THEN 'refunded'
                                  WHEN i % 3 = 0 THEN 'lost'
                                  ELSE 'cashed_out' END AS st) AS v
        """
    )
    await db.execute("ANALYZE")


def _big_round(round_id: int, chain: int, user_ids: list[int]) -> list[Any]:
    opened = int(time.time() * 1000)
    records: list[Any] = [RoundOpened(round_id, chain, round_id, "00" * 32, "b", 1.0, opened)]
    for i, uid in enumerate(user_ids):
        records.append(BetPlaced(round_id, uid, None, 100 + i % 900, None, 0, opened + i // 2))
    for i, uid in enumerate(user_ids[::2]):
        records.append(CashedOut(round_id, uid, 150, (100 + (2 * i) % 900) * 150 // 100, 0, "auto"))
    records.append(RoundCrashed(round_id, 200, 11_553, "11" * 32, opened + 16_553))
    return records


async def _flushes(
    db: Database, chain: int, first: int, count: int
) -> tuple[list[float], list[float]]:
    """Flush ``count`` rounds of 10,000 bets, each then summed; (flush ms, summary ms)."""
    user_ids = list(range(1, 10_001))
    flush_ms, summary_ms = [], []
    for round_id in range(first, first + count):
        records = _big_round(round_id, chain, user_ids)
        gc.collect()
        started = time.perf_counter()
        await db.flush([settle_round(records)])
        flush_ms.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        assert await db.summarise_bets() == len(user_ids)
        summary_ms.append((time.perf_counter() - started) * 1000)
    return flush_ms, summary_ms


def _board_query(
    db: Database, by: str, period: str, starts: date
) -> Callable[[], Awaitable[object]]:
    return lambda: db.leaderboard(by, period, starts, LEADERBOARD_SIZE)


async def _median_ms(repeat: int, call: Callable[[], Awaitable[object]]) -> float:
    await call()  # warm: plans cached, pages in memory
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        await call()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 2)


async def _numbers(repeat: int, flushes: int, explain: bool) -> dict[str, Any]:
    storage = await open_storage(data_dir=Path(tempfile.mkdtemp(prefix="pp-bench-lb-")))
    db = storage.db
    try:
        started = time.perf_counter()
        await _fill(db)
        fill_s = time.perf_counter() - started
        started = time.perf_counter()
        summed = 0
        while added := await db.summarise_bets():  # as PlayerStats.summarise_now
            summed += added
        first_summary_s = time.perf_counter() - started
        await db.execute("ANALYZE")
        today = datetime.now(UTC).date()
        boards: dict[str, float] = {}
        for by in LEADERBOARD_VALUES:
            for period in PERIODS:
                starts = period_start(period, today)
                rows = await db.leaderboard(by, period, starts, LEADERBOARD_SIZE)
                assert len(rows) == LEADERBOARD_SIZE, (by, period, len(rows))
                boards[f"{by}/{period}"] = await _median_ms(
                    repeat, _board_query(db, by, period, starts)
                )
        if explain:
            for by, (value, counted) in LEADERBOARD_VALUES.items():
                for period in PERIODS:
                    plan = await db.fetch(
                        f"EXPLAIN ANALYZE SELECT u.username, {value} AS value "
                        "FROM player_stats s JOIN users u ON u.id = s.user_id "
                        f"WHERE s.period = $1 AND s.starts = $2 AND {counted} "
                        f"ORDER BY {value} DESC, s.user_id LIMIT 50",
                        period,
                        period_start(period, today),
                    )
                    print(f"-- {by}/{period}", *(r[0] for r in plan), sep="\n", flush=True)
        rng = random.Random(18)
        names = [f"PLAYER{rng.randint(1, USERS)}" for _ in range(repeat + 1)]
        ids = [rng.randint(1, USERS) for _ in range(repeat + 1)]
        profile = await _median_ms(repeat, lambda: db.player_profile(names.pop()))
        first_page = await _median_ms(repeat, lambda: db.bets_of_user(ids.pop(), 2**62, 20))
        ids = [rng.randint(1, USERS) for _ in range(repeat + 1)]
        deep = await _median_ms(repeat, lambda: db.bets_of_user(ids.pop(), 500_000, 20))
        # Rounds of 10,000 bets, flushed and then summed as serve does (its own
        # transaction right after the flush's commit); alternately with the
        # user index it replaced (bets_user_recent), for what each costs a flush.
        chain = (await db.seed_chains())[0].id
        summary_ms: list[float] = []
        indexes = {
            "bets_user_id": "(user_id, id DESC)",
            "bets_user_recent": "(user_id, round_id DESC)",
        }
        times: dict[str, list[float]] = {name: [] for name in indexes}
        current = "bets_user_id"
        for n in range(2 * flushes):
            # Each index flushed first in half of the pairs: ABBAABBA...
            name = list(indexes)[(n + n // 2) % 2]
            if name != current:
                await db.execute(f"DROP INDEX {current}")
                await db.execute(f"CREATE INDEX {name} ON bets {indexes[name]}")
                current = name
            await db.execute("CHECKPOINT")  # no writeback of the last step in the timing
            flushed, summed_ms = await _flushes(db, chain, ROUNDS + 1 + n, 1)
            times[name] += flushed
            summary_ms += summed_ms
        flush_ms, bare_ms = times["bets_user_id"], times["bets_user_recent"]
        if current != "bets_user_id":
            await db.execute(f"DROP INDEX {current}")
            await db.execute("CREATE INDEX bets_user_id ON bets (user_id, id DESC)")
        bets = (await db.fetch("SELECT count(*) AS n FROM bets"))[0]["n"]
        stats_rows = (await db.fetch("SELECT count(*) AS n FROM player_stats"))[0]["n"]
        return {
            "bets": bets,
            "users": USERS,
            "player_stats_rows": stats_rows,
            "fill_s": round(fill_s, 1),
            "first_summary_bets": summed,
            "first_summary_s": round(first_summary_s, 1),
            "flush_10k_bets_ms_median": round(statistics.median(flush_ms), 1),
            "flush_10k_bets_with_bets_user_recent_ms_median": round(statistics.median(bare_ms), 1),
            "flush_10k_bets_ms_all": [round(x) for x in flush_ms],
            "flush_10k_bets_with_bets_user_recent_ms_all": [round(x) for x in bare_ms],
            "summary_10k_bets_ms_median": round(statistics.median(summary_ms), 1),
            "leaderboard_ms_median": boards,
            "leaderboard_ms_max": max(boards.values()),
            "profile_ms_median": profile,
            "my_bets_first_page_ms_median": first_page,
            "my_bets_deep_page_ms_median": deep,
            "repeat": repeat,
            "target_ms": TARGET_MS,
        }
    finally:
        await storage.close()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=21, help="timings per query")
    parser.add_argument("--flushes", type=int, default=6, help="pairs of 10,000-bet rounds flushed")
    parser.add_argument("--explain", action="store_true", help="print the leaderboards' plans")
    args = parser.parse_args(argv)
    out = uvloop.run(_numbers(args.repeat, args.flushes, args.explain))
    print(out, flush=True)
    return out


if __name__ == "__main__":
    main()
