"""A ``pillarpayout serve`` process for the soak and the benchmarks: ports, start, health."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from loadtest.system import raise_nofile


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def embedded_env() -> dict[str, str]:
    """This environment without DATABASE_URL/REDIS_URL: children use embedded storage."""
    return {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}


def spawn(*args: str) -> subprocess.Popen[bytes]:
    """A quiet Python child on embedded storage (never DATABASE_URL/REDIS_URL), many fds."""
    return subprocess.Popen(
        [sys.executable, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=embedded_env(),
        preexec_fn=raise_nofile,
    )


def start_serve(data_dir: str | Path, port: int, *flags: str) -> subprocess.Popen[bytes]:
    """``pillarpayout serve`` on its embedded storage."""
    return spawn(
        "-m",
        "pillarpayout_ws",
        "--log-level",
        "WARNING",
        "serve",
        "--data-dir",
        str(data_dir),
        "--port",
        str(port),
        *flags,
    )


def wait_healthy(port: int, within_s: float = 60.0) -> float:
    """Seconds until ``/healthz`` on ``port`` answers 200."""
    started = time.monotonic()
    while time.monotonic() - started < within_s:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                if r.status == 200:
                    return time.monotonic() - started
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"serve on port {port} was not healthy within {within_s:.0f} s")
