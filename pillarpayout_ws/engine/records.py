"""What the engine hands to storage to make durable: the write-ahead records.

The engine appends these to its outbox as it changes state; the server takes
them (``Game.records_to_persist()``), commits them to Redis in one pipeline
(the group commit) and only then sends the acknowledgements that go with them.
Storage replays them to flush a completed round to PostgreSQL and to recover a
round after a crash, so they carry everything those need and nothing else.

Money is integer cents; multipliers are integer hundredths (``235`` = 2.35x).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

CashoutReason = Literal["manual", "auto", "forced"]


@dataclass(frozen=True, slots=True)
class RoundOpened:
    """A round exists and its betting window is open."""

    round_id: int
    chain_id: int
    nonce: int
    seed_hash: str
    # Secret until the round crashes. It sits in the write-ahead so that a
    # round recovered after a restart can still be flushed with its seed.
    server_seed: str
    client_seed: str
    house_edge: float


@dataclass(frozen=True, slots=True)
class BetPlaced:
    round_id: int
    user_id: int
    ref: str | None
    amount: int
    auto_cashout: int | None
    balance_after: int


@dataclass(frozen=True, slots=True)
class CashedOut:
    round_id: int
    user_id: int
    multiplier: int
    payout: int
    balance_after: int
    reason: CashoutReason


@dataclass(frozen=True, slots=True)
class RoundCrashed:
    round_id: int
    crash_point: int
    elapsed_ms: int


@dataclass(frozen=True, slots=True)
class GoalAdvanced:
    """Blocks a finished round added to a community goal."""

    round_id: int
    goal_id: int
    blocks: int
    completed: bool


@dataclass(frozen=True, slots=True)
class Granted:
    """Operator or starting funds credited to a user; ``key`` makes it idempotent."""

    user_id: int
    amount: int
    key: str
    balance_after: int


RoundRecord = RoundOpened | BetPlaced | CashedOut | RoundCrashed | GoalAdvanced
Record = RoundRecord | Granted
