"""Hand every broadcast frame to relays over Redis pub/sub, never holding up the game.

``Publisher.frame()`` is called by the fan-out for each broadcast (the bytes
already encoded): it only appends to a queue. A background task drains the
queue into one pipelined round trip of PUBLISH commands, and refreshes the
``hello`` snapshot relays greet newcomers with: after any frame that changes
more than the multiplier (a phase, bets, chat, a goal) but at most every
``SNAPSHOT_MIN_S``, and at least every ``SNAPSHOT_EVERY_S``. The snapshot is
asked of ``greet`` (``Hello.greet``), which answers once the game shows no
more than has been broadcast, so it takes its place in the queue right after
the frames it already contains. The game's mirror in Redis rides in the same
round trip, off the acks' path: ``game_state`` (the runner's latest, at
every tick and phase change) and the changes to ``active_bets``.

Messages are ``F<seq> <frame>`` (a frame to broadcast) or ``H<seq> <hello>``
(the new snapshot, not forwarded). ``seq`` counts every message from 1 for
this game process, so a relay sees a gap as a jump. When Redis does not take
a batch, the batch is dropped and counted (stale ticks are worth nothing
later) and a fresh snapshot follows as soon as Redis is back, which is what
the relays resynchronise from.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable

from ..exceptions import RedisUnavailable
from ..retry import Backoff, wait_for_event
from ..storage.live import ActiveBets, LiveStore, active_bet

SNAPSHOT_EVERY_S = 1.0
SNAPSHOT_MIN_S = 0.2  # a snapshot costs a game snapshot: not more often than this
QUEUE_LIMIT = 10_000
RETRY_S = 0.5


Greet = Callable[[Callable[[bytes], object]], None]


class Publisher:
    def __init__(self, live: LiveStore, greet: Greet) -> None:
        self._live = live
        self._greet = greet
        self._queue: collections.deque[bytes] = collections.deque()
        self._seq = 0
        self._wake = asyncio.Event()
        self._snapshot_due = True
        self._snapshot_at = 0.0
        self._snapshot: bytes | None = None  # asked for, not yet published
        self._state: dict[str, str] | None = None  # the latest, not yet written
        self._bets = ActiveBets()  # changes not yet written
        self._closed = False
        self._attempted = asyncio.Condition()  # notified after every round trip
        self.published = 0
        self.dropped = 0
        self.state_written: dict[str, str] | None = None  # the last game_state Redis took

    def frame(self, payload: bytes, droppable: bool) -> None:
        """Queue one broadcast frame (the fan-out calls this; it never blocks)."""
        self._seq += 1
        self._queue.append(b"F%d %s" % (self._seq, payload))
        if len(self._queue) > QUEUE_LIMIT:
            self._queue.popleft()
            self.dropped += 1
        if not droppable:
            self._snapshot_due = True
        self._wake.set()

    # -- the mirror (the runner calls these; none blocks) --------------------

    def game_state(self, fields: dict[str, str]) -> None:
        """The game's latest state, for Redis's ``game_state`` hash."""
        self._state = fields
        self._wake.set()

    def round_opened(self) -> None:
        """A new round: ``active_bets`` starts empty."""
        self._bets = ActiveBets(reset=True)
        self._wake.set()

    def bet(
        self, key: tuple[int, int], amount: int, placed_at: float, multiplier: int | None
    ) -> None:
        """A bet (user id, slot) of the current round, placed or (with ``multiplier``)
        cashed out. Its field is the user id (slot 0) or ``"<user id>:1"`` (slot 1)."""
        self._bets.entries[_field(key)] = active_bet(amount, placed_at, multiplier)
        self._wake.set()

    def cancelled(self, key: tuple[int, int]) -> None:
        """A bet (user id, slot) of the current round was cancelled: its field goes."""
        self._bets.entries[_field(key)] = None
        self._wake.set()

    @property
    def pending(self) -> bool:
        """Whether anything waits for the next round trip."""
        bets = self._bets
        return bool(self._queue or self._state or self._snapshot or bets.reset or bets.entries)

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Return once ``predicate()`` holds, checking it after every round trip to Redis."""
        async with self._attempted:
            await self._attempted.wait_for(predicate)

    def close(self) -> None:
        self._closed = True
        self._wake.set()

    def _snapshot_taken(self, hello: bytes) -> None:
        self._seq += 1
        self._queue.append(b"H%d %s" % (self._seq, hello))
        self._snapshot = hello
        self._wake.set()

    async def run(self) -> None:
        """Publish until ``close()``; what was queued before it goes out too."""
        backoff = Backoff(RETRY_S, RETRY_S)
        while True:
            await wait_for_event(self._wake, SNAPSHOT_EVERY_S)
            self._wake.clear()
            closing = self._closed
            age = time.monotonic() - self._snapshot_at
            if (self._snapshot_due and age >= SNAPSHOT_MIN_S) or age >= SNAPSHOT_EVERY_S:
                self._snapshot_due = False
                self._snapshot_at = time.monotonic()
                self._greet(self._snapshot_taken)
            batch = list(self._queue)
            self._queue.clear()
            snapshot, self._snapshot = self._snapshot, None
            state, self._state = self._state, None
            bets, self._bets = self._bets, ActiveBets()
            try:
                await self._live.publish(batch, snapshot, state, bets)
            except RedisUnavailable:
                # Old frames are worth nothing later: drop them, and let the
                # relays see the jump and take the next snapshot.
                self.dropped += len(batch)
                self._snapshot_due = True
                if self._state is None:
                    self._state = state  # still the latest: write it when Redis is back
                self._bets = _merged(bets, self._bets)
                await self._notify()
                if closing:
                    return
                await asyncio.sleep(backoff.failed())
                continue
            self.published += len(batch)
            if state is not None:
                self.state_written = state
            await self._notify()
            if closing:
                return

    async def _notify(self) -> None:
        async with self._attempted:
            self._attempted.notify_all()


def _field(key: tuple[int, int]) -> str:
    user_id, slot = key
    return str(user_id) if slot == 0 else f"{user_id}:{slot}"


def _merged(older: ActiveBets, newer: ActiveBets) -> ActiveBets:
    """What is still to write when ``older`` could not be written before ``newer``."""
    if newer.reset:
        return newer
    return ActiveBets(older.reset, {**older.entries, **newer.entries})
