"""The chat room: who may say what how often, the recent lines, and their storage.

- A logged-in user may say ``CHAT_BURST`` lines at once and ``CHAT_RATE`` a
  second after that, whatever number of sockets they use (one bucket per
  user). A bucket that has refilled remembers nothing, so it is dropped at
  the next save: the room holds buckets only for users who chatted lately.
- The whole room may cost at most ``ROOM_DELIVERIES_RATE`` socket writes a
  second (burst ``ROOM_DELIVERIES_BURST``): a line costs one write per
  connected socket, so many accounts each within their own rate could
  otherwise spend the fan-out's CPU on chat (at 5 us a write, 120 users a
  line a second each cost 1.8 s of CPU a second at 3,000 sockets). Past it a
  line is refused as "the chat is busy": 20 lines a second with 1,000
  sockets, 2 with 10,000.
- A line is broadcast at once; the last ``RECENT_CHAT`` lines go into every
  ``hello``; lines are written to PostgreSQL in batches (``save``, every
  second from the server's tasks). If PostgreSQL is down they wait for the
  next save. A restarted server starts from the last lines PostgreSQL holds
  (``restore``).
- Every line has an id, handed out here as it is said (so its ``chat`` frame
  carries it and a moderator can delete it at once), from a block of the
  table's sequence reserved at the start (``Database.reserve_chat_ids``).
- A deleted line (``delete``) leaves the recent lines (``hello``,
  ``/api/chat``) and is marked deleted in PostgreSQL, never removed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from typing import NamedTuple

from ..exceptions import PillarPayoutError
from ..protocol import encode_chat
from ..storage.postgres import Database
from .clock import Clock
from .fanout import Hub
from .limits import TokenBucket

__all__ = [
    "CHAT_BURST",
    "CHAT_RATE",
    "RECENT_CHAT",
    "ROOM_DELIVERIES_BURST",
    "ROOM_DELIVERIES_RATE",
    "ChatLine",
    "ChatRoom",
]

CHAT_RATE = 1.0
CHAT_BURST = 5.0
ROOM_DELIVERIES_RATE = 20_000.0  # socket writes a second for chat: about 10 % of a core
ROOM_DELIVERIES_BURST = 60_000.0
RECENT_CHAT = 50


class ChatLine(NamedTuple):
    id: int
    user_id: int
    username: str
    text: str
    ts: float


class _Unsaved(NamedTuple):
    line: ChatLine
    round_id: int | None


class ChatRoom:
    def __init__(self, db: Database, hub: Hub, clock: Clock) -> None:
        self._db = db
        self._hub = hub
        self._clock = clock
        self._lines: collections.deque[ChatLine] = collections.deque(maxlen=RECENT_CHAT)
        self._to_save: list[_Unsaved] = []
        self._buckets: dict[int, TokenBucket] = {}
        self._room = TokenBucket(ROOM_DELIVERIES_RATE, ROOM_DELIVERIES_BURST, clock.now)
        self._next_id = 1
        self._saving = asyncio.Lock()

    async def restore(self) -> None:
        """Start from the last lines stored, and ids past every earlier one (the server's start)."""
        self._lines.extend(ChatLine(*row) for row in await self._db.recent_chat(RECENT_CHAT))
        self._next_id = await self._db.reserve_chat_ids()

    def recent(self) -> list[ChatLine]:
        """The last lines not deleted, oldest first, for ``hello`` and ``/api/chat``."""
        return list(self._lines)

    @property
    def unsaved(self) -> int:
        return len(self._to_save)

    @property
    def buckets(self) -> int:
        """Users the room holds a rate-limit bucket for."""
        return len(self._buckets)

    def say(self, user_id: int, username: str, text: str, round_id: int | None) -> str | None:
        """Broadcast ``text`` from ``username`` and queue it for storage; else (and
        nothing happens) why not: the user or the room is over its rate."""
        bucket = self._buckets.get(user_id)
        if bucket is None:
            bucket = self._buckets[user_id] = TokenBucket(CHAT_RATE, CHAT_BURST, self._clock.now)
        if not bucket.take():
            return "one chat line a second, please"
        if not self._room.take(min(ROOM_DELIVERIES_BURST, max(1, len(self._hub.clients)))):
            return "the chat is busy: try again in a moment"
        line = ChatLine(self._next_id, user_id, username, text, time.time())
        self._next_id += 1
        self._lines.append(line)
        self._to_save.append(_Unsaved(line, round_id))
        self._hub.broadcast(encode_chat(username, text, line.ts, chat_id=line.id))
        return None

    def forget(self, chat_id: int) -> None:
        """Take a deleted line out of the recent lines (it is marked in PostgreSQL)."""
        for line in self._lines:
            if line.id == chat_id:
                self._lines.remove(line)
                return

    async def save(self) -> None:
        """Write the queued lines to PostgreSQL; forget the buckets that refilled."""
        self._buckets = {user: b for user, b in self._buckets.items() if not b.full}
        with contextlib.suppress(PillarPayoutError):
            await self.store()

    async def store(self) -> None:
        """Write the queued lines to PostgreSQL, one writer at a time: when this
        returns, every line said before is stored (else ``PillarPayoutError``)."""
        async with self._saving:
            if not self._to_save:
                return
            queued, self._to_save = self._to_save, []
            try:
                await self._db.save_chat(
                    [(u.line.user_id, u.round_id, u.line.text) for u in queued],
                    ids=[u.line.id for u in queued],
                    next_id=self._next_id,
                )
            except PillarPayoutError:
                self._to_save[:0] = queued  # keep them for the next try
                raise
