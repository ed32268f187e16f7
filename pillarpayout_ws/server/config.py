"""``ServerConfig``: every setting of ``pillarpayout serve``, in one place.

The flags are made from these fields (``pillarpayout_ws/settings.py``): the
storage's (``StorageConfig``), the server's own below, and the game's rules
(``GameConfig``, in the engine). Each range is checked once, here or in the
group that owns the field, when the config is built.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..engine.config import GameConfig
from ..exceptions import ConfigError
from ..logs import LogConfig
from ..settings import setting
from ..storage import StorageConfig
from .limits import AddressLimits

__all__ = ["ServerConfig"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerConfig:
    # where
    host: str = setting("127.0.0.1", "the address to listen on")
    port: int = setting(8765, "the port of /ws, the page, /healthz and /metrics (0: any free)")
    storage: StorageConfig = field(default_factory=StorageConfig)
    allow_redis_without_aof: bool = setting(
        False,
        "start even when Redis does not run with appendonly yes (or will not say): "
        "acknowledged bets may then be lost with Redis; a warning at every start",
    )
    # the flush
    flush_rounds: int = setting(10, "flush to PostgreSQL every N completed rounds")
    flush_interval_ms: int = setting(1000, "...or after this long, whichever comes first")
    # players and the seed chain
    starting_balance: int = setting(100_000, "cents granted to a new account")
    client_seed: str | None = setting(
        None, "public salt of a new seed chain", shown="generated and logged"
    )
    chain_length: int = setting(100_000, "rounds in a new seed chain")
    # limits
    allowed_origins: tuple[str, ...] = setting(
        (),
        "accept browser connections only from this Origin (exact match; repeatable)",
        flag="allowed_origin",
        metavar="ORIGIN",
        shown="any",
    )
    per_address: AddressLimits = field(default_factory=AddressLimits)
    # fan-out: how long a broadcast writes before the loop may read (0: all at once)
    broadcast_slice_ms: float = setting(
        0.5,
        "a broadcast other than a tick writes this long, then lets bets and cashouts in; "
        "0: all at once",
    )
    tick_slice_ms: float = setting(
        1.0,
        "a tick reaches every player at once, then the spectators in slices this long "
        "with bets and cashouts let in between; 0: all at once",
    )
    # the game's rules
    game: GameConfig = field(default_factory=GameConfig)
    # the logs
    logs: LogConfig = field(default_factory=LogConfig)

    def __post_init__(self) -> None:
        for name in ("flush_rounds", "flush_interval_ms", "chain_length"):
            if getattr(self, name) <= 0:
                raise ConfigError("must be positive", setting=name)
        if self.starting_balance < 0:
            raise ConfigError("must not be negative", setting="starting_balance")
        if not 0 <= self.port <= 65535:
            raise ConfigError("must be 0 to 65535", setting="port")
        if not 0 <= self.broadcast_slice_ms <= 1000:
            raise ConfigError("must be 0 to 1000", setting="broadcast_slice_ms")
        if not 0 <= self.tick_slice_ms <= 100:
            raise ConfigError("must be 0 to 100", setting="tick_slice_ms")
