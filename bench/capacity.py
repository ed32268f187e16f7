"""Capacity: the most clients ``serve`` holds at 10 Hz within a tick-delay p99 budget.

Starts ``pillarpayout serve`` on embedded storage (ticks every 100 ms, short
betting and cooldown windows so ticks flow most of the time) and runs the
load-test harness's ``--find-capacity`` against it: the client count grows by
half each step until p99 passes the budget, then the gap is halved twice. The
load generator shares the machine. Run with
``python -m bench.capacity [--budget-ms 50] [--start 2000]``.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import free_port, harness_command, start_serve, wait_healthy


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


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(120)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-ms", type=float, default=50.0)
    parser.add_argument("--start", type=int, default=2000, help="clients in the first step")
    parser.add_argument("--max-clients", type=int, default=30_000)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per step")
    args = parser.parse_args(argv)
    server, _, port = start_game()
    try:
        out = find_capacity(
            port,
            budget_ms=args.budget_ms,
            start=args.start,
            max_clients=args.max_clients,
            duration=args.duration,
        )
    finally:
        stop(server)
    print(out, flush=True)
    return out


if __name__ == "__main__":
    main()
