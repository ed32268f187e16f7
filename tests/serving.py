"""Running a real ``pillarpayout serve`` process in tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from .conftest import PILLARPAYOUT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def healthz(port: int) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


class ServeProcess:
    """``pillarpayout serve`` on a data dir, with its log in ``data_dir.parent``."""

    def __init__(self, data_dir: Path, *extra: str, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.port = free_port() if port is None else port
        self.log_path = data_dir.parent / f"serve-{self.port}.log"
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    *PILLARPAYOUT,
                    "serve",
                    "--data-dir",
                    str(data_dir),
                    "--port",
                    str(self.port),
                    *extra,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_healthy(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited with {self.proc.returncode}:\n{self.log}")
            if healthz(self.port) == 200:
                return
            time.sleep(0.05)
        raise AssertionError(f"serve did not become healthy:\n{self.log}")

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
    redis = int((data_dir / "redis" / "valkey.pid").read_text().split()[0])
    return pg, redis


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
