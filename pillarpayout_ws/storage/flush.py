"""Moving completed rounds from Redis to PostgreSQL: the flush loop and recovery.

Redis holds every round's write-ahead until PostgreSQL has committed it; only
then are the round's keys deleted. So whatever dies when, a round is either
still in Redis (and will be flushed again, idempotently) or already in
PostgreSQL, never neither.

A batch PostgreSQL refuses (a constraint it breaks, or write-ahead that does
not settle) would be refused again on every retry, so its rounds are then
flushed one at a time: the others go on, and each refused round is held in
Redis for an operator.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..exceptions import DatabaseUnavailable, RedisUnavailable, StorageError
from ..retry import Backoff, wait_for_event
from .live import LiveStore
from .postgres import Database, FlushResult
from .settle import settle_round

log = logging.getLogger("pillarpayout.storage")


async def flush_rounds(
    live: LiveStore, db: Database, round_ids: Sequence[int], *, with_grants: bool = True
) -> FlushResult:
    """Flush these rounds (and unflushed grants) from Redis to PostgreSQL, then forget them.

    A round without a crash record is settled as void (see ``settle.py``), so
    only pass the live round when it is to be voided.
    """
    records = await live.round_records(round_ids)
    settled = [settle_round(records[rid]) for rid in round_ids if records[rid]]
    grants = await live.pending_grants() if with_grants else []
    result = await db.flush(settled, grants)
    await live.forget_flushed(list(round_ids), [g.key for g in grants])
    return result


async def flush_or_hold(
    live: LiveStore, db: Database, round_ids: Sequence[int]
) -> tuple[FlushResult, dict[int, str]]:
    """Flush the rounds (and grants) in one batch or, if PostgreSQL refuses it, one at a time.

    Returns what was written and the refused rounds (id -> why), which stay in
    Redis. ``DatabaseUnavailable`` and ``RedisUnavailable`` propagate; so does a
    refusal of the grants themselves.
    """
    try:
        return await flush_rounds(live, db, round_ids), {}
    except (DatabaseUnavailable, RedisUnavailable):
        raise
    except StorageError as exc:
        log.error(
            "flush of %d round(s) refused (%s); flushing them one at a time",
            len(round_ids),
            _one_line(exc),
        )
    results: list[FlushResult] = []
    refused: dict[int, str] = {}
    for round_id in round_ids:
        try:
            results.append(await flush_rounds(live, db, [round_id], with_grants=False))
        except (DatabaseUnavailable, RedisUnavailable):
            raise
        except StorageError as exc:
            refused[round_id] = why = _one_line(exc)
            log.error("round %d cannot be flushed and stays in Redis: %s", round_id, why)
    results.append(await flush_rounds(live, db, [], with_grants=True))
    total = FlushResult(
        sum(r.rounds_written for r in results),
        sum(r.rounds_voided for r in results),
        sum(r.rounds_skipped for r in results),
        sum(r.ledger_rows for r in results),
    )
    return total, refused


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())  # PostgreSQL's DETAIL comes on a line of its own


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    crashed: int
    voided: int
    skipped: int


async def recover(live: LiveStore, db: Database) -> RecoveryReport:
    """Finish every round left in Redis before the first new round (architecture rule 5).

    Crashed rounds are flushed as they are; rounds that never crashed are
    voided (acknowledged cashouts honoured, every other bet refunded). Running
    it twice changes nothing: the second run finds Redis empty, and a run cut
    short after PostgreSQL committed finds the rounds there already.
    """
    round_ids = await live.pending_round_ids()
    result, refused = await flush_or_hold(live, db, round_ids)
    if refused:
        # The server does not start while a round's bets are in no balance
        # PostgreSQL holds.
        first = min(refused)
        raise StorageError(
            f"recovery: round(s) {', '.join(map(str, sorted(refused)))} cannot be flushed "
            f"and stay in Redis (round {first}: {refused[first]}); the other "
            f"{len(round_ids) - len(refused)} were flushed"
        )
    report = RecoveryReport(
        crashed=result.rounds_written - result.rounds_voided,
        voided=result.rounds_voided,
        skipped=result.rounds_skipped,
    )
    if round_ids:
        log.info(
            "recovery: %d round(s) in Redis: %d flushed as crashed, %d voided, "
            "%d already in PostgreSQL",
            len(round_ids),
            report.crashed,
            report.voided,
            report.skipped,
        )
    return report


class Flusher:
    """Flushes completed rounds in batches: every ``batch_rounds`` rounds or ``interval_s``.

    If PostgreSQL (or Redis) is down, the batch stays queued and is retried
    with exponential backoff; the game never waits for it. A refused batch is
    flushed a round at a time and the refused rounds are ``held`` (module
    docstring). ``healthy``, ``lag_s`` and ``held`` feed ``/healthz`` and
    ``/metrics``.
    """

    def __init__(
        self,
        live: LiveStore,
        db: Database,
        *,
        batch_rounds: int = 10,
        interval_s: float = 1.0,
        max_backoff_s: float = 10.0,
        on_flushed: Callable[[], None] | None = None,
    ) -> None:
        self._live = live
        self._on_flushed = on_flushed  # after every flush that wrote rounds
        self._db = db
        self._batch_rounds = batch_rounds
        self._interval_s = interval_s
        self._max_backoff_s = max_backoff_s
        self._queue: dict[int, float] = {}  # round id -> monotonic time it completed
        self._wake = asyncio.Event()
        self._closed = False
        self._attempted = asyncio.Condition()  # notified after every flush attempt
        self._flushing = asyncio.Lock()
        self.healthy = True
        self.held: dict[int, str] = {}  # round id -> why PostgreSQL refused it
        self.rounds_flushed = 0

    def round_completed(self, round_id: int) -> None:
        self._queue.setdefault(round_id, time.monotonic())
        if len(self._queue) >= self._batch_rounds:
            self._wake.set()

    @property
    def backlog(self) -> int:
        return len(self._queue)

    @property
    def lag_s(self) -> float:
        """How long the oldest queued round has waited for PostgreSQL."""
        if not self._queue:
            return 0.0
        return time.monotonic() - min(self._queue.values())

    async def flush_now(self) -> FlushResult | None:
        """Flush the whole queue once, holding refused rounds; raises if a server is
        down. One flush at a time: a second caller waits, then flushes what is left."""
        async with self._flushing:
            return await self._flush_queue()

    async def _flush_queue(self) -> FlushResult | None:
        if not self._queue:
            return None
        round_ids = sorted(self._queue)
        result, refused = await flush_or_hold(self._live, self._db, round_ids)
        for round_id in round_ids:
            del self._queue[round_id]
        self.rounds_flushed += len(round_ids) - len(refused)
        self.held.update(refused)
        if result.rounds_written and self._on_flushed is not None:
            self._on_flushed()
        return result

    def close(self) -> None:
        """Make ``run()`` return at its next turn (the caller then calls ``flush_now``)."""
        self._closed = True
        self._wake.set()

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Return once ``predicate()`` holds, checking it after every flush attempt."""
        async with self._attempted:
            await self._attempted.wait_for(predicate)

    async def _attempt(self) -> None:
        try:
            await self.flush_now()
        finally:
            async with self._attempted:
                self._attempted.notify_all()

    async def run(self) -> None:
        """The flush loop; runs until ``close()``."""
        max_s = self._max_backoff_s
        backoff = Backoff(min(max_s, max(2 * self._interval_s, 0.1)), max_s)
        wait_s = self._interval_s
        while not self._closed:
            await wait_for_event(self._wake, wait_s)
            self._wake.clear()
            if self._closed:
                return
            try:
                await self._attempt()
            except (DatabaseUnavailable, RedisUnavailable) as exc:
                self.healthy = False
                wait_s = backoff.failed()
                log.warning(
                    "flush failed (%d round(s) waiting, retry in %.1f s): %s",
                    self.backlog,
                    wait_s,
                    exc,
                )
                continue
            except StorageError:
                # Only the grants get here (the rounds were flushed one at a
                # time): they stay in Redis, and the game goes on.
                self.healthy = False
                log.exception("grants refused by PostgreSQL; they stay in Redis")
                wait_s = self._max_backoff_s
                continue
            backoff.succeeded()
            wait_s = self._interval_s
            if self.held:
                self.healthy = False
                continue
            if not self.healthy:
                log.info("flush caught up")
            self.healthy = True
