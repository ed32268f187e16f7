"""The game's rules that an operator may tune, checked once at construction.

Money is integer cents; multipliers are integer hundredths; times are integer
milliseconds. The two floats (``house_edge`` and ``max_profit_pct``) are
percentages; ``max_profit_pct`` is turned into cents exactly, through its
decimal text, so ``0.1`` means a tenth of a percent and not a binary
approximation of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from pillarpayout_ws.engine.errors import ConfigError

__all__ = ["MAX_BALANCE", "MIN_AUTO_CASHOUT", "GameConfig"]

MIN_AUTO_CASHOUT = 101
"""The lowest auto-cashout target a player may set: 1.01x."""

MAX_BALANCE = 2**62
"""No balance may exceed this many cents: it keeps every sum inside BIGINT."""


@dataclass(frozen=True, slots=True, kw_only=True)
class GameConfig:
    """The tunable rules of the game. Invalid combinations raise ``ConfigError``."""

    # Round timing (milliseconds).
    betting_ms: int = 5000
    tick_ms: int = 100
    cooldown_ms: int = 3000

    # Bets (cents) and auto-cashout targets (hundredths).
    min_bet: int = 10
    max_bet: int = 1_000_000
    max_auto_cashout: int = 1_000_000

    # The house (percent and cents).
    house_edge: float = 1.0
    house_bankroll: int = 100_000_000
    # Per-round cap on the players' total profit, as a percentage of the
    # bankroll; reaching it forces every open bet out (see bets.py).
    max_profit_pct: float = 1.0

    # Idempotency memory: a bet ``ref`` is remembered for this many rounds, so
    # a client that retries a frame after a reconnect gets the same answer.
    ref_memory_rounds: int = 1000

    def __post_init__(self) -> None:
        for name in ("betting_ms", "tick_ms", "cooldown_ms", "min_bet", "max_bet"):
            value = getattr(self, name)
            if type(value) is not int:
                raise ConfigError(f"{name} must be an integer, got {value!r}")
        if self.betting_ms < 0 or self.cooldown_ms < 0:
            raise ConfigError("betting_ms and cooldown_ms must be >= 0")
        if self.betting_ms + self.cooldown_ms < 1:
            # Otherwise a run of 1.00x crashes could open rounds forever at
            # one instant.
            raise ConfigError("betting_ms + cooldown_ms must be at least 1 ms")
        if self.tick_ms < 1:
            raise ConfigError(f"tick_ms must be >= 1, got {self.tick_ms}")
        if not 1 <= self.min_bet <= self.max_bet:
            raise ConfigError(f"need 1 <= min_bet <= max_bet, got {self.min_bet}, {self.max_bet}")
        if self.max_bet > MAX_BALANCE:
            raise ConfigError(f"max_bet must be <= {MAX_BALANCE}")
        if type(self.max_auto_cashout) is not int or self.max_auto_cashout < MIN_AUTO_CASHOUT:
            raise ConfigError(f"max_auto_cashout must be an integer >= {MIN_AUTO_CASHOUT}")
        if not (math.isfinite(self.house_edge) and 0.0 <= self.house_edge < 100.0):
            raise ConfigError(f"house_edge must be a percentage in [0, 100), got {self.house_edge}")
        if type(self.house_bankroll) is not int or not 0 <= self.house_bankroll <= MAX_BALANCE:
            raise ConfigError(f"house_bankroll must be cents in [0, {MAX_BALANCE}]")
        if not (math.isfinite(self.max_profit_pct) and 0.0 <= self.max_profit_pct <= 100.0):
            raise ConfigError(f"max_profit_pct must be in [0, 100], got {self.max_profit_pct}")
        if type(self.ref_memory_rounds) is not int or self.ref_memory_rounds < 1:
            raise ConfigError("ref_memory_rounds must be an integer >= 1")

    @property
    def max_profit(self) -> int:
        """The per-round cap on the players' total profit, in cents.

        ``floor(house_bankroll * max_profit_pct / 100)``, computed exactly:
        with the defaults, 1 % of 1,000,000.00 = 1,000,000 cents.
        """
        return math.floor(Fraction(repr(float(self.max_profit_pct))) * self.house_bankroll / 100)
