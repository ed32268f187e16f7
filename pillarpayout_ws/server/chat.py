"""The chat room: who may say what how often, the recent lines, and their storage.

- A logged-in user may say ``CHAT_BURST`` lines at once and ``CHAT_RATE`` a
  second after that, whatever number of sockets they use (one bucket per
  user). A bucket that has refilled remembers nothing, so it is dropped at
  the next save: the room holds buckets only for users who chatted lately.
- A line is broadcast at once; the last ``RECENT_CHAT`` lines go into every
  ``hello``; lines are written to PostgreSQL in batches (``save``, every
  second from the server's tasks). If PostgreSQL is down they wait for the
  next save. A restarted server starts from the last lines PostgreSQL holds
  (``restore``).
"""

from __future__ import annotations

import collections
import time

from ..exceptions import PillarPayoutError
from ..protocol import encode_chat
from ..storage.postgres import Database
from .clock import Clock
from .fanout import Hub
from .limits import TokenBucket

__all__ = ["CHAT_BURST", "CHAT_RATE", "RECENT_CHAT", "ChatRoom"]

CHAT_RATE = 1.0
CHAT_BURST = 5.0
RECENT_CHAT = 50

ChatLine = tuple[str, str, float]  # username, text, ts


class ChatRoom:
    def __init__(self, db: Database, hub: Hub, clock: Clock) -> None:
        self._db = db
        self._hub = hub
        self._clock = clock
        self._lines: collections.deque[ChatLine] = collections.deque(maxlen=RECENT_CHAT)
        self._to_save: list[tuple[int, int | None, str]] = []
        self._buckets: dict[int, TokenBucket] = {}

    async def restore(self) -> None:
        """Start from the last lines stored (the server's start)."""
        self._lines.extend(await self._db.recent_chat(RECENT_CHAT))

    def recent(self) -> list[ChatLine]:
        """The last lines, oldest first, for ``hello``."""
        return list(self._lines)

    @property
    def unsaved(self) -> int:
        return len(self._to_save)

    @property
    def buckets(self) -> int:
        """Users the room holds a rate-limit bucket for."""
        return len(self._buckets)

    def say(self, user_id: int, username: str, text: str, round_id: int | None) -> bool:
        """Broadcast ``text`` from ``username`` and queue it for storage; ``False``
        (and nothing happens) when the user is over the rate."""
        bucket = self._buckets.get(user_id)
        if bucket is None:
            bucket = self._buckets[user_id] = TokenBucket(CHAT_RATE, CHAT_BURST, self._clock.now)
        if not bucket.take():
            return False
        ts = time.time()
        self._lines.append((username, text, ts))
        self._to_save.append((user_id, round_id, text))
        self._hub.broadcast(encode_chat(username, text, ts))
        return True

    async def save(self) -> None:
        """Write the queued lines to PostgreSQL; forget the buckets that refilled."""
        self._buckets = {user: b for user, b in self._buckets.items() if not b.full}
        if not self._to_save:
            return
        lines, self._to_save = self._to_save, []
        try:
            await self._db.save_chat(lines)
        except PillarPayoutError:
            self._to_save[:0] = lines  # keep them for the next try
