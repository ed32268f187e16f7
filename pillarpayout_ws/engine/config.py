"""The game's rules that an operator may tune, checked once at construction.

Money is integer cents; multipliers are integer hundredths; times are integer
milliseconds. The two floats (``house_edge`` and ``max_profit_pct``) are
percentages; ``max_profit_pct`` is turned into cents exactly, through its
decimal text, so ``0.1`` means a tenth of a percent and not a binary
approximation of it.

A field with a ``help`` in its metadata is also a flag of ``pillarpayout
serve`` (``betting_ms`` is ``--betting-ms``: ``pillarpayout_ws/settings.py``
reads the fields; the engine imports nothing for it). A ``ConfigError`` names
the field at fault in ``setting``, so the command line can name the flag.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from pillarpayout_ws.engine.errors import ConfigError
from pillarpayout_ws.engine.fairness import check_house_edge

__all__ = ["MAX_BALANCE", "MIN_AUTO_CASHOUT", "SLOTS", "GameConfig"]

MIN_AUTO_CASHOUT = 101
"""The lowest auto-cashout target a player may set: 1.01x."""

SLOTS = 2
"""Bets a user may hold in one round, each in its own slot: 0 and 1."""

MAX_BALANCE = 2**62
"""No balance may exceed this many cents: it keeps every sum inside BIGINT."""


def _flag(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True, slots=True, kw_only=True)
class GameConfig:
    """The tunable rules of the game. Invalid combinations raise ``ConfigError``."""

    # Round timing (milliseconds).
    betting_ms: int = _flag(5000, "the betting window, ms")
    tick_ms: int = _flag(100, "time between two ticks of a running round, ms")
    cooldown_ms: int = _flag(3000, "pause after a crash before betting opens, ms")

    # Bets (cents) and auto-cashout targets (hundredths).
    min_bet: int = _flag(10, "the smallest bet, cents")
    max_bet: int = _flag(1_000_000, "the largest bet, cents")
    max_auto_cashout: int = 1_000_000

    # The house (percent and cents).
    house_edge: float = _flag(1.0, "the house edge, percent")
    house_bankroll: int = _flag(
        100_000_000, "the house's bankroll, cents (with --max-profit-pct: the per-round cap)"
    )
    # Per-round cap on the players' total profit, as a percentage of the
    # bankroll; reaching it forces every open bet out (see bets.py).
    max_profit_pct: float = _flag(
        1.0, "the players' profit in one round may reach this percent of the bankroll"
    )

    # Idempotency memory: a bet ``ref`` is remembered for this many rounds, so
    # a client that retries a frame after a reconnect gets the same answer.
    ref_memory_rounds: int = 1000

    def __post_init__(self) -> None:
        for name in ("betting_ms", "tick_ms", "cooldown_ms", "min_bet", "max_bet"):
            value = getattr(self, name)
            if type(value) is not int:
                raise ConfigError(f"must be an integer, got {value!r}", setting=name)
        for name in ("betting_ms", "cooldown_ms"):
            if getattr(self, name) < 0:
                raise ConfigError("must not be negative", setting=name)
        if self.betting_ms + self.cooldown_ms < 1:
            # Otherwise a run of 1.00x crashes could open rounds forever at
            # one instant.
            raise ConfigError("plus the cooldown must be at least 1 ms", setting="betting_ms")
        if self.tick_ms < 1:
            raise ConfigError(f"must be at least 1, got {self.tick_ms}", setting="tick_ms")
        if not 1 <= self.min_bet <= self.max_bet:
            raise ConfigError(
                f"must be at least 1 and at most the largest bet ({self.max_bet})",
                setting="min_bet",
            )
        if self.max_bet > MAX_BALANCE:
            raise ConfigError(f"must be at most {MAX_BALANCE}", setting="max_bet")
        if type(self.max_auto_cashout) is not int or self.max_auto_cashout < MIN_AUTO_CASHOUT:
            raise ConfigError(
                f"must be an integer >= {MIN_AUTO_CASHOUT}", setting="max_auto_cashout"
            )
        check_house_edge(self.house_edge)
        if type(self.house_bankroll) is not int or not 0 <= self.house_bankroll <= MAX_BALANCE:
            raise ConfigError(f"must be cents in [0, {MAX_BALANCE}]", setting="house_bankroll")
        if not (math.isfinite(self.max_profit_pct) and 0.0 <= self.max_profit_pct <= 100.0):
            raise ConfigError(
                f"must be in [0, 100], got {self.max_profit_pct}", setting="max_profit_pct"
            )
        if type(self.ref_memory_rounds) is not int or self.ref_memory_rounds < 1:
            raise ConfigError("must be an integer >= 1", setting="ref_memory_rounds")

    @property
    def max_profit(self) -> int:
        """The per-round cap on the players' total profit, in cents.

        ``floor(house_bankroll * max_profit_pct / 100)``, computed exactly:
        with the defaults, 1 % of 1,000,000.00 = 1,000,000 cents.
        """
        return math.floor(Fraction(repr(float(self.max_profit_pct))) * self.house_bankroll / 100)
