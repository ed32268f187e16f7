"""Fan-out benchmark: server CPU per delivered frame, ``serve`` vs the bare floor.

For each client count, runs the floor server (``bench/floor.py``) and then
``pillarpayout serve`` (embedded storage, ticks every 100 ms), connects the
same number of minimal clients from worker processes, and over a measuring
window records:

- server CPU (user + system, from /proc) per frame the clients received;
- tick delay (server ``ts`` to receipt) p50/p90/p99/max, and ticks missed;
- server RSS growth per connection (serve only: idle spectators).

``serve``'s window runs from one crash to the first crash at least ``--window``
seconds later, so it holds whole rounds, their ends and starts included (a
round lasts 17 s on average: a fixed window held none about half the time).
It starts only after the garbage collection that follows the first crash
after the clients connected: that pass scans every new connection's objects
once (about 0.3 s at 10,000), a cost of connecting, not of ticks, and it fell
into a fixed window or not by chance. Its time is reported as
``connect_gc_s``. The floor, which has no rounds, measures ``--window``.

The ratio serve/floor is the number to watch: both run in the same session on
the same machine, so noise from other load largely cancels. With ``--pin``
the server under test has a CPU of its own and everything else (its
clients, serve's embedded PostgreSQL and Redis) shares the others, so that
neither waits for the other's CPU (BENCHMARKS.md, 2026-12-01 late: the
spread between runs stayed about the same). Run with ``python -m
bench.fanout [--clients 3000 10000] [--window 15] [--pin]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import os
import socket
import statistics
import tempfile
import threading
import time
import urllib.request
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import orjson
import uvloop
from websockets.sync.client import connect

from bench.common import free_port, percentile, raise_nofile, ratio, spawn, start_serve, stop
from loadtest.client import ClientStats, open_client

CLK_TCK = os.sysconf("SC_CLK_TCK")
ROUND_WAIT_S = 300.0  # a round longer than five minutes stops the run


def cpu_seconds(pid: int) -> tuple[float, float]:
    """The user and the system CPU seconds ``pid`` has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK  # utime, stime


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


# -- client workers (separate processes) -----------------------------------


def pin(pid: int, cpus: set[int]) -> None:
    """Every thread of ``pid`` onto ``cpus`` (threads and children it starts later inherit it)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(int(tid), cpus)


def split_cpus() -> tuple[set[int], set[int]] | None:
    """A CPU for the server under test, and the others for everything else; None
    with fewer than two CPUs."""
    cpus = sorted(os.sched_getaffinity(0))
    return ({cpus[-1]}, set(cpus[:-1])) if len(cpus) > 1 else None


def worker(port: int, count: int, index: int, pipe: Connection) -> None:
    raise_nofile()
    uvloop.run(_worker(port, count, index, pipe))


async def _worker(port: int, count: int, index: int, pipe: Connection) -> None:
    stats = ClientStats()
    clients = []
    # Spread source addresses over 127.0.0.x so ephemeral ports never run out.
    for i in range(count):
        local = (f"127.0.0.{2 + (index * count + i) // 25_000}", 0)
        # One client in ten measures tick delay: a sample that keeps the load
        # generator's own CPU (and so its queueing) out of the numbers.
        clients.append(
            await open_client("127.0.0.1", port, stats, local_addr=local, measure=i % 10 == 0)
        )
        if i % 200 == 199:
            await asyncio.sleep(0.01)  # a gentle ramp: the server accepts as it goes
    pipe.send(("ready", stats.connected))
    loop = asyncio.get_running_loop()
    command = await loop.run_in_executor(None, pipe.recv)
    assert command == "measure"
    stats.frames = stats.ticks = 0
    stats.tick_delays_ms = type(stats.tick_delays_ms)("d")
    stats.record_delays = True
    command = await loop.run_in_executor(None, pipe.recv)
    assert command == "stop"
    stats.record_delays = False
    pipe.send((stats.frames, stats.ticks, stats.connected, list(stats.tick_delays_ms)))
    for client in clients:
        if client.transport is not None:
            client.transport.abort()


def histogram(port: int, name: str, labels: str = "") -> dict[str, float]:
    """A running server's histogram ``name`` (the series with ``labels``, as in
    ``command="cashout"``): ``{le: cumulative count}`` plus ``"sum"`` and
    ``"count"`` (empty if it cannot be read)."""
    out: dict[str, float] = {}
    prefix = f"pillarpayout_{name}_"
    bucket = prefix + "bucket{" + (labels + "," if labels else "") + 'le="'
    after = "{" + labels + "} " if labels else " "
    for line in scrape(port):
        if line.startswith(bucket):
            out[line.removeprefix(bucket).split('"')[0]] = float(line.split()[1])
        elif line.startswith((prefix + "sum" + after, prefix + "count" + after)):
            out[line.removeprefix(prefix).split("{")[0].split()[0]] = float(line.split()[1])
    return out


def histogram_summary(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    """Count, mean and (linear within a bucket) p50/p99, in ms, of what a histogram
    took between two readings."""
    count = after.get("count", 0.0) - before.get("count", 0.0)
    if count <= 0:
        return {"n": 0}
    bounds = sorted(
        (float(le), after[le] - before.get(le, 0.0)) for le in after if le[0] in "0123456789"
    )

    def quantile(q: float) -> float:
        rank, low, below = q * count, 0.0, 0.0
        for high, cumulative in bounds:
            if cumulative >= rank:
                inside = cumulative - below
                return 1000 * (low + (high - low) * ((rank - below) / inside if inside else 1.0))
            low, below = high, cumulative
        return 1000 * low  # past the last finite bucket

    mean = (after["sum"] - before.get("sum", 0.0)) / count * 1000
    return {
        "n": int(count),
        "mean": round(mean, 2),
        "p50": round(quantile(0.5), 1),
        "p99": round(quantile(0.99), 1),
    }


# -- rounds ----------------------------------------------------------------


class CrashWatcher(threading.Thread):
    """One more client, in a thread of the bench's own process: it counts the
    ``crashed`` frames, so a window can end at a round's end without asking
    the server anything while it is measured."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self._socket = connect(f"ws://127.0.0.1:{port}/ws", max_size=None)
        self._changed = threading.Condition()
        self.crashes = 0

    def run(self) -> None:
        with contextlib.suppress(Exception):  # the server stops first
            for message in self._socket:
                if orjson.loads(message).get("type") == "crashed":
                    with self._changed:
                        self.crashes += 1
                        self._changed.notify_all()

    def wait_past(self, crashes: int, within_s: float) -> bool:
        """Whether more than ``crashes`` rounds had crashed within ``within_s``."""
        with self._changed:
            return self._changed.wait_for(lambda: self.crashes > crashes, within_s)

    def close(self) -> None:
        self._socket.close()


def wait_metric_past(port: int, name: str, value: float, within_s: float) -> bool:
    """Whether ``/metrics``' ``name`` went past ``value`` within ``within_s``."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if metric(port, name) > value:
            return True
        time.sleep(0.2)
    return False


# -- one measurement --------------------------------------------------------


def wait_listening(port: int, within_s: float = 60.0) -> None:
    """Return once something accepts connections on ``port`` (or ``within_s`` passed)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)


def scrape(port: int) -> list[str]:
    """The lines of a running server's ``/metrics`` (none if it cannot be read)."""
    with contextlib.suppress(OSError):
        url = f"http://127.0.0.1:{port}/metrics"
        return list(urllib.request.urlopen(url, timeout=5).read().decode().splitlines())
    return []


def metric(port: int, name: str) -> float:
    """One number from a running server's ``/metrics`` (0 if it cannot be read)."""
    for line in scrape(port):
        if line.startswith(f"pillarpayout_{name} "):
            return float(line.split()[1])
    return 0.0


def run_case(
    kind: str, clients: int, window_s: float, procs: int, pinned: bool = False
) -> dict[str, Any]:
    """One server with ``clients`` connected; with ``pinned``, the server has a
    CPU of its own and everything else (its clients, and serve's embedded
    PostgreSQL and Redis) the others."""
    split = split_cpus() if pinned else None
    if split is not None:
        pin(os.getpid(), split[1])  # so that what starts from here starts there
    try:
        return _run_case(kind, clients, window_s, procs, split)
    finally:
        if split is not None:
            pin(os.getpid(), split[0] | split[1])


def _run_case(
    kind: str, clients: int, window_s: float, procs: int, split: tuple[set[int], set[int]] | None
) -> dict[str, Any]:
    port = free_port()
    watcher: CrashWatcher | None = None
    data_dir = tempfile.mkdtemp(prefix="pp-bench-")
    if kind == "floor":
        server = spawn("-m", "bench.floor", "--port", str(port))
    else:
        # Short gaps between rounds: ticks flow for ~98 % of the window, as
        # they do for the floor, so both spread fixed costs alike.
        server = start_serve(
            data_dir,
            port,
            "--betting-ms",
            "100",
            "--cooldown-ms",
            "100",
            "--tick-ms",
            "100",
            "--max-connections-per-ip",
            str(clients + 10),
        )
    try:
        wait_listening(port)
        if split is not None:
            pin(server.pid, split[0])
        time.sleep(1.0)
        rss_before = rss_bytes(server.pid)
        pipes, workers = [], []
        per = clients // procs
        for i in range(procs):
            parent, child = mp.Pipe()
            proc = mp.Process(target=worker, args=(port, per, i, child), daemon=True)
            proc.start()
            pipes.append(parent)
            workers.append(proc)
        connected = sum(p.recv()[1] for p in pipes)
        time.sleep(2.0)  # settle
        rss_after = rss_bytes(server.pid)
        connect_gc_s = rounds = None
        if kind == "serve":
            # After the collection that scans the new connections (module docstring).
            collections = metric(port, "gc_seconds_count")
            spent = metric(port, "gc_seconds_sum")
            if not wait_metric_past(port, "gc_seconds_count", collections, ROUND_WAIT_S):
                raise RuntimeError("no round ended after the clients connected")
            connect_gc_s = round(metric(port, "gc_seconds_sum") - spent, 3)
            watcher = CrashWatcher(port)
            watcher.start()
        started = time.monotonic()
        cpu0 = cpu_seconds(server.pid)
        for p in pipes:
            p.send("measure")
        time.sleep(window_s)
        if watcher is not None:
            crashes = watcher.crashes
            if not watcher.wait_past(crashes, ROUND_WAIT_S):
                raise RuntimeError("no round ended in the window")
            rounds = watcher.crashes
        measured_s = time.monotonic() - started
        cpu1 = cpu_seconds(server.pid)
        for p in pipes:
            p.send("stop")
        results = [p.recv() for p in pipes]
        for proc in workers:
            proc.join(10)
        frames = sum(r[0] for r in results)
        ticks = sum(r[1] for r in results)
        still = sum(r[2] for r in results)
        delays = [d for r in results for d in r[3]]
        skipped = metric(port, "ticks_skipped") if kind == "serve" else 0.0
        superseded = metric(port, "ticks_superseded") if kind == "serve" else 0.0
        user, system = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
        cpu = user + system
        return {
            "kind": kind,
            "clients": connected,
            "connected_at_end": still,
            "window_s": round(measured_s, 2),
            "rounds_ended": rounds,
            "connect_gc_s": connect_gc_s,
            "frames": frames,
            "ticks": ticks,
            "cpu_s": round(cpu, 3),
            "cpu_us_per_delivery": round(cpu / frames * 1e6, 3) if frames else None,
            # In the kernel (the writes, and on loopback the receivers' side too)
            # and in the process itself.
            "sys_us_per_delivery": round(system / frames * 1e6, 3) if frames else None,
            "user_us_per_delivery": round(user / frames * 1e6, 3) if frames else None,
            # The same CPU over the ticks alone: serve's other frames (betting,
            # running, crashed, bets) are work the floor does not do.
            "cpu_us_per_tick": round(cpu / ticks * 1e6, 3) if ticks else None,
            "tick_delay_ms": {
                "p50": round(percentile(delays, 50), 2),
                "p90": round(percentile(delays, 90), 2),
                "p99": round(percentile(delays, 99), 2),
                "max": round(max(delays), 2) if delays else None,
            },
            "ticks_per_client": round(ticks / connected, 1) if connected else 0,
            "ticks_skipped": skipped,
            "ticks_superseded": superseded,
            "rss_per_connection_bytes": round((rss_after - rss_before) / max(1, connected)),
        }
    finally:
        if watcher is not None:
            watcher.close()
        stop(server)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[3000, 10000])
    parser.add_argument("--window", type=float, default=15.0)
    parser.add_argument("--repeat", type=int, default=3, help="floor/serve pairs per count")
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument(
        "--pin",
        action="store_true",
        help="the server on a CPU of its own, everything else on the others",
    )
    args = parser.parse_args(argv)
    raise_nofile()
    out: dict[str, Any] = {"cases": []}
    for n in args.clients:
        pairs: list[dict[str, Any]] = []
        for _ in range(args.repeat):
            floor = run_case("floor", n, args.window, args.procs, args.pin)
            serve = run_case("serve", n, args.window, args.procs, args.pin)
            per_frame = ratio(serve["cpu_us_per_delivery"], floor["cpu_us_per_delivery"])
            ratio_ticks = ratio(serve["cpu_us_per_tick"], floor["cpu_us_per_tick"])
            pairs.append(
                {"floor": floor, "serve": serve, "ratio": per_frame, "ratio_ticks": ratio_ticks}
            )
            print(
                {
                    "clients": n,
                    "ratio": per_frame,
                    "ratio_ticks": ratio_ticks,
                    "floor_us": floor["cpu_us_per_delivery"],
                    "serve_us": serve["cpu_us_per_delivery"],
                    "sys_us": (floor["sys_us_per_delivery"], serve["sys_us_per_delivery"]),
                    "user_us": (floor["user_us_per_delivery"], serve["user_us_per_delivery"]),
                    "floor_p99_ms": floor["tick_delay_ms"]["p99"],
                    "serve_p99_ms": serve["tick_delay_ms"]["p99"],
                    "serve_rss_per_conn": serve["rss_per_connection_bytes"],
                    "serve_window": (serve["window_s"], serve["rounds_ended"]),
                    "connect_gc_s": serve["connect_gc_s"],
                },
                flush=True,
            )
        ratios: list[float] = [p["ratio"] for p in pairs if p["ratio"] is not None]
        per_tick: list[float] = [p["ratio_ticks"] for p in pairs if p["ratio_ticks"] is not None]
        out["cases"].append(
            {
                "clients": n,
                "ratio_median": statistics.median(ratios) if ratios else None,
                "ratio_ticks_median": statistics.median(per_tick) if per_tick else None,
                "pairs": pairs,
            }
        )
    return out


if __name__ == "__main__":
    main()
