"""``python -m loadtest``: load a PillarPayout server the way players and spectators do.

Exit status: 0 when the run saw no errors, 1 when it counted any (protocol
errors, failed checks, dropped connections, failed connects), 2 when it could
not run at all (bad flags, an unreachable URL, a server that is not ours, a
client count this machine cannot open).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
from websockets.exceptions import InvalidHandshake, InvalidURI
from websockets.sync.client import connect

from loadtest.run import Settings, Target, run_load
from loadtest.system import is_loopback, nofile_hard_limit

FILES_PER_PROCESS = 64  # beyond its sockets, what a worker process keeps open
ONE_ADDRESS_PORTS = 28_000  # ephemeral ports towards one address:port
CAPACITY_GROWTH = 1.5


class UsageError(Exception):
    """The run cannot start: the message says why, in one line."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m loadtest",
        description="Load a PillarPayout server with spectators and bettors, and check it.",
    )
    p.add_argument("--url", default="ws://127.0.0.1:8765/ws", help="the game's WebSocket URL")
    p.add_argument(
        "--spectator-url",
        action="append",
        default=[],
        metavar="URL",
        help="spread spectators over these URLs (relays), in turn; repeatable [--url]",
    )
    p.add_argument("--clients", type=int, default=1000, help="connections in all [1000]")
    p.add_argument(
        "--bettors", type=int, default=0, help="how many of the clients bet every round [0]"
    )
    p.add_argument(
        "--duration", type=float, default=30.0, help="seconds to hold the load once connected"
    )
    p.add_argument("--procs", type=int, default=os.cpu_count() or 1, help="load processes [cores]")
    p.add_argument("--ramp", type=float, default=2000.0, help="connects per second [2000]")
    p.add_argument("--json", type=Path, help="write the figures as JSON to this file")
    p.add_argument("--plot", type=Path, help="draw tick delay and clients over time (PNG)")
    p.add_argument("--seed", type=int, default=1, help="seeds bettor names and choices [1]")
    p.add_argument(
        "--find-capacity",
        type=float,
        metavar="BUDGET_MS",
        help="grow --clients until tick p99 passes BUDGET_MS; report the largest that held",
    )
    p.add_argument("--max-clients", type=int, default=100_000, help="--find-capacity's ceiling")
    p.add_argument(
        "--house-edge", type=float, default=1.0, help="the server's house edge in percent [1.0]"
    )
    p.add_argument("--password", default="loadtest-password", help="the bettors' password")
    p.add_argument("--user-prefix", help="bettor usernames are PREFIX0, PREFIX1, ... [lt<seed>_]")
    return p.parse_args(argv)


def target_of(url: str) -> Target:
    parts = urlsplit(url)
    if parts.scheme != "ws" or not parts.hostname:
        raise UsageError(f"--url must look like ws://HOST:PORT/ws, got {url!r}")
    try:
        port = parts.port or 80
    except ValueError as exc:
        raise UsageError(f"--url has a bad port: {exc}") from None
    return Target(url, parts.hostname, port, parts.path or "/", is_loopback(parts.hostname))


def check_settings(args: argparse.Namespace, target: Target) -> None:
    if args.clients < 1:
        raise UsageError(f"--clients must be at least 1, got {args.clients}")
    if not 0 <= args.bettors <= args.clients:
        raise UsageError(f"--bettors must be between 0 and --clients, got {args.bettors}")
    if args.procs < 1 or args.ramp <= 0 or args.duration <= 0:
        raise UsageError("--procs, --ramp and --duration must be positive")
    if not 0 <= args.house_edge < 100:
        raise UsageError(f"--house-edge must be in [0, 100), got {args.house_edge}")
    check_capacity((args.find_capacity and args.max_clients) or args.clients, args.procs, target)


def check_capacity(clients: int, procs: int, target: Target) -> None:
    """Refuse a client count this machine cannot open, saying what limit stops it."""
    per_process = math.ceil(clients / procs) + FILES_PER_PROCESS
    limit = nofile_hard_limit()
    if per_process > limit:
        need = math.ceil(clients / (limit - FILES_PER_PROCESS))
        raise UsageError(
            f"{clients} clients over {procs} processes need {per_process} open files each, "
            f"but the hard limit is {limit} (ulimit -Hn): use --procs {need} or more"
        )
    if clients > ONE_ADDRESS_PORTS and not target.loopback:
        raise UsageError(
            f"{clients} clients to one remote address need more than the ~{ONE_ADDRESS_PORTS} "
            "ephemeral ports of one source address; beyond that the harness spreads over "
            "127.0.0.x, which only works against a loopback server: split the load over hosts"
        )


def probe(target: Target) -> dict[str, Any]:
    """The server's ``hello``, or a UsageError saying why there is none."""
    try:
        with connect(target.url, open_timeout=5, close_timeout=1, max_size=2**22) as ws:
            first = ws.recv(timeout=5)
    except InvalidURI as exc:
        raise UsageError(f"bad --url: {exc}") from None
    except InvalidHandshake as exc:
        raise UsageError(f"{target.url} did not accept a WebSocket: {exc}") from None
    except TimeoutError:
        raise UsageError(
            f"{target.url} sent nothing within 5 s: not a PillarPayout server?"
        ) from None
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise UsageError(f"cannot reach {target.url}: {reason}") from None
    try:
        hello = orjson.loads(first)
    except orjson.JSONDecodeError:
        hello = None
    if not isinstance(hello, dict) or hello.get("type") != "hello":
        shown = first[:80] if isinstance(first, str) else repr(first[:80])
        raise UsageError(
            f"{target.url} is not a PillarPayout server: its first frame was {shown!r}"
        )
    return hello


def server_metrics(target: Target) -> dict[str, float] | None:
    """The server's /metrics samples (histogram buckets left out), or None."""
    url = f"http://{target.host}:{target.port}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            text = resp.read().decode()
    except (OSError, urllib.error.URLError):
        return None
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        if "_bucket{" in name or name.endswith("_created") or "_created{" in name:
            continue
        try:
            samples[name] = float(value)
        except ValueError:
            continue
    return samples


def metrics_delta(before: dict[str, float] | None, after: dict[str, float] | None) -> Any:
    if before is None or after is None:
        return None
    return {k: round(v - before.get(k, 0.0), 6) for k, v in after.items() if v != before.get(k)}


def settings_for(args: argparse.Namespace, clients: int) -> Settings:
    return Settings(
        spectator_targets=tuple(target_of(url) for url in args.spectator_url),
        clients=clients,
        bettors=min(args.bettors, clients),
        duration=args.duration,
        procs=args.procs,
        ramp=args.ramp,
        seed=args.seed,
        house_edge=args.house_edge,
        user_prefix=args.user_prefix or f"lt{args.seed}_",
        password=args.password,
    )


def one_run(args: argparse.Namespace, target: Target, clients: int) -> dict[str, Any]:
    from loadtest import output

    before = server_metrics(target)
    with output.live() as show:
        result = run_load(target, settings_for(args, clients), show)
    after = server_metrics(target)
    result["url"] = target.url
    result["server_metrics"] = {"before": before, "after": after}
    result["server_metrics_delta"] = metrics_delta(before, after)
    return result


def find_capacity(args: argparse.Namespace, target: Target) -> dict[str, Any]:
    """Grow the client count by half each step until p99 passes the budget (or clients
    stop connecting), halving instead while none has held, then halve the gap
    between the last good and first bad twice."""
    from loadtest import output

    budget = args.find_capacity

    def held(result: dict[str, Any]) -> bool:
        p99 = result["tick_delay_ms"]["p99"]
        return (
            p99 is not None
            and p99 <= budget
            and result["clients_connected"] >= result["clients"]
            and result["clients_missing_ticks"] == 0
        )

    steps: list[dict[str, Any]] = []
    good, bad = 0, 0
    clients = args.clients
    while True:
        result = one_run(args, target, clients)
        steps.append(result)
        output.step_line(result, budget, held(result))
        if held(result):
            good = clients
            clients = min(args.max_clients, int(clients * CAPACITY_GROWTH))
            if good >= args.max_clients or (bad and clients >= bad):
                break
        elif good:
            bad = clients
            break
        else:  # the first step was already over: halve until one holds
            bad = clients
            clients //= 2
            if clients < 10:
                break
    for _ in range(2):
        if not good or not bad or bad - good <= max(50, good // 20):
            break
        clients = (good + bad) // 2
        result = one_run(args, target, clients)
        steps.append(result)
        output.step_line(result, budget, held(result))
        if held(result):
            good = clients
        else:
            bad = clients
    # The headline figures are those of the largest run that held.
    best = next((s for s in reversed(steps) if s["clients"] == good), steps[-1])
    return {
        **best,
        "budget_ms": budget,
        "capacity": good,
        "first_over_budget": bad or None,
        "steps": [
            {k: v for k, v in s.items() if k not in ("timeline", "server_metrics")} for s in steps
        ],
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        target = target_of(args.url)
        check_settings(args, target)
        for url in [args.url, *args.spectator_url]:
            probe(target_of(url))
    except UsageError as exc:
        print(f"loadtest: {exc}", file=sys.stderr)
        return 2
    from loadtest import output

    try:
        if args.find_capacity is not None:
            result = find_capacity(args, target)
            output.capacity_table(result)
        else:
            result = one_run(args, target, args.clients)
            output.final_table(result)
    except KeyboardInterrupt:
        print("loadtest: interrupted", file=sys.stderr)
        return 130
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    if args.plot:
        try:
            output.plot(result, args.plot)
        except ImportError:
            print("loadtest: --plot needs matplotlib (pip install 'pillarpayout-ws[loadtest]')")
            return 2
    return 1 if result["errors"] else 0
