"""A ``pillarpayout serve`` process for the soak and the benchmarks: ports, start, health."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from loadtest.system import raise_nofile


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def embedded_env() -> dict[str, str]:
    """This environment without DATABASE_URL/REDIS_URL: children use embedded storage."""
    return {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}


def serve_command(
    data_dir: str | Path, port: int, *flags: str, log_level: str = "INFO"
) -> list[str]:
    """The command line of ``pillarpayout serve`` on ``data_dir``'s embedded storage."""
    return [
        sys.executable,
        "-m",
        "pillarpayout_ws",
        "--log-level",
        log_level,
        "serve",
        "--data-dir",
        str(data_dir),
        "--port",
        str(port),
        "--exempt-loopback",
        *flags,
    ]


def harness_command(port: int, *flags: str) -> list[str]:
    """The command line of the load-test harness against ``serve`` on ``port``."""
    return [sys.executable, "-m", "loadtest", "--url", f"ws://127.0.0.1:{port}/ws", *flags]


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
    return spawn(*serve_command(data_dir, port, *flags, log_level="WARNING")[1:])


def healthz(port: int) -> int | None:
    """The status of ``/healthz`` on ``port``, or ``None`` if nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def wait_healthy(
    port: int, within_s: float = 60.0, alive: Callable[[], bool] = lambda: True
) -> float:
    """Seconds until ``/healthz`` on ``port`` answers 200; ``RuntimeError`` if it does
    not within ``within_s``, or as soon as ``alive()`` says the server is gone."""
    started = time.monotonic()
    while time.monotonic() - started < within_s and alive():
        if healthz(port) == 200:
            return time.monotonic() - started
        time.sleep(0.02)
    raise RuntimeError(f"serve on port {port} was not healthy within {within_s:.0f} s")
