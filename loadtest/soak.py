"""``python -m loadtest.soak`` (``make soak``): an hour of load, then: did anything grow?

Starts ``pillarpayout serve`` on a fresh embedded data dir, runs the harness
against it (``--clients`` spectators and bettors, bets every round) for
``--minutes``, and every ``--every`` seconds samples the server's RSS, its
open file descriptors and Redis's ``used_memory``. At the end it stops the
server, runs ``pillarpayout audit``, and calls each series flat when the
median of its last quarter is within 10 % (plus a small allowance) of the
median of its second quarter (the first is warm-up). Exit 0 when everything
is flat, the audit is clean, the harness counted no error and every bettor
got a session (the server takes 60 new accounts a minute: 200 bettors need
about 3.5 minutes of the hour to be in).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from loadtest.serving import embedded_env, free_port, harness_command, start_serve, wait_healthy
from loadtest.system import raise_nofile

ALLOWANCE = {"rss_bytes": 8 * 2**20, "open_fds": 16, "redis_used_memory": 2 * 2**20}


def _sample(pid: int, redis_client: redis.Redis) -> dict[str, float]:
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) * 1024
    info = redis_client.info("memory")
    return {
        "t": time.time(),
        "rss_bytes": rss,
        "open_fds": len(os.listdir(f"/proc/{pid}/fd")),
        "redis_used_memory": int(info["used_memory"]),
    }


def flatness(samples: list[dict[str, float]]) -> dict[str, dict[str, float | bool]]:
    quarter = max(1, len(samples) // 4)
    early, late = samples[quarter : 2 * quarter] or samples, samples[-quarter:]
    out: dict[str, dict[str, float | bool]] = {}
    for key, allowance in ALLOWANCE.items():
        before = statistics.median(s[key] for s in early)
        after = statistics.median(s[key] for s in late)
        out[key] = {
            "second_quarter": before,
            "last_quarter": after,
            "flat": after <= before * 1.10 + allowance,
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--bettors", type=int, default=200)
    parser.add_argument("--every", type=float, default=30.0, help="seconds between samples")
    parser.add_argument("--json", type=Path, default=Path("soak.json"))
    args = parser.parse_args(argv)
    raise_nofile()
    data_dir = Path(tempfile.mkdtemp(prefix="pp-soak-"))
    port = free_port()
    serve = start_serve(data_dir, port)
    try:
        wait_healthy(port)
    except RuntimeError as exc:
        print(f"soak: {exc}", file=sys.stderr)
        serve.kill()
        return 2
    from pillarpayout_ws.storage.embedded import EmbeddedServers

    redis_client = redis.Redis.from_url(EmbeddedServers(data_dir).redis_url)
    harness_json = data_dir / "harness.json"
    harness = subprocess.Popen(
        harness_command(
            port,
            "--clients",
            str(args.clients),
            "--bettors",
            str(args.bettors),
            "--duration",
            str(args.minutes * 60),
            "--json",
            str(harness_json),
        ),
        stdin=subprocess.DEVNULL,
    )
    samples: list[dict[str, float]] = []
    try:
        while harness.poll() is None:
            samples.append(_sample(serve.pid, redis_client))
            last = samples[-1]
            print(
                f"soak: {len(samples)} samples, RSS {last['rss_bytes'] / 2**20:.1f} MiB, "
                f"{last['open_fds']:.0f} fds, Redis {last['redis_used_memory'] / 2**20:.1f} MiB",
                file=sys.stderr,
                flush=True,
            )
            with contextlib.suppress(subprocess.TimeoutExpired):
                harness.wait(timeout=args.every)
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(120)
        redis_client.close()
    audit = subprocess.run(
        [sys.executable, "-m", "pillarpayout_ws", "audit", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        env=embedded_env(),
        check=False,
    )
    load: dict[str, Any] = json.loads(harness_json.read_text()) if harness_json.exists() else {}
    flat = flatness(samples) if samples else {}
    result = {
        "minutes": args.minutes,
        "clients": args.clients,
        "bettors": args.bettors,
        "samples": samples,
        "flatness": flat,
        "audit_clean": audit.returncode == 0,
        "audit_report": audit.stdout,
        "harness": {k: v for k, v in load.items() if k not in ("timeline", "server_metrics")},
    }
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    for key, verdict in flat.items():
        print(
            f"{key:18s} {verdict['second_quarter']:>14,.0f} -> {verdict['last_quarter']:>14,.0f}"
            f"  {'flat' if verdict['flat'] else 'GREW'}"
        )
    print(
        f"audit: {'clean' if audit.returncode == 0 else 'PROBLEMS'}; "
        f"harness errors: {load.get('errors', 'no report')}; rounds: {load.get('rounds')}; "
        f"bettors logged in: {load.get('bettors_logged_in')} of {args.bettors}"
    )
    ok = (
        bool(flat)
        and all(v["flat"] for v in flat.values())
        and audit.returncode == 0
        and load.get("errors") == 0
        and load.get("bettors_logged_in") == args.bettors
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
