"""One load run: start the worker processes, follow them, and sum up what they saw."""

from __future__ import annotations

import contextlib
import math
import multiprocessing as mp
import time
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from loadtest import worker

RAMP_GRACE_S = 30.0  # beyond clients/ramp, how long connecting may take before we go on
DONE_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Target:
    url: str
    host: str
    port: int
    path: str
    loopback: bool


@dataclass(frozen=True)
class Settings:
    clients: int
    bettors: int
    duration: float
    procs: int
    ramp: float
    seed: int
    house_edge: float
    user_prefix: str
    password: str
    spectator_targets: tuple[Target, ...] = ()


def percentiles(values: array[float], *qs: int) -> dict[str, float | None]:
    ordered = sorted(values)
    out: dict[str, float | None] = {}
    for q in qs:
        key = "max" if q == 100 else f"p{q}"
        if not ordered:
            out[key] = None
            continue
        index = min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1)
        out[key] = round(ordered[max(0, index)], 3)
    return out


def _floats(raw: bytes) -> array[float]:
    values = array("d")
    values.frombytes(raw)
    return values


@dataclass
class Progress:
    """What the live line shows; updated as samples arrive."""

    phase: str = "connecting"
    elapsed: float = 0.0
    connected: int = 0
    wanted: int = 0
    ticks: int = 0
    p99_ms: float | None = None
    bets: int = 0
    errors: int = 0
    rounds: int = 0


@dataclass
class Totals:
    started: float = field(default_factory=time.time)
    hold_at: float | None = None
    stop_at: float | None = None
    latest: dict[int, dict[str, Any]] = field(default_factory=dict)  # worker -> last sample
    tick_delay: array[float] = field(default_factory=lambda: array("d"))
    ramp_tick_delay: array[float] = field(default_factory=lambda: array("d"))  # connecting
    bet_ack: array[float] = field(default_factory=lambda: array("d"))
    cashout_ack: array[float] = field(default_factory=lambda: array("d"))
    connect: array[float] = field(default_factory=lambda: array("d"))
    errors: Counter[str] = field(default_factory=Counter)
    connect_errors: dict[int, dict[str, int]] = field(default_factory=dict)
    rounds: set[int] = field(default_factory=set)
    # Per second since the start: delays seen and clients connected.
    seconds: dict[int, array[float]] = field(default_factory=dict)
    connected_by_second: dict[int, int] = field(default_factory=dict)
    done: dict[int, dict[str, Any]] = field(default_factory=dict)

    def add(self, index: int, sample: dict[str, Any]) -> None:
        self.latest[index] = sample
        delays = _floats(sample["tick_delay_ms"])
        second = int(sample["t"] - self.started)
        self.seconds.setdefault(second, array("d")).extend(delays)
        self.connected_by_second[second] = sum(s["connected"] for s in self.latest.values())
        holding = self.hold_at is not None and sample["t"] >= self.hold_at
        if holding:
            self.tick_delay.extend(delays)
            self.bet_ack.extend(_floats(sample["bet_ack_ms"]))
            self.cashout_ack.extend(_floats(sample["cashout_ack_ms"]))
        else:
            self.ramp_tick_delay.extend(delays)
        self.connect.extend(_floats(sample["connect_ms"]))
        self.errors.update(sample["errors"])
        self.connect_errors[index] = sample["connect_errors"]
        self.rounds.update(sample["rounds"])

    def total(self, key: str) -> int:
        return sum(int(s[key]) for s in self.latest.values())


def split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def run_load(
    target: Target, settings: Settings, on_progress: Callable[[Progress], None] | None = None
) -> dict[str, Any]:
    """Load ``target`` as ``settings`` say and return the figures (the JSON report)."""
    ctx = mp.get_context("spawn")
    procs = max(1, min(settings.procs, settings.clients))
    bettors = split(settings.bettors, procs)
    spectators = [n - b for n, b in zip(split(settings.clients, procs), bettors, strict=True)]
    measure_every = 1 if settings.clients <= 1000 else 10
    pipes: dict[int, Connection] = {}
    children = []
    first = 0
    for i in range(procs):
        plan = worker.Plan(
            index=i,
            host=target.host,
            port=target.port,
            path=target.path,
            spectators=spectators[i],
            bettors=bettors[i],
            first_client=first,
            ramp=settings.ramp / procs,
            measure_every=measure_every,
            house_edge=settings.house_edge,
            seed=settings.seed,
            user_prefix=settings.user_prefix,
            password=settings.password,
            spread_sources=target.loopback,
            spectator_endpoints=tuple((t.host, t.port, t.path) for t in settings.spectator_targets),
        )
        first += spectators[i] + bettors[i]
        mine, theirs = ctx.Pipe()
        child = ctx.Process(target=worker.run, args=(plan, theirs), daemon=True)
        child.start()
        children.append(child)
        pipes[i] = mine
    totals = Totals()
    progress = Progress(wanted=settings.clients)
    ramped: set[int] = set()
    ramp_deadline = time.time() + settings.clients / settings.ramp + RAMP_GRACE_S
    try:
        while len(totals.done) < procs:
            now = time.time()
            if totals.hold_at is None and (len(ramped) == procs or now > ramp_deadline):
                totals.hold_at = now
                for pipe in pipes.values():
                    pipe.send("hold")
                progress.phase = "holding"
            holding = totals.hold_at is not None and totals.stop_at is None
            if holding and now >= (totals.hold_at or now) + settings.duration:
                totals.stop_at = now
                for pipe in pipes.values():
                    pipe.send("stop")
                progress.phase = "stopping"
            if totals.stop_at is not None and now > totals.stop_at + DONE_TIMEOUT_S:
                break
            lost = [i for i, c in enumerate(children) if not c.is_alive() and i not in totals.done]
            for i in lost:
                totals.errors["harness:worker_died"] += 1
                totals.done[i] = {}
            for ready in wait(list(pipes.values()), timeout=0.25):
                index = next(i for i, p in pipes.items() if p is ready)
                try:
                    kind, *payload = pipes[index].recv()
                except EOFError:
                    del pipes[index]
                    continue
                if kind == "ramped":
                    ramped.add(index)
                elif kind in ("sample", "done"):
                    totals.add(index, payload[0])
                    if kind == "done":
                        totals.done[index] = payload[0]
                        del pipes[index]
            progress.elapsed = time.time() - totals.started
            progress.connected = totals.total("connected") if totals.latest else 0
            progress.ticks = totals.total("ticks") if totals.latest else 0
            last = totals.seconds.get(int(progress.elapsed) - 1)
            progress.p99_ms = percentiles(last, 99)["p99"] if last else None
            progress.bets = totals.total("bets") if totals.latest else 0
            progress.errors = sum(totals.errors.values())
            progress.rounds = len(totals.rounds)
            if on_progress is not None:
                on_progress(progress)
    finally:
        for pipe in pipes.values():
            with contextlib.suppress(OSError):
                pipe.send("stop")
        for child in children:
            child.join(timeout=5)
            if child.is_alive():
                child.terminate()
    return report(totals, settings, procs)


def report(totals: Totals, settings: Settings, procs: int) -> dict[str, Any]:
    hold_at = totals.hold_at or totals.started
    window = max(1e-9, (totals.stop_at or time.time()) - hold_at)
    done = list(totals.done.values())

    def summed(key: str) -> int:
        return sum(int(d.get(key, 0)) for d in done)

    def rate(key: str) -> float:
        return round(summed(key) / window, 1)

    connect_errors: Counter[str] = Counter()
    for errors in totals.connect_errors.values():
        connect_errors.update(errors)
    errors = Counter(totals.errors)
    for reason, n in connect_errors.items():
        errors["connect:" + reason] += n
    timeline = []
    for second in sorted(totals.seconds):
        delays = totals.seconds[second]
        timeline.append(
            {
                "t": second,
                "connected": totals.connected_by_second.get(second, 0),
                **percentiles(delays, 50, 90, 99),
                "samples": len(delays),
            }
        )
    return {
        "clients": settings.clients,
        "bettors": settings.bettors,
        "procs": procs,
        "duration_s": round(window, 2),
        "ramp_s": round(hold_at - totals.started, 2),
        "clients_connected": summed("connected"),
        "connect_failed": sum(connect_errors.values()),
        "connect_pending": summed("connect_pending"),
        "dropped": summed("dropped"),
        "connect_ms": percentiles(totals.connect, 50, 99),
        "ticks_received": summed("ticks"),
        "ticks_expected_per_client": max(
            (d.get("ticks_expected_per_client", 0) for d in done), default=0
        ),
        "ticks_missed": summed("ticks_missed"),
        "clients_missing_ticks": summed("clients_missing_ticks"),
        "tick_delay_ms": percentiles(totals.tick_delay, 50, 90, 99, 100),
        "tick_delay_samples": len(totals.tick_delay),
        # The clients already connected, while the others were still connecting.
        "tick_delay_while_connecting_ms": percentiles(totals.ramp_tick_delay, 50, 99),
        "bet_ack_ms": percentiles(totals.bet_ack, 50, 99),
        "cashout_ack_ms": percentiles(totals.cashout_ack, 50, 99),
        "bets": summed("bets"),
        "cashouts": summed("cashouts"),
        "late_cashouts": summed("late_cashouts"),
        "bettors_logged_in": summed("sessions"),
        "busy_retries": summed("busy_retries"),
        "limited_retries": summed("limited_retries"),
        "broke_bettors": summed("broke"),
        "frames_in_per_s": rate("frames_in_window"),
        "frames_out_per_s": rate("frames_out_window"),
        "errors": sum(errors.values()),
        "errors_by_code": dict(sorted(errors.items())),
        "rounds": len(totals.rounds),
        "timeline": timeline,
    }
