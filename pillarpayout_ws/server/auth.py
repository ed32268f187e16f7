"""Accounts and sessions: argon2id passwords, hashed session tokens, login limits.

- Passwords are hashed with argon2id at argon2-cffi's defaults (t=3, m=64 MiB,
  p=4: above OWASP's minimum), in a small thread pool so the event loop never
  waits on a hash. A stored hash made with other parameters is rehashed at
  the next successful login.
- A session token is 256 random bits (``secrets.token_urlsafe(32)``); only its
  SHA-256 is stored. Sessions expire (``session_ttl_s``) and are revoked on
  logout.
- An unknown user and a wrong password give the same ``invalid_credentials``
  after the same work (a dummy hash is verified for unknown users).
- Failed logins are limited per account and per IP (sliding windows, on the
  server's clock); the IP limit does not apply to loopback (unless
  ``limit_loopback``), so the load-test harness and the tests on the same
  host are never refused by it.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from ..storage.postgres import Database, UserRow
from .limits import is_loopback


class AuthError(Exception):
    """A refused account action; ``code`` goes to the client as the error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SlidingWindow:
    """At most ``limit`` events per key in the last ``window_s`` seconds."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit = limit
        self.window_s = window_s
        self._events: dict[str, deque[float]] = {}

    def _live(self, key: str, now: float) -> deque[float]:
        events = self._events.setdefault(key, deque())
        while events and events[0] <= now - self.window_s:
            events.popleft()
        return events

    def full(self, key: str, now: float) -> bool:
        full = len(self._live(key, now)) >= self.limit
        if not self._events[key]:
            del self._events[key]
        return full

    def add(self, key: str, now: float) -> None:
        self._live(key, now).append(now)


class Accounts:
    def __init__(
        self,
        db: Database,
        *,
        now: Callable[[], float],
        starting_balance: int,
        session_ttl_s: int = 7 * 24 * 3600,
        hasher: PasswordHasher | None = None,
        failures_per_account: int = 5,
        failures_per_ip: int = 50,
        failure_window_s: float = 300.0,
        limit_loopback: bool = False,
    ) -> None:
        self._db = db
        self._now = now
        self.starting_balance = starting_balance
        self.session_ttl_s = session_ttl_s
        self._hasher = hasher or PasswordHasher()
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="argon2")
        self._dummy_hash: str | None = None
        self._account_failures = SlidingWindow(failures_per_account, failure_window_s)
        self._ip_failures = SlidingWindow(failures_per_ip, failure_window_s)
        self._limit_loopback = limit_loopback

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

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

    async def register(self, username: str, email: str, password: str) -> tuple[UserRow, str, str]:
        """Create an account (granted the starting balance); (user, token, token digest)."""
        if await self._db.user_by_name(username) is not None:
            raise AuthError("username_taken", "that username is taken")
        password_hash = await self._hash(password)
        user = await self._db.create_user(username, email, password_hash, self.starting_balance)
        if user is None:
            if await self._db.user_by_name(username) is not None:
                raise AuthError("username_taken", "that username is taken")
            raise AuthError("email_taken", "that email already has an account")
        token, digest = await self._new_session(user.id)
        return user, token, digest

    async def login(self, username: str, password: str, ip: str) -> tuple[UserRow, str, str]:
        now = self._now()
        account_key = username.lower()
        limit_ip = self._limit_loopback or not is_loopback(ip)
        if self._account_failures.full(account_key, now) or (
            limit_ip and self._ip_failures.full(ip, now)
        ):
            raise AuthError("rate_limited", "too many failed logins; try again later")
        user = await self._db.user_by_name(username)
        if user is None:
            if self._dummy_hash is None:
                self._dummy_hash = await self._hash(secrets.token_hex(16))
            await self._verify(self._dummy_hash, password)  # the same work as a real check
            ok = False
        else:
            ok = await self._verify(user.password_hash, password)
        if not ok or user is None:
            self._account_failures.add(account_key, now)
            if limit_ip:
                self._ip_failures.add(ip, now)
            raise AuthError("invalid_credentials", "wrong username or password")
        if self._hasher.check_needs_rehash(user.password_hash):
            await self._db.set_password_hash(user.id, await self._hash(password))
        token, digest = await self._new_session(user.id)
        return user, token, digest

    async def resume(self, token: str) -> tuple[UserRow, str]:
        digest = token_digest(token)
        user = await self._db.session_user(digest)
        if user is None:
            raise AuthError("invalid_session", "the session is unknown, expired or revoked")
        return user, digest

    async def logout(self, token_sha256: str) -> None:
        await self._db.revoke_session(token_sha256)
