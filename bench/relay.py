"""Relays: the hop's added tick delay, and spectators held with a relay vs without.

Starts ``pillarpayout serve`` (embedded storage, ticks flowing most of the
time) and one ``pillarpayout relay`` on its Redis, then:

1. the hop: ``--hop-clients`` measuring spectators on the game and as many on
   the relay, side by side for ``--window`` seconds; tick delay (server
   ``ts`` to receipt) p50/p99 for each, and the difference;
2. capacity within ``--budget-ms`` tick p99 (the harness's
   ``--find-capacity``): spectators all on the game, then spread half and
   half over the game and the relay. Both in the same session on the same
   machine, load generator included.

Run with ``python -m bench.relay``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import uvloop

from bench.capacity import find_capacity, start_game
from bench.common import free_port, percentile, raise_nofile, spawn, stop, wait_healthy
from loadtest.client import ClientStats, open_client


async def _hop(game: int, relay: int, clients: int, window: float) -> dict[str, Any]:
    groups = {"game": (game, ClientStats()), "relay": (relay, ClientStats())}
    connections = []
    for port, stats in groups.values():
        for _ in range(clients):
            connections.append(await open_client("127.0.0.1", port, stats))
    await asyncio.sleep(1.0)  # settle: every client has had its hello
    for _, stats in groups.values():
        stats.record_delays = True
    await asyncio.sleep(window)
    out: dict[str, Any] = {}
    for name, (_, stats) in groups.items():
        delays = list(stats.tick_delays_ms)
        out[name] = {
            "p50": round(percentile(delays, 50), 2),
            "p99": round(percentile(delays, 99), 2),
            "samples": len(delays),
        }
    for client in connections:
        assert client.transport is not None
        client.transport.close()
    out["hop_p50_ms"] = round(out["relay"]["p50"] - out["game"]["p50"], 2)
    out["hop_p99_ms"] = round(out["relay"]["p99"] - out["game"]["p99"], 2)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hop-clients", type=int, default=200)
    parser.add_argument("--window", type=float, default=15.0)
    parser.add_argument("--budget-ms", type=float, default=50.0)
    parser.add_argument("--start", type=int, default=2000)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per capacity step")
    args = parser.parse_args(argv)
    raise_nofile()
    server, data_dir, port = start_game()
    relay_port = free_port()
    relay = spawn(
        "-m", "pillarpayout_ws", "relay", "--data-dir", str(data_dir), "--port", str(relay_port)
    )
    try:
        wait_healthy(relay_port)
        hop = uvloop.run(_hop(port, relay_port, args.hop_clients, args.window))
        print({"hop": hop}, flush=True)
        common: dict[str, Any] = {
            "budget_ms": args.budget_ms,
            "start": args.start,
            "duration": args.duration,
        }
        started = time.monotonic()
        alone = find_capacity(port, **common)
        with_relay = find_capacity(port, spectator_ports=(relay_port, port), **common)
    finally:
        stop(relay)
        stop(server)
    out = {
        "hop": hop,
        "capacity_game_alone": alone["capacity"],
        "capacity_game_and_relay": with_relay["capacity"],
        "alone": alone,
        "with_relay": with_relay,
        "search_s": round(time.monotonic() - started, 1),
    }
    print(out, flush=True)
    return out


if __name__ == "__main__":
    main()
