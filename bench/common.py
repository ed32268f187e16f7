"""What the benchmarks share: percentiles, the machine, and (from ``loadtest``) ports,
file limits and a ``serve`` process."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import signal
import subprocess
from pathlib import Path

from loadtest.serving import free_port, harness_command, spawn, start_serve, wait_healthy
from loadtest.system import raise_nofile

__all__ = [
    "free_port",
    "harness_command",
    "machine",
    "percentile",
    "raise_nofile",
    "ratio",
    "spawn",
    "start_serve",
    "stop",
    "wait_healthy",
]


def stop(proc: subprocess.Popen[bytes], within_s: float = 60.0) -> None:
    """SIGTERM ``proc`` and wait for it; kill it if it has not ended ``within_s``."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(within_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def ratio(a: float | None, b: float | None) -> float | None:
    """``a / b`` to three places, ``None`` when either is missing (or ``b`` is 0)."""
    return round(a / b, 3) if a is not None and b else None


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
