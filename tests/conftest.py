"""Real PostgreSQL and Redis for every test: the embedded ones, or DATABASE_URL/REDIS_URL.

One pair of servers per session; every test gets a database of its own and an
empty Redis database, so tests never see each other's money.

Any exception left unhandled in a task or a callback of the event loop fails
the test that left it (``unhandled_loop_errors``).
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import itertools
import os
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
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


@pytest.fixture(autouse=True)
def unhandled_loop_errors(request: pytest.FixtureRequest) -> Iterator[list[dict[str, Any]]]:
    """Fail the test if the event loop reported an unhandled error while it ran: a
    task that died with nobody to await it, or a callback that raised."""
    if not inspect.iscoroutinefunction(getattr(request, "function", None)):
        yield []
        return
    loop = request.getfixturevalue("_unhandled_loop_errors_loop")
    gc.collect()  # what earlier tests left behind is not this test's
    errors: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    try:
        yield errors
        gc.collect()  # a dead task's "exception was never retrieved" is reported when freed
    finally:
        loop.set_exception_handler(previous)
    if errors:
        pytest.fail(
            "the event loop reported unhandled errors: "
            + "; ".join(f"{c.get('message')}: {c.get('exception')!r}" for c in errors)
        )


@pytest.fixture
async def _unhandled_loop_errors_loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


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


async def another_process(storage: Storage) -> Storage:
    """New connections to the same PostgreSQL database and Redis, as another
    process would have (PostgreSQL's advisory locks are per connection)."""
    db = await Database.connect(storage.db.url)
    return Storage(db=db, live=LiveStore(storage.live.url), embedded=None)


@pytest.fixture
async def storage(servers: Servers) -> AsyncIterator[Storage]:
    st = await fresh_storage(servers)
    yield st
    await st.close()
