"""What the benchmarks share: ports, file limits, percentiles, a ``serve`` process."""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
from pathlib import Path


def raise_nofile() -> None:
    """Lift this process's open-file limit to its hard limit (thousands of sockets)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def spawn(*args: str) -> subprocess.Popen[bytes]:
    """A quiet Python child on embedded storage (never DATABASE_URL/REDIS_URL), many fds."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    return subprocess.Popen(
        [sys.executable, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
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
