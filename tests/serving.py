"""Running a real ``pillarpayout serve`` process in tests."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from loadtest.serving import embedded_env, free_port, healthz, serve_command, wait_healthy

__all__ = [
    "ServeProcess",
    "free_port",
    "healthz",
    "pid_alive",
    "postgres_pids",
    "redis_pid",
    "server_pids",
]


class ServeProcess:
    """``pillarpayout serve`` on a data dir, with its log in ``data_dir.parent``."""

    def __init__(self, data_dir: Path, *extra: str, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.port = free_port() if port is None else port
        self.log_path = data_dir.parent / f"serve-{self.port}.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                serve_command(data_dir, self.port, *extra),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=embedded_env(),
            )

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_healthy(self, timeout: float = 60.0) -> None:
        try:
            wait_healthy(self.port, timeout, alive=lambda: self.proc.poll() is None)
        except RuntimeError:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"serve exited with {self.proc.returncode}:\n{self.log}"
                ) from None
            raise AssertionError(f"serve did not become healthy:\n{self.log}") from None

    def kill9(self) -> None:
        self.proc.kill()
        self.proc.wait()

    def terminate(self, timeout: float = 60.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def server_pids(data_dir: Path) -> tuple[int, int]:
    """(PostgreSQL pid, Redis pid) from the embedded servers' pid files."""
    pg = int((data_dir / "postgres" / "data" / "postmaster.pid").read_text().split()[0])
    return pg, redis_pid(data_dir)


def redis_pid(data_dir: Path) -> int:
    """The embedded Redis's pid, from its pid file (PostgreSQL need not run)."""
    return int((data_dir / "redis" / "valkey.pid").read_text().split()[0])


def postgres_pids(data_dir: Path) -> list[int]:
    """The postmaster of ``data_dir`` and its children."""
    master = int((data_dir / "postgres" / "data" / "postmaster.pid").read_text().split()[0])
    pids = [master]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == master:
                pids.append(int(entry.name))
    return pids
