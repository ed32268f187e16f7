"""Answers while spectators watch: bet and cash-out acks, players' and spectators' ticks.

For each spectator count, in turn and ``--repeat`` times: the bare floor
server (``bench/floor.py``) with as many clients as ``serve`` will have, then
``pillarpayout serve`` once per ``--tick-slice-ms`` value, with the same
spectators plus ``--bettors`` players. Players are provisioned straight into
PostgreSQL (as in ``bench.bets``) and ``resume``; each round each one bets at
a random moment of the betting window and cashes out **by hand** when a tick
shows its random target (1.05x-3.00x). Over the measuring window it records:

- bet ack and cash-out ack (frame sent to answer received) p50/p99;
- players' tick delay (every player measures) and spectators' (one in ten,
  as in ``bench.fanout``), and the floor's tick delay at the same count;
- the server's CPU per frame delivered;
- inside serve (``/metrics``): a cash-out from read to answer written, and
  the Redis commits, so that a slow ack shows where it waited;
- where a slow ack (over ``SLOW_ACK_MS``) waited: the bettors' own process
  runs a 1 ms heartbeat, and each slow ack is reported with how long the
  heartbeat was held up while the ack was awaited (the load generator busy
  or off the CPU); and the server's time waiting for a CPU (its main
  thread's run-queue delay, ``/proc/<pid>/schedstat``), for the floor too.

The load generator shares the 2 cores. Run with
``python -m bench.answers [--spectators 6000 10000] [--tick-slice-ms 0 2 5]``.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import random
import statistics
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import orjson
import uvloop

from bench import fanout
from bench.bets import provision
from bench.common import (
    free_port,
    percentile,
    raise_nofile,
    ratio,
    spawn,
    start_serve,
    stop,
    wait_healthy,
)
from loadtest.client import ClientStats, GameClient, open_client

CASHOUTS = 'command="cashout"'  # the cash-outs' series of ``answer_seconds``
SLOW_ACK_MS = 15.0  # the bound on bet and cash-out ack p99
HEARTBEAT_S = 0.001
STALL_MS = 2.0  # a heartbeat this late (libuv's timers round to 1 ms) was held up


def bettor_worker(port: int, tokens: list[str], seed: int, pipe: Connection) -> None:
    raise_nofile()
    uvloop.run(_bettors(port, tokens, seed, pipe))


async def _bettors(port: int, tokens: list[str], seed: int, pipe: Connection) -> None:
    rng = random.Random(seed)
    loop = asyncio.get_running_loop()
    stats = ClientStats()
    acks: list[tuple[str, float, float]] = []  # (kind, sent, answered)
    tick_delay: list[float] = []
    late = 0
    errors: dict[str, int] = {}
    sessions = asyncio.Event()
    joined = 0
    # Per client: when its bet / cashout went out, and the multiplier it waits for.
    bet_sent: dict[GameClient, float] = {}
    cashout_sent: dict[GameClient, float] = {}
    target: dict[GameClient, float] = {}
    recording = False
    stalls: list[tuple[float, float]] = []  # the bettors' loop held up: (from, to)

    async def heartbeat() -> None:
        while True:
            due = time.perf_counter() + HEARTBEAT_S
            await asyncio.sleep(HEARTBEAT_S)
            woke = time.perf_counter()
            if (woke - due) * 1000 > STALL_MS:
                stalls.append((due, woke))

    def place(client: GameClient, round_id: int) -> None:
        bet_sent[client] = time.perf_counter()
        target[client] = round(rng.uniform(1.05, 3.0), 2)
        client.send({"type": "bet", "amount": 100, "ref": f"{round_id}-{id(client)}"})

    def on_frame(client: GameClient, payload: bytes) -> None:
        nonlocal joined, late
        now = time.perf_counter()
        if payload.startswith(b'{"type":"tick"'):
            tick = orjson.loads(payload)
            if recording:
                tick_delay.append((time.time() - tick["ts"]) * 1000)
            goal = target.get(client)
            if goal is not None and tick["m"] >= goal and client not in cashout_sent:
                cashout_sent[client] = now
                client.send({"type": "cashout", "ref": f"c-{tick['round_id']}"})
            return
        kind = orjson.loads(payload)["type"] if payload.startswith(b'{"type":"') else None
        if kind == "betting":
            round_id = orjson.loads(payload)["round_id"]
            target.pop(client, None)
            cashout_sent.pop(client, None)
            loop.call_later(rng.uniform(0.0, 1.5), place, client, round_id)
        elif kind == "bet_accepted":
            sent = bet_sent.pop(client, None)
            if sent is not None and recording:
                acks.append(("bet", sent, now))
        elif kind == "cashed_out":
            target.pop(client, None)
            sent = cashout_sent.get(client)
            if sent is not None and recording:
                acks.append(("cashout", sent, now))
        elif kind == "crashed":
            target.pop(client, None)
        elif kind == "error":
            code = orjson.loads(payload)["code"]
            if code == "round_crashed":
                late += 1
            elif recording:
                errors[code] = errors.get(code, 0) + 1
            target.pop(client, None)
        elif kind == "session":
            joined += 1
            if joined == len(tokens):
                sessions.set()

    clients = []
    for token in tokens:
        client = await open_client(
            "127.0.0.1", port, stats, on_frame=on_frame, measure=False, all_frames=True
        )
        client.send({"type": "resume", "token": token})
        clients.append(client)
    await sessions.wait()
    pipe.send(("ready", len(clients)))
    assert await loop.run_in_executor(None, pipe.recv) == "measure"
    beating = asyncio.create_task(heartbeat())
    recording, frames_before = True, stats.frames
    assert await loop.run_in_executor(None, pipe.recv) == "stop"
    recording = False
    beating.cancel()
    waits = [(kind, (answered - sent) * 1000, sent, answered) for kind, sent, answered in acks]
    pipe.send(
        {
            "bet_ack": [ms for kind, ms, _, _ in waits if kind == "bet"],
            "cashout_ack": [ms for kind, ms, _, _ in waits if kind == "cashout"],
            "tick_delay": tick_delay,
            "slow_acks": [
                [kind, round(ms, 2), round(held(stalls, sent, answered), 2)]
                for kind, ms, sent, answered in waits
                if ms > SLOW_ACK_MS
            ],
            "bettor_stall_ms": summary([(to - since) * 1000 for since, to in stalls]),
            "late_cashouts": late,
            "errors": errors,
            "connected": stats.connected,
            "frames": stats.frames - frames_before,
        }
    )
    for client in clients:
        if client.transport is not None:
            client.transport.abort()


def held(stalls: list[tuple[float, float]], since: float, until: float) -> float:
    """Milliseconds of ``stalls`` that fall between ``since`` and ``until``."""
    return sum(max(0.0, min(to, until) - max(start, since)) for start, to in stalls) * 1000


def run_delay_s(pid: int) -> float:
    """Seconds ``pid``'s main thread has waited on a run queue for a CPU."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9


def summary(values: list[float]) -> dict[str, float | int | None]:
    return {
        "n": len(values),
        "p50": round(statistics.median(values), 2) if values else None,
        "p99": round(percentile(values, 99), 2) if values else None,
        "max": round(max(values), 2) if values else None,
    }


def run(
    kind: str, spectators: int, bettors: int, slice_ms: float, window_s: float
) -> dict[str, Any]:
    """One measurement: the floor with ``spectators + bettors`` clients, or serve
    with ``spectators`` plus ``bettors`` players."""
    port = free_port()
    data_dir = Path(tempfile.mkdtemp(prefix="pp-bench-answers-"))
    tokens: list[str] = []
    durations = data_dir / "floor-durations"
    fanout_ms: dict[str, Any] = {}
    if kind == "floor":
        server = spawn("-m", "bench.floor", "--port", str(port), "--durations", str(durations))
        watchers = spectators + bettors
    else:
        tokens = uvloop.run(provision(data_dir, bettors))
        server = start_serve(
            data_dir,
            port,
            "--betting-ms",
            "2000",
            "--cooldown-ms",
            "1000",
            "--tick-slice-ms",
            str(slice_ms),
            "--max-connections-per-ip",
            str(spectators + bettors + 10),
        )
        watchers = spectators
    try:
        if kind == "floor":
            fanout.wait_listening(port)
        else:
            wait_healthy(port, alive=lambda: server.poll() is None)
        pipes, procs = [], []
        per = watchers // 2
        for i in range(2):
            parent, child = mp.Pipe()
            proc = mp.Process(target=fanout.worker, args=(port, per, i, child), daemon=True)
            proc.start()
            pipes.append(parent)
            procs.append(proc)
        if tokens:
            parent, child = mp.Pipe()
            proc = mp.Process(target=bettor_worker, args=(port, tokens, 7, child), daemon=True)
            proc.start()
            pipes.append(parent)
            procs.append(proc)
        for p in pipes:
            p.recv()
        time.sleep(2.0)
        superseded = -fanout.metric(port, "ticks_superseded") if tokens else 0.0
        written = fanout.histogram(port, "tick_fanout_seconds") if tokens else {}
        answered = fanout.histogram(port, "answer_seconds", CASHOUTS) if tokens else {}
        committed = fanout.histogram(port, "redis_commit_seconds") if tokens else {}
        started = time.time()
        cpu0 = sum(fanout.cpu_seconds(server.pid))
        waited = run_delay_s(server.pid)
        for p in pipes:
            p.send("measure")
        time.sleep(window_s)
        for p in pipes:
            p.send("stop")
        cpu = sum(fanout.cpu_seconds(server.pid)) - cpu0
        waited = run_delay_s(server.pid) - waited
        ended = time.time()
        superseded += fanout.metric(port, "ticks_superseded") if tokens else 0.0
        if tokens:
            fanout_ms = fanout.histogram_summary(
                written, fanout.histogram(port, "tick_fanout_seconds")
            )
            # The server's side of a cash-out's wait: read to answer written,
            # and the Redis commit within it (a client's p99 well above these
            # waited in the load generator, not in the game).
            answered = fanout.histogram_summary(
                answered, fanout.histogram(port, "answer_seconds", CASHOUTS)
            )
            committed = fanout.histogram_summary(
                committed, fanout.histogram(port, "redis_commit_seconds")
            )
        results = [p.recv() for p in pipes]
        for proc in procs:
            proc.join(10)
    finally:
        stop(server)
    if kind == "floor":
        took = [
            float(t) * 1000
            for when, t in (line.split() for line in durations.read_text().splitlines())
            if started <= float(when) <= ended
        ]
        fanout_ms = {**summary(took), "mean": round(statistics.fmean(took), 2) if took else None}
    spectator_delays = [d for r in results[:2] for d in r[3]]
    frames = sum(r[0] for r in results[:2]) + (results[2]["frames"] if tokens else 0)
    out: dict[str, Any] = {
        "kind": kind,
        "tick_slice_ms": slice_ms if kind == "serve" else None,
        "spectators": sum(r[2] for r in results[:2]),
        "spectator_tick_ms": summary(spectator_delays),
        # In the server: a tick made to its last spectator written (serve's
        # from its histogram's buckets, the floor's from every tick).
        "server_fanout_ms": fanout_ms,
        "cpu_us_per_delivery": round(cpu / frames * 1e6, 3) if frames else None,
        # How long the server was ready to run but waited for a CPU, a second.
        "server_run_delay_ms_per_s": round(waited / window_s * 1000, 2),
    }
    spectator_ticks = sum(r[1] for r in results[:2])  # one in ten is measured, all count
    if spectator_ticks:
        out["superseded_share"] = round(superseded / (superseded + spectator_ticks), 4)
    if tokens:
        players = results[2]
        out |= {
            "players": players["connected"],
            "player_tick_ms": summary(players["tick_delay"]),
            "bet_ack_ms": summary(players["bet_ack"]),
            "cashout_ack_ms": summary(players["cashout_ack"]),
            "server_cashout_ms": answered,
            "redis_commit_ms": committed,
            "late_cashouts": players["late_cashouts"],
            # Each ack over SLOW_ACK_MS: [kind, ms, ms the bettors' loop was held up meanwhile].
            "slow_acks": players["slow_acks"],
            "bettor_stall_ms": players["bettor_stall_ms"],
            "errors": players["errors"],
        }
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spectators", type=int, nargs="+", default=[6000, 10000])
    parser.add_argument("--bettors", type=int, default=200)
    parser.add_argument("--tick-slice-ms", type=float, nargs="+", default=[0.0, 2.0])
    parser.add_argument("--window", type=float, default=20.0, help="seconds measured per run")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    raise_nofile()
    cases: list[dict[str, Any]] = []
    for n in args.spectators:
        runs: list[dict[str, Any]] = []
        for _ in range(args.repeat):
            floor = run("floor", n, args.bettors, 0, args.window)
            print(floor, flush=True)
            for slice_ms in args.tick_slice_ms:
                serve = run("serve", n, args.bettors, slice_ms, args.window)
                serve["spectator_vs_floor_p99"] = ratio(
                    serve["spectator_tick_ms"]["p99"], floor["spectator_tick_ms"]["p99"]
                )
                serve["cpu_vs_floor"] = ratio(
                    serve["cpu_us_per_delivery"], floor["cpu_us_per_delivery"]
                )
                print(serve, flush=True)
                runs.append({"floor": floor, "serve": serve})
        cases.append({"spectators": n, "runs": runs, "by_slice": by_slice(runs)})
    out = {"bettors": args.bettors, "window_s": args.window, "cases": cases}
    print(orjson.dumps(out).decode(), flush=True)
    return out


def by_slice(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per slice size, the median over the repeats of each p99 and of the ratio."""
    out = []
    for slice_ms in sorted({r["serve"]["tick_slice_ms"] for r in runs}):
        mine = [r["serve"] for r in runs if r["serve"]["tick_slice_ms"] == slice_ms]
        floors = [r["floor"] for r in runs if r["serve"]["tick_slice_ms"] == slice_ms]

        def median(pick: Any, runs: list[dict[str, Any]] = mine) -> float | None:
            values = [v for v in (pick(r) for r in runs) if v is not None]
            return round(statistics.median(values), 3) if values else None

        out.append(
            {
                "tick_slice_ms": slice_ms,
                "repeats": len(mine),
                "cashout_ack_p99": median(lambda r: r["cashout_ack_ms"]["p99"]),
                "bet_ack_p99": median(lambda r: r["bet_ack_ms"]["p99"]),
                "player_tick_p99": median(lambda r: r["player_tick_ms"]["p99"]),
                "spectator_tick_p99": median(lambda r: r["spectator_tick_ms"]["p99"]),
                "spectator_vs_floor_p99": median(lambda r: r["spectator_vs_floor_p99"]),
                "cpu_vs_floor": median(lambda r: r["cpu_vs_floor"]),
                "fanout_mean_ms": median(lambda r: r["server_fanout_ms"].get("mean")),
                "floor_fanout_mean_ms": median(lambda f: f["server_fanout_ms"].get("mean"), floors),
                "superseded_share": median(lambda r: r.get("superseded_share")),
            }
        )
    return out


if __name__ == "__main__":
    main()
