"""Limits on what one address, connection or user may hold or send.

- ``ClientAddresses``: whose address a connection is. Normally the peer's;
  from a trusted proxy (``--trusted-proxy CIDR``), the address that proxy
  says it serves (``X-Forwarded-For``, read from the right, skipping the
  trusted hops). Per-address limits apply to every address but the exempt:
  loopback only with ``--exempt-loopback``, an explicit choice (a proxy on
  the same host would otherwise make every client one exempt address).
- ``ConnectionGate``: the WebSocket handshake is refused with 503 once the
  server is shutting down, and with 429 when the client's address already
  holds ``max_connections_per_ip`` sockets (counted from the handshake on).
- ``TokenBucket``: ``rate`` tokens a second up to ``burst``; time comes from
  the clock it is given (``Clock.now``), never from ``time`` directly.
- ``guard_frames``: every frame a connection sends, control frames (ping,
  pong, close) and continuation fragments included, spends from one budget
  of ``ALL_FRAMES_RATE`` a second (burst ``ALL_FRAMES_BURST``), checked as
  websockets parses each frame, before it answers a ping: past it the
  connection is failed with 1008 and the rest of what it sent is discarded
  unparsed. So a flood costs the server at most the burst's frames.
- ``FrameLimiter``: the per-connection message budget of the game and of the
  relays: ``FRAME_RATE`` messages a second (burst ``FRAME_BURST``); beyond it
  a message is refused (``rate_limited``), and a connection that keeps going
  (``ABUSE_LIMIT`` refused messages, forgiven at one a second) is to be
  closed with 1008. On top of it the game's connections of one address
  share ``ADDRESS_RATE`` messages a second (``AddressBuckets``): many
  connections each within its own budget are not many budgets.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus

from websockets.asyncio.server import ServerConnection
from websockets.frames import CloseCode, Frame
from websockets.http11 import Request, Response
from websockets.server import ServerProtocol

from ..exceptions import ConfigError
from ..settings import setting

__all__ = [
    "ABUSE_LIMIT",
    "ADDRESS_BURST",
    "ADDRESS_RATE",
    "FRAME_BURST",
    "FRAME_RATE",
    "HANDSHAKE_SLACK",
    "AddressBuckets",
    "AddressLimits",
    "ClientAddresses",
    "ConnectionGate",
    "FrameLimiter",
    "TokenBucket",
    "Verdict",
    "guard_frames",
    "is_loopback",
    "limit_key",
    "peer_ip",
    "trusted_networks",
]

FRAME_RATE = 20.0
FRAME_BURST = 40.0
HANDSHAKE_SLACK = 16  # connections of an address past its cap still let in (each gets 429)
ADDRESS_RATE = 200.0  # messages a second from all the connections of one address...
ADDRESS_BURST = 400.0  # ...after a burst of this many
ABUSE_LIMIT = 100
REFUSED_FORGIVEN_PER_S = 1.0
# Every frame, any kind: well above what FRAME_RATE lets a client send as
# messages (and a ping or pong a few times a minute), so only a flood meets it.
ALL_FRAMES_RATE = 60.0
ALL_FRAMES_BURST = 200.0


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

    def take(self, tokens: float = 1.0) -> bool:
        """Spend ``tokens`` if there are that many."""
        self._refill()
        if self.tokens >= tokens:
            self.tokens -= tokens
            return True
        return False

    @property
    def full(self) -> bool:
        """Whether the bucket has refilled to its burst: it remembers nothing then."""
        self._refill()
        return self.tokens >= self.burst


class AddressBuckets:
    """A ``TokenBucket`` per client address (exempt addresses are never limited):
    what all the connections or requests of one address may do together.
    Buckets that have refilled are forgotten once 10,000 are held."""

    def __init__(
        self, rate: float, burst: float, now: Callable[[], float], addresses: ClientAddresses
    ) -> None:
        self._rate, self._burst, self._now = rate, burst, now
        self._addresses = addresses
        self._buckets: dict[str, TokenBucket] = {}

    def take(self, ip: str) -> bool:
        if self._addresses.exempt(ip):
            return True
        bucket = self._buckets.get(ip)
        if bucket is None:
            if len(self._buckets) >= 10_000:  # forget the addresses that are quiet again
                self._buckets = {k: b for k, b in self._buckets.items() if not b.full}
            bucket = self._buckets[ip] = TokenBucket(self._rate, self._burst, self._now)
        return bucket.take()


class Verdict(enum.Enum):
    PASS = "pass"
    REFUSE = "refuse"  # answer rate_limited
    CLOSE = "close"  # close with 1008


class FrameLimiter:
    """One connection's message budget (module docstring)."""

    __slots__ = ("_bucket", "_now", "_stamp", "refused")

    def __init__(self, now: Callable[[], float]) -> None:
        self._bucket = TokenBucket(FRAME_RATE, FRAME_BURST, now)
        self._now = now
        self._stamp = now()
        self.refused = 0.0  # refused messages, forgiven as time passes

    def check(self) -> Verdict:
        now = self._now()
        self.refused = max(0.0, self.refused - (now - self._stamp) * REFUSED_FORGIVEN_PER_S)
        self._stamp = now
        if self._bucket.take():
            return Verdict.PASS
        self.refused += 1
        return Verdict.CLOSE if self.refused >= ABUSE_LIMIT else Verdict.REFUSE


def guard_frames(protocol: ServerProtocol, now: Callable[[], float]) -> TokenBucket:
    """Make every frame ``protocol`` parses spend from one budget (module docstring);
    the budget, for frames read without the parser (``GameConnection``'s pongs)."""
    budget = TokenBucket(ALL_FRAMES_RATE, ALL_FRAMES_BURST, now)
    receive = protocol.recv_frame

    def recv_frame(frame: Frame) -> None:
        if budget.take():
            receive(frame)
        else:
            # fail() sends 1008 and swaps the parser for one that discards the
            # rest of the data unparsed; this frame is dropped (a ping: no pong).
            protocol.fail(CloseCode.POLICY_VIOLATION, "too many frames")

    protocol.recv_frame = recv_frame  # type: ignore[method-assign]
    return budget


def is_loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


def peer_ip(connection: ServerConnection) -> str:
    peer = connection.remote_address
    return str(peer[0]) if peer else "?"


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def trusted_networks(cidrs: tuple[str, ...]) -> tuple[Network, ...]:
    """``--trusted-proxy`` values as networks; a bad one is a one-line ``ConfigError``."""
    networks = []
    for cidr in cidrs:
        try:
            networks.append(ipaddress.ip_network(cidr, strict=False))
        except ValueError:
            raise ConfigError(
                f"must be an address or a network like 10.0.0.0/8, got {cidr!r}",
                setting="trusted_proxies",
            ) from None
    return tuple(networks)


@dataclass(frozen=True, slots=True, kw_only=True)
class AddressLimits:
    """The per-address settings, the game's and a relay's (``per_address``)."""

    max_connections_per_ip: int = setting(
        1000, "open WebSockets per client address (an IPv6 /64 is one address)"
    )
    # Per-address limits apply to loopback too unless this is set: set it for a
    # load test or tests on the same host, never behind a proxy on it.
    exempt_loopback: bool = setting(
        False, "skip the per-address limits for loopback clients (a load test on this host)"
    )
    trusted_proxies: tuple[str, ...] = setting(
        (),
        "take the client's address from X-Forwarded-For when the peer is in CIDR "
        "(a reverse proxy; repeatable)",
        flag="trusted_proxy",
        metavar="CIDR",
        shown="none",
    )

    def __post_init__(self) -> None:
        if self.max_connections_per_ip < 1:
            raise ConfigError("must be positive", setting="max_connections_per_ip")
        trusted_networks(self.trusted_proxies)  # each one a network, or a one-line error

    @property
    def addresses(self) -> ClientAddresses:
        return ClientAddresses(
            trusted_networks(self.trusted_proxies), exempt_loopback=self.exempt_loopback
        )


class ClientAddresses:
    """Whose address a connection is, and whether per-address limits skip it."""

    def __init__(self, trusted: tuple[Network, ...] = (), *, exempt_loopback: bool) -> None:
        self._trusted = trusted
        self._exempt_loopback = exempt_loopback

    def is_trusted(self, ip: str) -> bool:
        """Whether ``ip`` is a proxy given with ``--trusted-proxy``."""
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(address in network for network in self._trusted)

    def of(self, connection: ServerConnection, request: Request | None = None) -> str:
        """The client's address as the per-address limits count it (``limit_key``)."""
        return limit_key(self._client_ip(connection, request))

    def _client_ip(self, connection: ServerConnection, request: Request | None) -> str:
        ip = peer_ip(connection)
        request = request or connection.request
        if not self._trusted or request is None or not self.is_trusted(ip):
            return ip
        # Rightmost first: each trusted hop appended the address it was talked to from.
        hops = [
            hop.strip()
            for header in request.headers.get_all("X-Forwarded-For")
            for hop in header.split(",")
        ]
        for hop in reversed(hops):
            if not self.is_trusted(hop):
                return hop if _is_address(hop) else ip
        return ip

    def exempt(self, ip: str) -> bool:
        return self._exempt_loopback and is_loopback(ip)


def limit_key(ip: str) -> str:
    """What per-address limits count for ``ip``: an IPv4 address itself (an
    IPv4-mapped IPv6 one as IPv4), an IPv6 address's /64, the least a host is
    given (counting whole IPv6 addresses, one host with a /64 has 2**64 of
    them); loopback and anything unparsable as they are."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        if not address.is_loopback:
            return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


class ConnectionGate:
    """Admission of connections and WebSocket handshakes (module docstring); a
    ``routes.Gate``.

    An address's connections are counted until their TCP connection is lost,
    from the moment it is accepted (``accepted``), or, from a trusted proxy,
    from its handshake, by the address the proxy names. So one waiting for its
    ``hello`` (the game loop waiting on Redis, say), one failing its handshake,
    and one that never sends a request (until websockets' 10 s open timeout)
    count too. Past ``max_per_ip`` a handshake gets 429; past ``max_per_ip +
    HANDSHAKE_SLACK`` a new connection is dropped at once."""

    def __init__(
        self,
        addresses: ClientAddresses,
        *,
        max_per_ip: int,
        refused: Callable[[str], object],
    ) -> None:
        self._addresses = addresses
        self._max_per_ip = max_per_ip
        self._refused = refused  # told the error code of each refusal (metrics)
        self._open: dict[str, int] = {}  # per address: let in, not yet lost
        self._counted: set[ServerConnection] = set()  # counted when accepted
        self.closing = False

    def per_ip(self, ip: str) -> int:
        return self._open.get(ip, 0)

    def accepted(self, connection: ServerConnection) -> bool:
        """A new TCP connection (``GameConnection.connection_made``): counted from
        now on, unless it comes from a trusted proxy; False: drop it."""
        peer = peer_ip(connection)
        if self._addresses.is_trusted(peer):
            return True  # counted at its handshake, by the address the proxy names
        ip = limit_key(peer)
        if not self._addresses.exempt(ip) and self.per_ip(ip) >= (
            self._max_per_ip + HANDSHAKE_SLACK
        ):
            self._refused("too_many_connections")
            return False
        self._count(connection, ip)
        self._counted.add(connection)
        return True

    def __call__(self, connection: ServerConnection, request: Request) -> Response | None:
        if self.closing:
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "shutting down\n")
        ip = self._addresses.of(connection, request)
        counted = connection in self._counted  # then per_ip includes this one
        if not self._addresses.exempt(ip) and self.per_ip(ip) - counted >= self._max_per_ip:
            self._refused("too_many_connections")
            return connection.respond(
                HTTPStatus.TOO_MANY_REQUESTS, "too many connections from your address\n"
            )
        if not counted:
            self._count(connection, ip)
        return None

    def _count(self, connection: ServerConnection, ip: str) -> None:
        self._open[ip] = self.per_ip(ip) + 1

        def lost(_: object) -> None:
            self._counted.discard(connection)
            self._lost(ip)

        connection.connection_lost_waiter.add_done_callback(lost)

    def _lost(self, ip: str) -> None:
        left = self._open[ip] - 1
        if left:
            self._open[ip] = left
        else:
            del self._open[ip]
