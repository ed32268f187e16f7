"""One load-generating process: its share of the clients, reporting to the main process.

The conversation over the pipe (worker -> main unless marked):

- ``("sample", dict)`` about once a second: counters and the latencies seen since
  the last sample;
- ``("ramped", connected, failed)`` once every client has been tried;
- main -> worker ``"hold"``: the measuring window starts now;
- main -> worker ``"stop"``: close everything and answer
  ``("done", dict)`` with the tick accounting (expected, received, missed).

Ticks expected: the process's first client (the checker) sees every frame and
marks each ``betting`` frame. No tick flows between a crash and the next
betting window, so between two such marks every healthy client must have
received exactly the checker's ticks: the difference is what it missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import random
import time
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import orjson
import uvloop

from loadtest.checks import RoundChecker
from loadtest.client import ClientStats, GameClient, open_client
from loadtest.players import Bettor, Tally
from loadtest.system import raise_nofile

CONNECTS_IN_FLIGHT = 200
PER_SOURCE_ADDRESS = 25_000  # clients per 127.0.0.x: below the ~28k ephemeral ports


@dataclass(frozen=True)
class Plan:
    index: int
    host: str
    port: int
    path: str
    spectators: int
    bettors: int
    first_client: int  # global number of this worker's first client
    ramp: float  # connects per second from this worker
    measure_every: int  # one client in this many measures tick delay
    house_edge: float
    seed: int
    user_prefix: str
    password: str
    spread_sources: bool  # use 127.0.0.x source addresses (loopback targets)
    # Where spectators connect, in turn (relays); empty: the game's own URL.
    spectator_endpoints: tuple[tuple[str, int, str], ...] = ()
    sample_every: float = 1.0


@dataclass
class Mark:
    """The tick counts at one moment: the checker's, and every client's."""

    at: float
    checker: int
    clients: array[int]


def run(plan: Plan, pipe: Connection) -> None:
    raise_nofile()
    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(Worker(plan, pipe).main())


def describe_connect_error(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        if exc.errno == errno.EADDRNOTAVAIL:
            return "out of source ports (EADDRNOTAVAIL)"
        if exc.errno in (errno.EMFILE, errno.ENFILE):
            return "open-file limit reached (EMFILE)"
        if exc.errno == errno.ECONNREFUSED:
            return "connection refused"
        if exc.errno == errno.ECONNRESET:
            return "connection reset"
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:120]


class Worker:
    def __init__(self, plan: Plan, pipe: Connection) -> None:
        self.plan, self.pipe = plan, pipe
        self.stats = ClientStats()
        self.stats.record_delays = True
        self.tally = Tally()
        self.checker = RoundChecker(plan.house_edge)
        self.clients: list[GameClient] = []
        self.connect_ms = array("d")
        self.connect_errors: Counter[str] = Counter()
        self.marks: list[Mark] = []
        self.hold: Mark | None = None
        self.frames_at_hold = (0, 0)
        self.sent_errors: Counter[str] = Counter()
        self.sent_rounds: set[int] = set()
        self.sent_closes: Counter[int] = Counter()

    # -- clients ------------------------------------------------------------

    def _mark(self) -> Mark:
        return Mark(time.time(), self.clients[0].ticks if self.clients else 0, self._counts())

    def _counts(self) -> array[int]:
        return array("q", (c.ticks for c in self.clients))

    def _checker_frame(self, extra: Callable[[GameClient, bytes], None] | None) -> Any:
        def on_frame(client: GameClient, payload: bytes) -> None:
            frame = orjson.loads(payload)
            self.checker.feed(frame)
            if frame.get("type") == "betting":
                self.marks.append(self._mark())
            if extra is not None:
                extra(client, payload)

        return on_frame

    async def _connect(self, number: int, gate: asyncio.Semaphore) -> None:
        plan = self.plan
        bettor: Bettor | None = None
        if number < plan.bettors:
            name = f"{plan.user_prefix}{plan.first_client + number}"
            rng = random.Random(plan.seed * 1_000_003 + plan.first_client + number)
            bettor = Bettor(name, plan.password, self.tally, rng)
        first = number == 0
        on_frame = self._checker_frame(bettor) if first else bettor
        global_number = plan.first_client + number
        local = None
        if plan.spread_sources:
            local = (f"127.0.0.{2 + global_number // PER_SOURCE_ADDRESS}", 0)
        host, port, path = plan.host, plan.port, plan.path
        if bettor is None and not first and plan.spectator_endpoints:
            endpoints = plan.spectator_endpoints
            host, port, path = endpoints[global_number % len(endpoints)]
        async with gate:
            try:
                client = await open_client(
                    host,
                    port,
                    self.stats,
                    path=path,
                    local_addr=local,
                    on_frame=on_frame,
                    measure=global_number % plan.measure_every == 0,
                    all_frames=first or bettor is not None,
                )
            except (TimeoutError, OSError, ConnectionError) as exc:
                self.connect_errors[describe_connect_error(exc)] += 1
                return
        self.connect_ms.append(client.connect_ms)
        self.clients.append(client)

    async def _ramp(self) -> None:
        plan = self.plan
        total = plan.spectators + plan.bettors
        gate = asyncio.Semaphore(CONNECTS_IN_FLIGHT)
        started = time.monotonic()
        # The checker first, alone: every later client is compared with it.
        await self._connect(0, gate)
        tasks = []
        for number in range(1, total):
            wait = started + number / plan.ramp - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            tasks.append(asyncio.create_task(self._connect(number, gate)))
        await asyncio.gather(*tasks)
        failed = sum(self.connect_errors.values())
        self.pipe.send(("ramped", len(self.clients), failed))

    # -- reporting ----------------------------------------------------------

    def _sample(self) -> dict[str, Any]:
        stats, tally = self.stats, self.tally
        errors = Counter(tally.errors)  # everything so far; only the news is sent
        errors.update("check:" + problem for problem in self.checker.problems)
        for code, n in stats.close_codes.items():
            errors[f"closed:{code}"] = n
        new_errors = errors - self.sent_errors
        self.sent_errors = errors
        rounds = self.checker.rounds - self.sent_rounds
        self.sent_rounds |= rounds
        sample = {
            "t": time.time(),
            "connected": stats.connected,
            "frames_in": stats.frames,
            "frames_out": stats.frames_out,
            "bytes_in": stats.bytes_in,
            "ticks": stats.ticks,
            "tick_delay_ms": stats.tick_delays_ms.tobytes(),
            "bet_ack_ms": tally.bet_ack_ms.tobytes(),
            "cashout_ack_ms": tally.cashout_ack_ms.tobytes(),
            "connect_ms": self.connect_ms.tobytes(),
            "errors": dict(new_errors),
            "connect_errors": dict(self.connect_errors),
            "rounds": sorted(rounds),
            "bets": tally.bets,
            "cashouts": tally.cashouts,
            "late_cashouts": tally.late_cashouts,
            "busy_retries": tally.busy_retries,
            "limited_retries": tally.limited_retries,
            "broke": tally.broke,
            "sessions": tally.sessions,
        }
        for values in (stats.tick_delays_ms, tally.bet_ack_ms, tally.cashout_ack_ms):
            del values[:]
        del self.connect_ms[:]
        return sample

    async def _report(self) -> None:
        while True:
            await asyncio.sleep(self.plan.sample_every)
            self.pipe.send(("sample", self._sample()))

    def _tick_accounting(self) -> dict[str, int]:
        """Expected, received and missed ticks over the measuring window."""
        end = self._mark()
        start = self.hold or end
        inside = [m for m in self.marks if m.at >= start.at]
        if len(inside) >= 2:
            start, end = inside[0], inside[-1]
        expected = end.checker - start.checker
        received = missed = missing = 0
        for i in range(len(start.clients)):
            transport = self.clients[i].transport
            if transport is None or transport.is_closing():
                continue  # dropped: counted by its close code, not here
            got = end.clients[i] - start.clients[i]
            received += got
            if got < expected:
                missed += expected - got
                missing += 1
        return {
            "ticks_expected_per_client": expected,
            "ticks_received_in_window": received,
            "ticks_missed": missed,
            "clients_missing_ticks": missing,
            "clients_checked": len(start.clients),
        }

    # -- the process --------------------------------------------------------

    async def main(self) -> None:
        loop = asyncio.get_running_loop()
        reporter = asyncio.create_task(self._report())
        ramp = asyncio.create_task(self._ramp())
        while True:
            command = await loop.run_in_executor(None, self.pipe.recv)
            if command == "hold":
                self.hold = self._mark()
                self.frames_at_hold = (self.stats.frames, self.stats.frames_out)
            elif command == "stop":
                break
        ramp.cancel()
        reporter.cancel()
        sample = self._sample()
        frames_in, frames_out = self.frames_at_hold
        total = self.plan.spectators + self.plan.bettors
        dropped = sum(1 for c in self.clients if c.transport is None or c.transport.is_closing())
        done = {
            "connect_pending": total - len(self.clients) - sum(self.connect_errors.values()),
            "dropped": dropped,
            **sample,
            **self._tick_accounting(),
            "frames_in_window": self.stats.frames - frames_in,
            "frames_out_window": self.stats.frames_out - frames_out,
        }
        for client in self.clients:
            if client.transport is not None:
                client.transport.close()
        self.pipe.send(("done", done))
