"""``python -m tests.external``: the ``external`` tests against Debian's own servers.

Starts Debian's ``postgresql`` (``/usr/lib/postgresql/N/bin``) and
``redis-server`` (``/usr/bin/redis-server``) as real services on free TCP
ports of 127.0.0.1, each with a data dir of its own under a temporary
folder, runs ``pytest -m external`` with ``DATABASE_URL``/``REDIS_URL``
pointing at them, and stops them and removes their data even when the tests
fail or the run is interrupted. Extra arguments go to pytest.

As root, PostgreSQL (which refuses to run as root) runs as the ``postgres``
system user the package creates, and Redis as ``redis``; otherwise both run
as the caller. ``make test`` runs this after the whole suite on the
embedded servers (``make test-external`` alone); it installs the packages
with apt when missing.

Exit status: pytest's, or 2 when the servers cannot be found or started.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

REDIS_SERVER = Path("/usr/bin/redis-server")
POSTGRES_ROOT = Path("/usr/lib/postgresql")
START_TIMEOUT_S = 60.0


class Unavailable(Exception):
    """The servers are missing or did not start."""


def postgres_bin() -> Path:
    """The newest Debian PostgreSQL's bin dir (``/usr/lib/postgresql/15/bin`` on bookworm)."""
    found = sorted(
        (p.parent for p in POSTGRES_ROOT.glob("*/bin/initdb")),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if not found:
        raise Unavailable(f"no Debian PostgreSQL under {POSTGRES_ROOT}: apt-get install postgresql")
    return found[-1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def user_ids(name: str) -> tuple[int, int] | None:
    """(uid, gid) to run a server as: the system user ``name`` when we are root."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise Unavailable(f"running as root and there is no {name!r} user") from None
    return entry.pw_uid, entry.pw_gid


def as_user(ids: tuple[int, int] | None) -> tuple[int | None, int | None, list[int] | None]:
    """(user, group, extra_groups) for subprocess: ``ids``, or ourselves when None."""
    return (None, None, None) if ids is None else (ids[0], ids[1], [])


def owned_dir(path: Path, ids: tuple[int, int] | None) -> Path:
    path.mkdir(mode=0o700)
    if ids is not None:
        os.chown(path, *ids)
    return path


def run(args: Sequence[str], ids: tuple[int, int] | None, what: str) -> str:
    user, group, groups = as_user(ids)
    result = subprocess.run(
        list(args),
        capture_output=True,
        text=True,
        check=False,
        user=user,
        group=group,
        extra_groups=groups,
        cwd="/",
    )
    if result.returncode != 0:
        raise Unavailable(f"{what} failed: {(result.stderr or result.stdout).strip()}")
    return result.stdout


class DebianServers:
    """Debian's PostgreSQL and Redis on their own ports and data dirs under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.pg_bin = postgres_bin()
        if not REDIS_SERVER.is_file():
            raise Unavailable(f"no {REDIS_SERVER}: apt-get install redis-server")
        self.pg_ids = user_ids("postgres")
        self.redis_ids = user_ids("redis")
        self.pg_dir = owned_dir(root / "postgres", self.pg_ids)
        self.redis_dir = owned_dir(root / "redis", self.redis_ids)
        self.pgdata = self.pg_dir / "data"
        self.pg_port = free_port()
        self.redis_port = free_port()
        self.pg_started = False
        self.redis: subprocess.Popen[bytes] | None = None

    @property
    def database_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.pg_port}/postgres"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def start(self) -> None:
        run(
            [
                str(self.pg_bin / "initdb"),
                "-D",
                str(self.pgdata),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-instructions",
            ],
            self.pg_ids,
            "initdb",
        )
        options = (
            f"-p {self.pg_port} -k {self.pg_dir} -c listen_addresses=127.0.0.1"
            " -c max_connections=200 -c fsync=on"
        )
        self.pg_started = True
        run(
            [
                str(self.pg_bin / "pg_ctl"),
                "-D",
                str(self.pgdata),
                "-l",
                str(self.pg_dir / "postgres.log"),
                "-o",
                options,
                "-w",
                "-t",
                str(int(START_TIMEOUT_S)),
                "start",
            ],
            self.pg_ids,
            "pg_ctl start",
        )
        user, group, groups = as_user(self.redis_ids)
        with (self.root / "redis.log").open("wb") as log:
            self.redis = subprocess.Popen(
                [
                    str(REDIS_SERVER),
                    "--port",
                    str(self.redis_port),
                    "--bind",
                    "127.0.0.1",
                    "--dir",
                    str(self.redis_dir),
                    "--appendonly",
                    "yes",
                    "--appendfsync",
                    "everysec",
                    "--save",
                    "",
                    "--daemonize",
                    "no",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                user=user,
                group=group,
                extra_groups=groups,
                cwd="/",
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._redis_answers():
            if self.redis.poll() is not None or time.monotonic() > deadline:
                log_text = (self.root / "redis.log").read_text(errors="replace")
                raise Unavailable(f"redis-server did not start:\n{log_text[-2000:]}")
            time.sleep(0.05)

    def _redis_answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.redis_port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def versions(self) -> str:
        psql = [str(self.pg_bin / "psql"), "-h", "127.0.0.1", "-p", str(self.pg_port)]
        pg = run([*psql, "-U", "postgres", "-tA", "-c", "SHOW server_version"], None, "psql")
        redis = subprocess.run(
            [str(REDIS_SERVER), "--version"], capture_output=True, text=True, check=False
        ).stdout
        return f"PostgreSQL {pg.strip()} ({self.pg_bin}); {redis.strip()}"

    def stop(self) -> None:
        if self.redis is not None and self.redis.poll() is None:
            self.redis.terminate()
            try:
                self.redis.wait(30)
            except subprocess.TimeoutExpired:
                self.redis.kill()
                self.redis.wait()
        pid_file = self.pgdata / "postmaster.pid"
        if self.pg_started and pid_file.exists():
            pid = int(pid_file.read_text().split()[0])
            stop = [str(self.pg_bin / "pg_ctl"), "-D", str(self.pgdata), "-m", "fast", "-w", "stop"]
            try:
                run(stop, self.pg_ids, "pg_ctl stop")
            except Unavailable as exc:
                print(f"external: {exc}", file=sys.stderr)
            # Its data is removed next: wait for the postmaster itself to be gone.
            deadline = time.monotonic() + START_TIMEOUT_S
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.05)


def _interrupted(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally that stops the servers


def main(argv: Sequence[str]) -> int:
    signal.signal(signal.SIGTERM, _interrupted)
    root = Path(tempfile.mkdtemp(prefix="pp-external-"))
    root.chmod(0o755)  # the postgres and redis users reach their own dirs inside
    servers: DebianServers | None = None
    try:
        try:
            servers = DebianServers(root)
            began = time.monotonic()
            servers.start()
            print(
                f"external: {servers.versions()}, started in {time.monotonic() - began:.1f} s",
                flush=True,
            )
        except Unavailable as exc:
            print(f"external: {exc}", file=sys.stderr)
            return 2
        env = {**os.environ, "DATABASE_URL": servers.database_url, "REDIS_URL": servers.redis_url}
        began = time.monotonic()
        code = subprocess.run(
            [sys.executable, "-m", "pytest", "-m", "external", *argv], env=env, check=False
        ).returncode
        print(
            f"external: pytest -m external exited {code} after {time.monotonic() - began:.0f} s "
            f"against {servers.versions()}",
            flush=True,
        )
        return code
    finally:
        if servers is not None:
            servers.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
