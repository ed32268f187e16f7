"""The embedded servers (storage/embedded.py): started, adopted, restarted, stopped."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pillarpayout_ws.storage.embedded import EmbeddedServers

from ..serving import ServeProcess, pid_alive, server_pids


def kill9(*pids: int) -> None:
    """SIGKILL ``pids`` and wait (at most 10 s) until ``kill 0`` finds none of them:
    PostgreSQL checks its lock file the same way, so a process that exited but is
    not yet reaped would still block the next start."""
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while any(pid_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.02)


def test_start_stop_and_revive(tmp_path: Path) -> None:
    servers = EmbeddedServers(tmp_path / "data")
    servers.start()
    try:
        assert servers.owner
        assert servers.running_redis_url() == servers.redis_url
        assert servers.revive() == []  # both alive: nothing to do
        pg, redis = server_pids(tmp_path / "data")
        kill9(redis)
        assert servers.revive() == ["Redis"]
        assert server_pids(tmp_path / "data")[0] == pg
        assert pid_alive(server_pids(tmp_path / "data")[1])
    finally:
        servers.stop()
    assert servers.running_redis_url() is None


def test_two_revives_at_once_start_one_redis(tmp_path: Path) -> None:
    """The health loop and another check may revive at the same moment (each in a
    thread): one Redis is started, not a second one beside it on the same files."""
    servers = EmbeddedServers(tmp_path / "data")
    servers.start()
    try:
        _, redis = server_pids(tmp_path / "data")
        kill9(redis)
        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(lambda _: servers.revive(), range(2)))
        assert sorted(results) == [[], ["Redis"]]
        valkeys = [c for c in servers._children if c.poll() is None and "valkey" in str(c.args)]
        assert len(valkeys) == 1
    finally:
        servers.stop()


def test_orphaned_servers_after_kill_9_are_adopted(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = ServeProcess(data)
    first.wait_healthy()
    first.kill9()
    pg, redis = server_pids(data)
    assert pid_alive(pg) and pid_alive(redis)  # orphans, still running

    second = ServeProcess(data)
    try:
        second.wait_healthy()
        assert "adopted the running PostgreSQL" in second.log
        assert "adopted the running Redis" in second.log
        assert server_pids(data) == (pg, redis)
        assert "new seed chain" not in second.log  # the data of the first run is there
    finally:
        assert second.terminate() == 0
    assert not pid_alive(pg) and not pid_alive(redis)


def test_stale_pid_files_after_everything_was_killed(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = ServeProcess(data)
    first.wait_healthy()
    chain_line = next(line for line in first.log.splitlines() if "serving seed chain" in line)
    commitment = chain_line.split("commitment ")[1].split(")")[0]
    pg, redis = server_pids(data)
    first.kill9()
    kill9(pg, redis)
    second = ServeProcess(data)
    try:
        second.wait_healthy()
        # Same chain as before: PostgreSQL recovered its data from the WAL.
        assert f"commitment {commitment}" in second.log
    finally:
        assert second.terminate() == 0
