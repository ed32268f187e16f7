"""serve refuses a Redis without ``appendonly yes`` unless --allow-redis-without-aof."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis.asyncio as aioredis

from pillarpayout_ws.exceptions import ConfigError
from pillarpayout_ws.server.app import check_appendonly
from pillarpayout_ws.storage import Storage
from pillarpayout_ws.storage.live import LiveStore

from ..conftest import Servers
from ..serving import ServeProcess
from ..test_cli import run_cli


@pytest.fixture
async def without_aof(servers: Servers) -> AsyncIterator[None]:
    """The test Redis with appendonly no, for this test only."""
    admin = aioredis.Redis.from_url(servers.redis_url)
    before = str((await admin.config_get("appendonly"))["appendonly"])
    await admin.config_set("appendonly", "no")
    try:
        yield
    finally:
        await admin.config_set("appendonly", before)
        restored = (await admin.config_get("appendonly"))["appendonly"]
        await admin.aclose()
        assert restored == before == "yes", (restored, before)


def with_user(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{host}"))


async def test_the_embedded_redis_runs_with_appendonly(storage: Storage) -> None:
    assert await storage.live.appendonly() == "yes"
    await check_appendonly(storage.live, allow=False)


@pytest.mark.usefixtures("without_aof")
async def test_appendonly_no_is_refused_unless_allowed(
    storage: Storage, caplog: pytest.LogCaptureFixture
) -> None:
    assert await storage.live.appendonly() == "no"
    with pytest.raises(ConfigError) as caught:
        await check_appendonly(storage.live, allow=False)
    message = str(caught.value)
    assert "has appendonly 'no'" in message and "--allow-redis-without-aof" in message
    assert "\n" not in message
    with caplog.at_level(logging.WARNING, logger="pillarpayout"):
        await check_appendonly(storage.live, allow=True)
    assert "starting anyway (--allow-redis-without-aof)" in caplog.text


async def test_a_redis_that_will_not_say_is_refused_unless_allowed(
    servers: Servers, caplog: pytest.LogCaptureFixture
) -> None:
    admin = aioredis.Redis.from_url(servers.redis_url)
    await admin.acl_setuser(
        "pp_noconfig",
        enabled=True,
        passwords=["+s3cret-pw"],
        keys=["~*"],
        channels=["*"],
        commands=["+@all", "-config"],
    )
    live = LiveStore(with_user(servers.redis_url, "pp_noconfig", "s3cret-pw"))
    try:
        await live.ping()
        assert await live.appendonly() is None
        with pytest.raises(ConfigError) as caught:
            await check_appendonly(live, allow=False)
        message = str(caught.value)
        assert "refused CONFIG GET appendonly" in message and "durability is unknown" in message
        assert "s3cret-pw" not in message
        with caplog.at_level(logging.WARNING, logger="pillarpayout"):
            await check_appendonly(live, allow=True)
        assert "durability is unknown; starting anyway" in caplog.text
        assert "s3cret-pw" not in caplog.text
    finally:
        await live.close()
        await admin.acl_deluser("pp_noconfig")
        await admin.aclose()


@pytest.mark.usefixtures("without_aof")
async def test_serve_refuses_to_start_in_one_line(
    storage: Storage, servers: Servers, tmp_path: Path
) -> None:
    result = run_cli(
        "serve", "--data-dir", str(tmp_path / "d"), "--port", "0",
        "--database-url", storage.db.url, "--redis-url", servers.redis_url,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("pillarpayout serve: Redis at ")
    assert "has appendonly 'no'" in last and "--allow-redis-without-aof" in last
    assert "Traceback" not in result.stderr


@pytest.mark.usefixtures("without_aof")
async def test_the_override_starts_with_a_warning_every_time(
    storage: Storage, servers: Servers, tmp_path: Path
) -> None:
    data = tmp_path / "d"
    data.mkdir()
    flags = ("--database-url", storage.db.url, "--redis-url", servers.redis_url)
    for _ in range(2):  # a warning at every start
        serve = ServeProcess(data, *flags, "--allow-redis-without-aof", "--log-format", "json")
        try:
            await asyncio.to_thread(serve.wait_healthy)
            assert serve.terminate() == 0
        finally:
            if serve.proc.poll() is None:
                serve.kill9()
        warnings = [
            line
            for line in map(json.loads, serve.log.splitlines())
            if line["level"] == "WARNING" and "allow-redis-without-aof" in line["message"]
        ]
        assert len(warnings) == 1, serve.log
        assert "has appendonly 'no'; starting anyway" in warnings[0]["message"]
