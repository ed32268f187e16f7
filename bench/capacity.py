"""Capacity: the most clients held at 10 Hz within a tick-delay p99 budget, ``serve``
against the bare floor in the same run.

``main`` climbs a ladder of client counts (x1.25 a step from ``--start``),
running the floor (``bench/floor.py``) and ``serve`` (ticks flowing most of
the time: 100 ms betting and cooldown) in turn ``--repeat`` times at each
count with the fan-out benchmark's minimal clients, and takes the median
p99. A server holds a count when that median is within the budget, every
client stayed connected, and at most 0.5 % of the spectators' ticks were
superseded (a server that keeps its p99 by dropping late ticks does not
hold). Each server climbs until it first fails; then the
gap between its last held and first failed count is halved twice. The
headline is capacity(serve) / capacity(floor): noise on this shared machine
moves both. The load generator shares the machine. Run with
``python -m bench.capacity [--budget-ms 50] [--start 2000] [--repeat 3]``.

``find_capacity`` runs the load-test harness's ``--find-capacity`` against a
running game (the relay benchmark uses it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import fanout
from bench.common import free_port, harness_command, raise_nofile, start_serve, wait_healthy


def find_capacity(
    port: int,
    *,
    budget_ms: float = 50.0,
    start: int = 2000,
    max_clients: int = 30_000,
    duration: float = 10.0,
    spectator_ports: tuple[int, ...] = (),
) -> dict[str, Any]:
    """Run the harness's ``--find-capacity`` against the game on ``port`` (spectators
    spread over ``spectator_ports`` when given) and sum up its steps."""
    report = Path(tempfile.mkdtemp(prefix="pp-bench-capacity-")) / "capacity.json"
    spread: list[str] = []
    for other in spectator_ports:
        spread += ["--spectator-url", f"ws://127.0.0.1:{other}/ws"]
    started = time.monotonic()
    subprocess.run(
        harness_command(
            port,
            *spread,
            "--find-capacity",
            str(budget_ms),
            "--clients",
            str(start),
            "--max-clients",
            str(max_clients),
            "--duration",
            str(duration),
            "--json",
            str(report),
        ),
        check=False,
    )
    result = json.loads(report.read_text())
    return {
        "budget_ms": budget_ms,
        "capacity": result["capacity"],
        "first_over_budget": result["first_over_budget"],
        "steps": [
            {
                "clients": s["clients"],
                "connected": s["clients_connected"],
                "tick_delay_ms": s["tick_delay_ms"],
                "ticks_missed": s["ticks_missed"],
                "errors": s["errors"],
            }
            for s in result["steps"]
        ],
        "search_s": round(time.monotonic() - started, 1),
    }


def start_game() -> tuple[subprocess.Popen[bytes], Path, int]:
    """``serve`` with ticks flowing most of the time; its data dir and port."""
    data_dir = Path(tempfile.mkdtemp(prefix="pp-bench-game-"))
    port = free_port()
    server = start_serve(data_dir, port, "--betting-ms", "100", "--cooldown-ms", "100")
    wait_healthy(port)
    return server, data_dir, port


def median_run(kind: str, clients: int, args: argparse.Namespace) -> dict[str, Any]:
    """``--repeat`` runs of one server at one count: the median p99 and whether it held."""
    runs = [fanout.run_case(kind, clients, args.window, args.procs) for _ in range(args.repeat)]
    p99s = sorted(r["tick_delay_ms"]["p99"] for r in runs)
    p99 = statistics.median(p99s)
    wanted = clients // args.procs * args.procs
    connected = min(r["connected_at_end"] for r in runs)
    dropped = sum(r["ticks_superseded"] for r in runs)
    superseded = dropped / max(1, dropped + sum(r["ticks"] for r in runs))
    return {
        "kind": kind,
        "clients": wanted,
        "p99_ms": p99s,
        "median_p99_ms": p99,
        "connected_at_end_min": connected,
        "ticks_skipped": sum(r["ticks_skipped"] for r in runs),
        "ticks_superseded_share": round(superseded, 4),
        # A server that kept its p99 by dropping late ticks for newer ones did not hold.
        "held": p99 <= args.budget_ms and connected >= wanted and superseded <= 0.005,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-ms", type=float, default=50.0)
    parser.add_argument("--start", type=int, default=2000, help="clients in the first step")
    parser.add_argument("--max-clients", type=int, default=30_000)
    parser.add_argument("--window", type=float, default=10.0, help="seconds measured per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per server and count")
    parser.add_argument("--procs", type=int, default=2)
    args = parser.parse_args(argv)
    raise_nofile()
    kinds = ("floor", "serve")
    held = dict.fromkeys(kinds, 0)
    over: dict[str, int | None] = dict.fromkeys(kinds, None)
    steps: list[dict[str, Any]] = []

    def step(kind: str, clients: int) -> None:
        result = median_run(kind, clients, args)
        steps.append(result)
        print(result, flush=True)
        if result["held"]:
            held[kind] = max(held[kind], clients)
        else:
            over[kind] = min(over[kind] or clients, clients)

    clients = args.start
    while clients <= args.max_clients and any(over[k] is None for k in kinds):
        for kind in kinds:
            if over[kind] is None:
                step(kind, clients)
        clients = int(clients * 1.25)
    for _ in range(2):
        for kind in kinds:
            bad = over[kind]
            if bad is not None and held[kind] and bad - held[kind] > 100:
                step(kind, (held[kind] + bad) // 2)
    out = {
        "budget_ms": args.budget_ms,
        "repeat": args.repeat,
        "capacity": held["serve"],
        "floor_capacity": held["floor"],
        "ratio": round(held["serve"] / held["floor"], 3) if held["floor"] else None,
        "first_over_budget": over["serve"],
        "floor_first_over_budget": over["floor"],
        "steps": steps,
    }
    print(out, flush=True)
    return out


if __name__ == "__main__":
    main()
