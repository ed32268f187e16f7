"""What the benchmarks share: ports, file limits, percentiles, a ``serve`` process."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from loadtest.system import raise_nofile

__all__ = [
    "free_port",
    "machine",
    "percentile",
    "raise_nofile",
    "spawn",
    "start_serve",
    "wait_healthy",
]


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


def machine() -> str:
    """One line about this machine: CPU, cores, memory, kernel, Python, key packages."""
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    versions = ", ".join(
        f"{name} {importlib.metadata.version(name)}" for name in ("uvloop", "websockets", "orjson")
    )
    return (
        f"{os.cpu_count()} cores ({cpu}), {mem_kib / 2**20:.0f} GiB, Linux {platform.release()}, "
        f"Python {platform.python_version()}, {versions}"
    )
