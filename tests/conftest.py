"""Real PostgreSQL and Redis for every test: the embedded ones, or DATABASE_URL/REDIS_URL.

One pair of servers per session; every test gets a database of its own and an
empty Redis database, so tests never see each other's money.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import redis.asyncio as aioredis

from pillarpayout_ws.storage import Storage
from pillarpayout_ws.storage.embedded import EmbeddedServers
from pillarpayout_ws.storage.live import LiveStore
from pillarpayout_ws.storage.postgres import Database

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
PILLARPAYOUT = [sys.executable, "-m", "pillarpayout_ws"]
_counter = itertools.count()


@dataclass(frozen=True)
class Servers:
    database_url: str  # an admin database on the server (tests create their own)
    redis_url: str
    embedded: EmbeddedServers | None


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    db_url, redis_url = os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL")
    embedded = None
    if db_url is None or redis_url is None:
        embedded = EmbeddedServers(tmp_path_factory.mktemp("servers"))
        embedded.start(postgres=db_url is None, redis=redis_url is None)
        db_url = db_url or embedded.database_url
        redis_url = redis_url or embedded.redis_url
    yield Servers(db_url, redis_url, embedded)
    if embedded is not None:
        embedded.stop()


async def fresh_storage(servers: Servers) -> Storage:
    """A new empty database with the schema, and an empty Redis database."""
    name = f"pp_test_{os.getpid()}_{next(_counter)}"
    admin = await asyncpg.connect(servers.database_url)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    db = await Database.connect(with_database(servers.database_url, name))
    await db.apply_schema()
    client = aioredis.Redis.from_url(servers.redis_url)
    await client.flushdb()
    await client.aclose()
    return Storage(db=db, live=LiveStore(servers.redis_url), embedded=None)


@pytest.fixture
async def storage(servers: Servers) -> AsyncIterator[Storage]:
    st = await fresh_storage(servers)
    yield st
    await st.close()
