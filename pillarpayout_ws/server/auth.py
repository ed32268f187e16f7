"""Accounts and sessions: argon2id passwords, hashed session tokens, and their price.

- Passwords are hashed with argon2id at argon2-cffi's defaults (t=3, m=64 MiB,
  p=4: above OWASP's minimum), in a 2-thread pool so the event loop never
  waits on a hash. A stored hash made with other parameters is rehashed at
  the next successful login.
- **The hashing queue is bounded** (``HASH_SLOTS`` jobs running or waiting):
  when it is full a request gets ``busy`` at once instead of a growing wait,
  and registrations may hold at most ``HASH_SLOTS - LOGIN_RESERVED`` of the
  slots, so a flood of registrations cannot starve logins.
- **Registration has limits**: ``REGISTER_PER_IP`` accounts per address per
  hour and ``REGISTER_GLOBAL`` per minute from everyone (``rate_limited``).
- A session token is 256 random bits (``secrets.token_urlsafe(32)``); only its
  SHA-256 is stored. Sessions expire (``session_ttl_s``); ``logout`` revokes
  its own, ``logout_all`` every session of the user. A ``resume`` racing a
  revocation is refused: revocations are known here at once, and checked
  after every await (``still_valid``).
- An unknown user and a wrong password give the same ``invalid_credentials``
  after the same work (a dummy hash is verified for unknown users), and a
  taken username costs ``register`` the same hash as a new one.
- **Failed logins** (OWASP's advice): ``FAILURES_PER_PAIR`` from one address
  against one account lock that pair for the window; ``FAILURES_PER_IP`` from
  one address against any accounts lock the address; an account failing
  from many addresses (more than ``FAILURES_PER_ACCOUNT``) is slowed, each
  attempt delayed, never locked, so nobody can lock anyone else out.
  ``resume`` is never limited by them.
- A banned user (``users.banned_at``, server/moderation.py) gets ``banned``
  from a right ``login`` (no session is made) and from ``resume``.
- Per-address limits skip the addresses ``ClientAddresses.exempt`` says
  (loopback, with ``--exempt-loopback``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import secrets
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from ..storage.postgres import Database, UserRow

__all__ = ["Accounts", "AuthError", "token_digest"]

K = TypeVar("K")

HASH_THREADS = 2
HASH_SLOTS = 8
LOGIN_RESERVED = 4
REGISTER_PER_IP = 5  # an hour
REGISTER_ATTEMPTS_PER_IP = 20  # an hour, refused ones included: each costs a hash
REGISTER_GLOBAL = 60  # a minute
FAILURE_WINDOW_S = 300.0
FAILURES_PER_PAIR = 5
FAILURES_PER_IP = 50
FAILURES_PER_ACCOUNT = 20
SLOWDOWN_S = 0.25  # per failure beyond FAILURES_PER_ACCOUNT...
SLOWDOWN_MAX_S = 5.0  # ...up to this
REVOCATIONS_KEPT_S = 600.0  # longer than any resume can take


class AuthError(Exception):
    """A refused account action; ``code`` goes to the client as the error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SlidingWindow:
    """Events per key in the last ``window_s`` seconds; keys with none are forgotten."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit = limit
        self.window_s = window_s
        self._events: dict[object, deque[float]] = {}
        self._sweep_at = 1024  # keys held when the next sweep runs, at the latest
        self._swept = 0.0

    def count(self, key: object, now: float) -> int:
        events = self._events.get(key)
        if events is None:
            return 0
        while events and events[0] <= now - self.window_s:
            events.popleft()
        if not events:
            del self._events[key]
        return len(events)

    def full(self, key: object, now: float) -> bool:
        return self.count(key, now) >= self.limit

    def discard(self, key: object, when: float) -> None:
        """Forget one event of ``key`` at ``when`` (``add``'s), if it is still held."""
        events = self._events.get(key)
        if events is not None:
            with contextlib.suppress(ValueError):
                events.remove(when)
            if not events:
                del self._events[key]

    def add(self, key: object, now: float) -> None:
        self.count(key, now)
        self._events.setdefault(key, deque()).append(now)
        if len(self._events) >= self._sweep_at or now >= self._swept + self.window_s:
            # Keys never looked up again (a name tried once) go here, in one pass
            # a window, or sooner once the keys held have doubled.
            for old in [k for k, e in self._events.items() if e[-1] <= now - self.window_s]:
                del self._events[old]
            self._sweep_at = max(1024, 2 * len(self._events))
            self._swept = now


class Accounts:
    def __init__(
        self,
        db: Database,
        *,
        now: Callable[[], float],
        starting_balance: int,
        exempt: Callable[[str], bool],
        session_ttl_s: int = 7 * 24 * 3600,
        hasher: PasswordHasher | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self._db = db
        self._now = now
        self._exempt = exempt
        self._sleep = sleep
        self.starting_balance = starting_balance
        self.session_ttl_s = session_ttl_s
        self._hasher = hasher or PasswordHasher()
        self._pool = ThreadPoolExecutor(max_workers=HASH_THREADS, thread_name_prefix="argon2")
        self._hashing = 0  # jobs running or waiting in the pool
        self._registering = 0  # of them, registrations'
        self._dummy_hash: str | None = None
        self._pair_failures = SlidingWindow(FAILURES_PER_PAIR, FAILURE_WINDOW_S)
        self._ip_failures = SlidingWindow(FAILURES_PER_IP, FAILURE_WINDOW_S)
        self._account_failures = SlidingWindow(FAILURES_PER_ACCOUNT, FAILURE_WINDOW_S)
        self._ip_registrations = SlidingWindow(REGISTER_PER_IP, 3600.0)
        self._ip_register_attempts = SlidingWindow(REGISTER_ATTEMPTS_PER_IP, 3600.0)
        self._registrations = SlidingWindow(REGISTER_GLOBAL, 60.0)
        # Revoked here lately: token digest (or user id, for logout_all) ->
        # (revocation number, when). Revocations are numbered so that "since"
        # needs no clock: ``revocations`` is the number of the latest.
        self.revocations = 0
        self._revoked: dict[str, tuple[float, float]] = {}
        self._users_revoked: dict[int, tuple[float, float]] = {}

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- the hashing queue --------------------------------------------------

    @contextmanager
    def _slot(self, *, registering: bool) -> Iterator[None]:
        full = self._hashing >= HASH_SLOTS or (
            registering and self._registering >= HASH_SLOTS - LOGIN_RESERVED
        )
        if full:
            raise AuthError("busy", "the server is busy with other logins; try again shortly")
        self._hashing += 1
        self._registering += registering
        try:
            yield
        finally:
            self._hashing -= 1
            self._registering -= registering

    async def _in_pool(self, fn: object, *args: str) -> object:
        assert callable(fn)
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def _hash(self, password: str) -> str:
        return str(await self._in_pool(self._hasher.hash, password))

    async def _verify(self, stored: str, password: str) -> bool:
        try:
            await self._in_pool(self._hasher.verify, stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        return True

    async def _new_session(self, user_id: int) -> tuple[str, str]:
        token = secrets.token_urlsafe(32)
        digest = token_digest(token)
        await self._db.create_session(digest, user_id, self.session_ttl_s)
        return token, digest

    # -- register, login, resume --------------------------------------------

    async def register(
        self, username: str, email: str, password: str, ip: str
    ) -> tuple[UserRow, str, str]:
        """Create an account (granted the starting balance); (user, token, token digest)."""
        now = self._now()
        limited = not self._exempt(ip)
        if self._registrations.full(None, now) or (
            limited
            and (self._ip_registrations.full(ip, now) or self._ip_register_attempts.full(ip, now))
        ):
            raise AuthError("rate_limited", "too many new accounts lately; try again later")
        with self._slot(registering=True):
            if limited:  # counted before the hash: a taken name costs one too
                self._ip_register_attempts.add(ip, now)
            taken = await self._db.user_by_name(username) is not None
            # The same work either way: the answer's time does not say which.
            password_hash = await self._hash(password)
        if taken:
            raise AuthError("username_taken", "that username is taken")
        user = await self._db.create_user(username, email, password_hash, self.starting_balance)
        if user is None:
            if await self._db.user_by_name(username) is not None:
                raise AuthError("username_taken", "that username is taken")
            raise AuthError("email_taken", "that email already has an account")
        self._registrations.add(None, now)
        if limited:
            self._ip_registrations.add(ip, now)
        token, digest = await self._new_session(user.id)
        return user, token, digest

    async def login(self, username: str, password: str, ip: str) -> tuple[UserRow, str, str]:
        now = self._now()
        account = username.lower()
        limited = not self._exempt(ip)
        if self._pair_failures.full((account, ip), now) or (
            limited and self._ip_failures.full(ip, now)
        ):
            raise AuthError("rate_limited", "too many failed logins; try again later")
        failures: list[tuple[SlidingWindow, object]] = [
            (self._pair_failures, (account, ip)),
            (self._account_failures, account),
        ]
        if limited:
            failures.append((self._ip_failures, ip))
        with self._failure_until_proven(failures, now):
            excess = self._account_failures.count(account, now) - 1 - FAILURES_PER_ACCOUNT
            if excess >= 0:
                # Failing from many addresses: slowed, never locked.
                await self._sleep(min(SLOWDOWN_MAX_S, SLOWDOWN_S * (excess + 1)))
            with self._slot(registering=False):
                user = await self._db.user_by_name(username)
                if user is None:
                    if self._dummy_hash is None:
                        self._dummy_hash = await self._hash(secrets.token_hex(16))
                    await self._verify(self._dummy_hash, password)  # the same work as a real check
                    ok = False
                else:
                    ok = await self._verify(user.password_hash, password)
                if ok and user is not None and self._hasher.check_needs_rehash(user.password_hash):
                    await self._db.set_password_hash(user.id, await self._hash(password))
            if not ok or user is None:
                raise AuthError("invalid_credentials", "wrong username or password")
        if user.banned:
            raise AuthError("banned", "this account is banned")
        token, digest = await self._new_session(user.id)
        return user, token, digest

    async def resume(self, token: str, ip: str | None = None) -> tuple[UserRow, str, float]:
        """The session's user, its token's digest and the seconds it has left; a
        refused one counts as a failure of ``ip`` (when given), as a failed login
        does: past ``FAILURES_PER_IP``, ``rate_limited`` before PostgreSQL is
        asked (a resume of a made-up token costs a query)."""
        now = self._now()
        limited = ip is not None and not self._exempt(ip)
        if limited and self._ip_failures.full(ip, now):
            raise AuthError("rate_limited", "too many failed logins; try again later")
        with self._failure_until_proven([(self._ip_failures, ip)] if limited else [], now):
            since = self.revocations
            digest = token_digest(token)
            session = await self._db.session_user(digest)
            if session is None or not self.still_valid(digest, session[0].id, since=since):
                raise AuthError("invalid_session", "the session is unknown, expired or revoked")
        user, left_s = session
        if user.banned:
            raise AuthError("banned", "this account is banned")
        return user, digest, left_s

    @staticmethod
    @contextmanager
    def _failure_until_proven(
        failures: list[tuple[SlidingWindow, object]], now: float
    ) -> Iterator[None]:
        """Count ``failures`` (window, key) now, and take them back unless the block
        ends in a wrong password or session: attempts made at once would otherwise
        all pass the check before any of them failed. Busy, or PostgreSQL down,
        decides nothing and counts nothing."""
        for window, key in failures:
            window.add(key, now)
        wrong = False
        try:
            yield
        except AuthError as exc:
            wrong = exc.code in ("invalid_credentials", "invalid_session")
            raise
        finally:
            if not wrong:
                for window, key in failures:
                    window.discard(key, now)

    def still_valid(self, digest: str, user_id: int, *, since: int) -> bool:
        """Whether the session was not revoked here, nor every session of the user
        unless PostgreSQL had recorded that before revocation number ``since``."""
        revoked_all = self._users_revoked.get(user_id)
        return digest not in self._revoked and (revoked_all is None or revoked_all[0] <= since)

    # -- revoking -----------------------------------------------------------

    async def logout(self, digest: str) -> None:
        """Revoke one session (known here at once, in PostgreSQL when this returns)."""
        self._remember(self._revoked, digest)
        await self._db.revoke_session(digest)

    async def logout_all(self, user_id: int) -> None:
        """Revoke every session of the user. Until PostgreSQL has recorded it, no
        resume of the user passes; after, PostgreSQL's answer is the whole truth
        for a resume that starts later."""
        self._remember(self._users_revoked, user_id, until_recorded=True)
        await self._db.revoke_user_sessions(user_id)
        self._remember(self._users_revoked, user_id)

    def _remember(
        self, revoked: dict[K, tuple[float, float]], key: K, *, until_recorded: bool = False
    ) -> None:
        now = self._now()
        for old in [k for k, (_, at) in revoked.items() if at < now - REVOCATIONS_KEPT_S]:
            del revoked[old]
        self.revocations += 1
        revoked[key] = (math.inf if until_recorded else self.revocations, now)
