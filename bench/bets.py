"""Bet throughput: ``--rate`` bets per second during one betting window, ack latency.

Accounts are provisioned straight into PostgreSQL (users funded through the
ledger, sessions with known tokens) before ``serve`` starts, because
registering thousands of players would measure argon2 (64 MiB, by design
slow), not bets. Each bettor then ``resume``s, waits for the next ``betting``
frame, and sends one bet at its slot in the window; the latency is from
sending the frame to receiving its ``bet_accepted`` (which the server sends
only after the Redis group commit). Run with ``python -m bench.bets``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import multiprocessing as mp
import statistics
import tempfile
import time
import urllib.request
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import orjson
import uvloop

from bench.common import free_port, percentile, raise_nofile, start_serve, stop
from loadtest.client import ClientStats, GameClient, open_client
from pillarpayout_ws.storage import open_storage


async def provision(data_dir: Path, count: int) -> list[str]:
    tokens = [hashlib.sha256(f"bench-token-{i}".encode()).hexdigest() for i in range(count)]
    storage = await open_storage(data_dir=data_dir)
    try:
        db = storage.db
        await db.execute(
            "INSERT INTO users (username, email, password_hash, balance) "
            "SELECT 'bettor' || i, 'bettor' || i || '@example.com', 'x', 1000000 "
            "FROM generate_series(0, $1 - 1) AS i",
            count,
        )
        await db.execute(
            "INSERT INTO ledger (user_id, kind, amount, idem_key) "
            "SELECT id, 'grant', 1000000, 'grant:bench:' || id FROM users"
        )
        await db.execute(
            "INSERT INTO sessions (token_sha256, user_id, expires_at) "
            "SELECT encode(sha256(convert_to(t, 'UTF8')), 'hex'), u.id, now() + interval '1 day' "
            "FROM unnest($1::text[]) WITH ORDINALITY AS x(t, n) "
            "JOIN users u ON u.username = 'bettor' || (x.n - 1)",
            tokens,
        )
    finally:
        await storage.close()
    return tokens


def worker(port: int, tokens: list[str], rate: float, offset: int, pipe: Connection) -> None:
    raise_nofile()
    uvloop.run(_worker(port, tokens, rate, offset, pipe))


async def _worker(port: int, tokens: list[str], rate: float, offset: int, pipe: Connection) -> None:
    stats = ClientStats()
    sent: dict[GameClient, float] = {}
    latencies: list[float] = []
    errors: dict[str, int] = {}
    betting = asyncio.Event()
    all_in = asyncio.Event()  # every bettor has its session
    all_acked = asyncio.Event()  # every bet sent has its ack
    sessions = 0
    sending = True

    def on_frame(client: GameClient, payload: bytes) -> None:
        nonlocal sessions
        if payload.startswith(b'{"type":"bet_accepted"'):
            latencies.append((time.perf_counter() - sent.pop(client)) * 1000)
            if not sent and not sending:
                all_acked.set()
        elif payload.startswith(b'{"type":"session"'):
            sessions += 1
            if sessions == len(tokens):
                all_in.set()
        elif payload.startswith(b'{"type":"betting"'):
            betting.set()
        elif payload.startswith(b'{"type":"error"'):
            code = str(orjson.loads(payload)["code"])
            errors[code] = errors.get(code, 0) + 1

    clients = []
    for i, token in enumerate(tokens):
        client = await open_client("127.0.0.1", port, stats, on_frame=on_frame, measure=False)
        client.send({"type": "resume", "token": token})
        clients.append(client)
        if i % 200 == 199:
            await asyncio.sleep(0.01)
    await all_in.wait()
    pipe.send("ready")
    betting.clear()
    await betting.wait()
    start = time.perf_counter()
    # Interleaved slots: worker k of P sends bets k, k+P, k+2P, ... of the whole stream.
    for i, client in enumerate(clients):
        slot = start + (offset + i * 2) / rate
        delay = slot - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        sent[client] = time.perf_counter()
        client.send({"type": "bet", "amount": 100 + i % 900, "auto_cashout": 2.0})
    sending = False
    if sent:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_acked.wait(), 10)
    pipe.send(
        {
            "latencies": latencies,
            "errors": errors,
            "unanswered": len(sent),
            "elapsed_s": time.perf_counter() - start,
        }
    )
    # Hang up only once every worker is done: a disconnect storm while another
    # worker still measures would be measured too.
    await asyncio.get_running_loop().run_in_executor(None, pipe.recv)
    for client in clients:
        if client.transport is not None:
            client.transport.abort()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bettors", type=int, default=8000)
    parser.add_argument("--rate", type=float, default=2000.0, help="bets per second")
    args = parser.parse_args(argv)
    raise_nofile()
    data_dir = Path(tempfile.mkdtemp(prefix="pp-bench-bets-"))
    tokens = uvloop.run(provision(data_dir, args.bettors))
    window_ms = int(args.bettors / args.rate * 1000) + 1500
    port = free_port()
    server = start_serve(
        data_dir,
        port,
        "--betting-ms",
        str(window_ms),
        "--cooldown-ms",
        "500",
        "--max-connections-per-ip",
        str(args.bettors + 10),
    )
    try:
        time.sleep(3)
        halves = [tokens[0::2], tokens[1::2]]
        pipes, procs = [], []
        for k, part in enumerate(halves):
            parent, child = mp.Pipe()
            proc = mp.Process(target=worker, args=(port, part, args.rate, k, child), daemon=True)
            proc.start()
            pipes.append(parent)
            procs.append(proc)
        for p in pipes:
            assert p.recv() == "ready"
        results = [p.recv() for p in pipes]
        for p in pipes:
            p.send("stop")
        for proc in procs:
            proc.join(10)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            metrics = resp.read().decode()
    finally:
        stop(server, 120)
    latencies = [x for r in results for x in r["latencies"]]
    errors: dict[str, int] = {}
    for r in results:
        for code, n in r["errors"].items():
            errors[code] = errors.get(code, 0) + n
    out = {
        "bettors": args.bettors,
        "target_rate": args.rate,
        "achieved_rate": round(len(latencies) / max(r["elapsed_s"] for r in results), 1),
        "acked": len(latencies),
        "unanswered": sum(r["unanswered"] for r in results),
        "errors": errors,
        "server_metrics": [
            line
            for line in metrics.splitlines()
            if line.startswith(
                (
                    "pillarpayout_redis_commit_seconds_bucket",
                    'pillarpayout_answer_seconds_bucket{command="bet"',
                    "pillarpayout_gc_seconds_sum",
                    "pillarpayout_gc_seconds_count",
                )
            )
        ],
        "bet_ack_ms": {
            "p50": round(statistics.median(latencies), 2) if latencies else None,
            "p90": round(percentile(latencies, 90), 2),
            "p99": round(percentile(latencies, 99), 2),
            "max": round(max(latencies), 2) if latencies else None,
        },
    }
    print(out, flush=True)
    return out


if __name__ == "__main__":
    main()
