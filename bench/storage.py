"""Storage benchmarks on the embedded servers.

- flush of one completed round with 10,000 bets (settle + one PostgreSQL
  transaction), median of 9 rounds, with automatic garbage collection off as
  in serve;
- the group commit of 1,000 write-ahead records to Redis, median;
- start-up of ``pillarpayout serve`` to a 200 ``/healthz``: on a new data dir
  (initdb included) and on one whose servers are already running (adopted).

Run with ``python -m bench.storage``.
"""

from __future__ import annotations

import gc
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop

from bench.common import free_port, start_serve, stop, wait_healthy
from pillarpayout_ws.engine.records import BetPlaced, CashedOut, RoundCrashed, RoundOpened
from pillarpayout_ws.storage import open_storage
from pillarpayout_ws.storage.settle import settle_round


async def _storage_numbers(rounds: int = 9, commits: int = 50) -> dict[str, Any]:
    storage = await open_storage(data_dir=Path(tempfile.mkdtemp(prefix="pp-bench-")))
    try:
        db = storage.db
        await db.execute(
            "INSERT INTO users (username, email, password_hash, balance) "
            "SELECT 'bench' || i, 'bench' || i || '@example.com', 'x', 0 "
            "FROM generate_series(1, 10000) AS i"
        )
        user_ids = [r["id"] for r in await db.fetch("SELECT id FROM users ORDER BY id")]
        # Funded through the ledger, so the audit's invariants hold.
        await db.execute(
            "INSERT INTO ledger (user_id, kind, amount, idem_key) "
            "SELECT id, 'grant', 1000000, 'grant:bench:' || id FROM users"
        )
        await db.execute("UPDATE users SET balance = 1000000")
        chain = await db.create_seed_chain("ab" * 32, 1000, "cd" * 32, "bench")
        flush_ms = []
        for rid in range(1, rounds + 1):
            opened = int(time.time() * 1000)  # bets spread over a 5 s window, as in play
            records: list[Any] = [RoundOpened(rid, chain, rid, "00" * 32, "b", 1.0, opened)]
            for i, uid in enumerate(user_ids):
                placed = opened + i // 2
                records.append(BetPlaced(rid, uid, None, 100 + i % 900, None, 0, placed))
            for i, uid in enumerate(user_ids[::2]):
                records.append(
                    CashedOut(rid, uid, 150, (100 + (2 * i) % 900) * 150 // 100, 0, "auto")
                )
            records.append(RoundCrashed(rid, 200, 11_553, "11" * 32, opened + 16_553))
            # As in serve, which runs with automatic collection off and collects
            # once per round (README, "Garbage collection").
            gc.collect()
            gc.disable()
            try:
                started = time.perf_counter()
                await db.flush([settle_round(records)])
                flush_ms.append((time.perf_counter() - started) * 1000)
            finally:
                gc.enable()
        batch = [BetPlaced(10_000, uid, None, 100, None, 0) for uid in user_ids[:1000]]
        await storage.live.commit([RoundOpened(10_000, chain, 999, "00" * 32, "b", 1.0)])
        commit_ms = []
        for _ in range(commits):
            started = time.perf_counter()
            await storage.live.commit(batch)
            commit_ms.append((time.perf_counter() - started) * 1000)
        return {
            "flush_10k_bets_ms_median": round(statistics.median(flush_ms), 1),
            "flush_10k_bets_ms_all": [round(x, 1) for x in flush_ms],
            "group_commit_1000_ms_median": round(statistics.median(commit_ms), 2),
            "group_commit_1000_ms_max": round(max(commit_ms), 2),
        }
    finally:
        await storage.close()


def _startup_s(data_dir: Path) -> float:
    proc = start_serve(data_dir, port := free_port())
    try:
        return wait_healthy(port)
    finally:
        stop(proc)


def main() -> dict[str, Any]:
    out = uvloop.run(_storage_numbers())
    data_dir = Path(tempfile.mkdtemp(prefix="pp-bench-start-"))
    out["serve_startup_new_data_dir_s"] = round(_startup_s(data_dir), 2)
    out["serve_startup_existing_data_dir_s"] = round(_startup_s(data_dir), 2)
    print(out, flush=True)
    return out


if __name__ == "__main__":
    main()
