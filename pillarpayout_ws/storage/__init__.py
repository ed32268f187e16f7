"""Storage: PostgreSQL (durable history), Redis (live mirror + write-ahead), embedded servers.

``open_storage()`` is the one way in: it starts or adopts the embedded
servers for whatever URL was not given, connects, and applies the schema.
``StorageConfig`` holds where, as the flags every command that opens storage
shares (``--data-dir``, ``--database-url``, ``--redis-url``).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from ..settings import setting
from .embedded import EmbeddedServers
from .live import LiveStore
from .postgres import Database

log = logging.getLogger("pillarpayout.storage")

__all__ = ["Database", "EmbeddedServers", "LiveStore", "Storage", "StorageConfig", "open_storage"]


@dataclass(frozen=True, slots=True, kw_only=True)
class StorageConfig:
    data_dir: Path = setting(
        Path("./.pillarpayout"),
        "where the embedded servers keep their data",
        shown="./.pillarpayout",
    )
    database_url: str | None = setting(None, "PostgreSQL URL", env="DATABASE_URL", shown="embedded")
    redis_url: str | None = setting(None, "Redis URL", env="REDIS_URL", shown="embedded")

    async def open(self) -> Storage:
        return await open_storage(
            data_dir=self.data_dir, database_url=self.database_url, redis_url=self.redis_url
        )


@dataclass
class Storage:
    db: Database
    live: LiveStore
    embedded: EmbeddedServers | None

    async def close(self) -> None:
        """Close connections; stop the embedded servers if this process owns them."""
        try:
            await self.live.close()
            await self.db.close()
        finally:
            if self.embedded is not None:
                await asyncio.to_thread(self.embedded.stop)


async def open_storage(
    *, data_dir: Path, database_url: str | None = None, redis_url: str | None = None
) -> Storage:
    """Connect to PostgreSQL and Redis, starting embedded ones for any URL not given."""
    embedded: EmbeddedServers | None = None
    if database_url is None or redis_url is None:
        embedded = EmbeddedServers(data_dir)
        await asyncio.to_thread(
            embedded.start, postgres=database_url is None, redis=redis_url is None
        )
        database_url = database_url or embedded.database_url
        redis_url = redis_url or embedded.redis_url
    db: Database | None = None
    try:
        db = await Database.connect(database_url)
        await db.apply_schema()
        live = LiveStore(redis_url)
        await live.ping()
    except BaseException:
        if db is not None:
            await db.close()
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
        raise
    return Storage(db=db, live=live, embedded=embedded)
