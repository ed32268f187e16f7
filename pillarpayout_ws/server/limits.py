"""Limits on what one address, connection or user may hold or send.

- ``ConnectionGate``: the WebSocket handshake is refused with 503 once the
  server is shutting down, and with 429 when the client's address already
  holds ``max_connections_per_ip`` sockets (loopback exempt unless
  ``limit_loopback``).
- ``TokenBucket``: ``rate`` tokens a second up to ``burst``; time comes from
  the clock it is given (``Clock.now``), never from ``time`` directly.
- ``FrameLimiter``: the per-connection frame budget of the game and of the
  relays: ``FRAME_RATE`` frames a second (burst ``FRAME_BURST``); beyond it a
  frame is refused (``rate_limited``), and a connection that keeps going
  (``ABUSE_LIMIT`` refused frames) is to be closed with 1008.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Callable
from http import HTTPStatus

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from .fanout import Hub

__all__ = [
    "ABUSE_LIMIT",
    "FRAME_BURST",
    "FRAME_RATE",
    "ConnectionGate",
    "FrameLimiter",
    "TokenBucket",
    "Verdict",
    "is_loopback",
    "peer_ip",
]

FRAME_RATE = 20.0
FRAME_BURST = 40.0
ABUSE_LIMIT = 100


class TokenBucket:
    __slots__ = ("burst", "now", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float, now: Callable[[], float]) -> None:
        self.rate, self.burst, self.now = rate, burst, now
        self.tokens = burst
        self.stamp = now()

    def _refill(self) -> None:
        now = self.now()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def take(self) -> bool:
        """Spend one token if there is one."""
        self._refill()
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    @property
    def full(self) -> bool:
        """Whether the bucket has refilled to its burst: it remembers nothing then."""
        self._refill()
        return self.tokens >= self.burst


class Verdict(enum.Enum):
    PASS = "pass"
    REFUSE = "refuse"  # answer rate_limited
    CLOSE = "close"  # close with 1008


class FrameLimiter:
    """One connection's frame budget (module docstring)."""

    __slots__ = ("_bucket", "refused")

    def __init__(self, now: Callable[[], float]) -> None:
        self._bucket = TokenBucket(FRAME_RATE, FRAME_BURST, now)
        self.refused = 0

    def check(self) -> Verdict:
        if self._bucket.take():
            return Verdict.PASS
        self.refused += 1
        return Verdict.CLOSE if self.refused >= ABUSE_LIMIT else Verdict.REFUSE


def is_loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


def peer_ip(connection: ServerConnection) -> str:
    peer = connection.remote_address
    return str(peer[0]) if peer else "?"


class ConnectionGate:
    """Admission of WebSocket handshakes (module docstring); a ``routes.Gate``."""

    def __init__(
        self,
        hub: Hub,
        *,
        max_per_ip: int,
        limit_loopback: bool,
        refused: Callable[[str], object],
    ) -> None:
        self._hub = hub
        self._max_per_ip = max_per_ip
        self._limit_loopback = limit_loopback
        self._refused = refused  # told the error code of each refusal (metrics)
        self.closing = False

    def __call__(self, connection: ServerConnection, request: Request) -> Response | None:
        if self.closing:
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "shutting down\n")
        ip = peer_ip(connection)
        limited = self._limit_loopback or not is_loopback(ip)
        if limited and self._hub.per_ip(ip) >= self._max_per_ip:
            self._refused("too_many_connections")
            return connection.respond(
                HTTPStatus.TOO_MANY_REQUESTS, "too many connections from your address\n"
            )
        return None
