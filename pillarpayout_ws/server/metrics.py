"""``/metrics``: Prometheus text format, one registry per server process.

Counters and histograms are moved where things happen. Gauges that mirror
live state (connections, the flush backlog, the fan-out's totals) are read
when Prometheus scrapes, through ``Gauge.set_function``: nothing keeps them
current between scrapes.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ..storage.flush import Flusher
from .fanout import Hub
from .presence import Presence
from .publish import Publisher

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
_FANOUT_BUCKETS = (
    *(0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.035, 0.04, 0.045, 0.05),
    *(0.06, 0.075, 0.1, 0.25, 1.0),
)  # fine from 10 to 60 ms, where a tick to 1,000-10,000 spectators ends here


class FanoutGauges:
    """The fan-out's own numbers, exported by the game and by every relay."""

    def __init__(self, r: CollectorRegistry) -> None:
        self.deliveries = Gauge(
            "pillarpayout_frame_deliveries", "frames written to sockets by the fan-out", registry=r
        )
        self.ticks_skipped = Gauge(
            "pillarpayout_ticks_skipped",
            "ticks skipped for clients with a full write buffer",
            registry=r,
        )
        self.ticks_superseded = Gauge(
            "pillarpayout_ticks_superseded",
            "ticks a spectator got a newer tick instead of, the fan-out being behind",
            registry=r,
        )
        self.slow_disconnects = Gauge(
            "pillarpayout_slow_disconnects",
            "clients disconnected for not taking frames that must arrive",
            registry=r,
        )
        self.keepalive_timeouts = Gauge(
            "pillarpayout_keepalive_timeouts",
            "clients closed (1011) for not answering a keepalive ping within 20 s",
            registry=r,
        )
        self.tick_written = Histogram(
            "pillarpayout_tick_fanout_seconds",
            "a tick made to its last spectator written (a tick superseded is not counted)",
            buckets=_FANOUT_BUCKETS,
            registry=r,
        )

    def watch(self, hub: Hub) -> None:
        stats = hub.stats
        hub.on_tick_written = self.tick_written.observe
        self.deliveries.set_function(lambda: stats.deliveries)
        self.ticks_skipped.set_function(lambda: stats.ticks_skipped)
        self.ticks_superseded.set_function(lambda: stats.ticks_superseded)
        self.slow_disconnects.set_function(lambda: stats.slow_disconnects)
        self.keepalive_timeouts.set_function(lambda: stats.keepalive_timeouts)


class Metrics:
    """Every number the game server exports; ``watch`` ties the live gauges to their sources."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.connections = Gauge(
            "pillarpayout_connections", "open WebSocket connections", registry=r
        )
        self.players = Gauge(
            "pillarpayout_players", "connections with a logged-in user", registry=r
        )
        self.spectators = Gauge(
            "pillarpayout_spectators", "connections without a login", registry=r
        )
        self.online_players = Gauge(
            "pillarpayout_online_players",
            "distinct logged-in users with an open connection (presence)",
            registry=r,
        )
        self.online_spectators = Gauge(
            "pillarpayout_online_spectators",
            "connections without a login, here and on every relay (presence)",
            registry=r,
        )
        self.relay_spectators = Gauge(
            "pillarpayout_relay_spectators",
            "spectators the relays reported, as last read from Redis",
            registry=r,
        )
        self.ticks = Counter("pillarpayout_ticks", "tick frames broadcast", registry=r)
        self.fanout = FanoutGauges(r)
        self.bets = Counter("pillarpayout_bets", "bets accepted", registry=r)
        self.cashouts = Counter("pillarpayout_cashouts", "cashouts paid", ["reason"], registry=r)
        self.rounds = Counter("pillarpayout_rounds", "rounds crashed", registry=r)
        self.errors = Counter("pillarpayout_errors", "error frames sent", ["code"], registry=r)
        self.frames_in = Counter("pillarpayout_frames_in", "frames received", registry=r)
        self.flush_backlog = Gauge(
            "pillarpayout_flush_backlog_rounds",
            "completed rounds waiting for PostgreSQL",
            registry=r,
        )
        self.flush_held = Gauge(
            "pillarpayout_flush_held_rounds",
            "rounds PostgreSQL refused, held in Redis for an operator",
            registry=r,
        )
        self.flush_lag = Gauge(
            "pillarpayout_flush_lag_seconds",
            "age of the oldest round waiting for PostgreSQL",
            registry=r,
        )
        self.redis_commit_seconds = Histogram(
            "pillarpayout_redis_commit_seconds",
            "group commit round trip to Redis",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.answer_seconds = Histogram(
            "pillarpayout_answer_seconds",
            "a bet or cashout frame's arrival to its answer written (after the Redis commit)",
            ["command"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.gc_seconds = Histogram(
            "pillarpayout_gc_seconds",
            "garbage collection run in each round's cooldown",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.redis_commit_failures = Counter(
            "pillarpayout_redis_commit_failures", "group commits Redis did not take", registry=r
        )

        self.relay_published = Gauge(
            "pillarpayout_relay_published",
            "messages published to relays (frames and snapshots)",
            registry=r,
        )
        self.relay_dropped = Gauge(
            "pillarpayout_relay_dropped", "messages Redis did not take for relays", registry=r
        )

    def watch(self, hub: Hub, flusher: Flusher, publisher: Publisher, presence: Presence) -> None:
        self.connections.set_function(lambda: len(hub.clients))
        self.players.set_function(lambda: hub.players)
        self.spectators.set_function(lambda: len(hub.clients) - hub.players)
        self.fanout.watch(hub)
        self.flush_backlog.set_function(lambda: flusher.backlog)
        self.flush_held.set_function(lambda: len(flusher.held))
        self.flush_lag.set_function(lambda: flusher.lag_s)
        self.relay_published.set_function(lambda: publisher.published)
        self.relay_dropped.set_function(lambda: publisher.dropped)
        self.online_players.set_function(lambda: presence.players)
        self.online_spectators.set_function(lambda: presence.counts()[1])
        self.relay_spectators.set_function(lambda: presence.relay_spectators)
