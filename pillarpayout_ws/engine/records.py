"""What the engine hands to storage to make durable: the write-ahead records.

The engine appends these to its outbox as it changes state; the server takes
them (``Game.records_to_persist()``), commits them to Redis in one pipeline
(the group commit) and only then sends the acknowledgements that go with them.
Storage replays them to flush a completed round to PostgreSQL and to recover a
round after a crash, so they carry everything those need and nothing else.

Money is integer cents; multipliers are integer hundredths (``235`` = 2.35x).
Times (``*_ms``) are the engine's ``now``: the server's clock, Unix
milliseconds. They default to ``None`` so that records written before they
existed still read back.

Secrecy: nothing here is derived from a round's server seed before its
``RoundCrashed`` (Redis, which relays and operators read, holds these): a
``RoundOpened`` names its seed by chain and nonce, and the seed itself comes
with the crash.
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
    client_seed: str
    house_edge: float
    opened_ms: int | None = None


@dataclass(frozen=True, slots=True)
class BetPlaced:
    round_id: int
    user_id: int
    ref: str | None
    amount: int
    auto_cashout: int | None
    balance_after: int
    placed_ms: int | None = None
    slot: int = 0  # records written before two bets a round: slot 0


@dataclass(frozen=True, slots=True)
class BetCancelled:
    """The player took a bet back while its round was still betting: its stake
    is refunded (``balance_after`` includes the refund) and the bet is settled
    as refunded, whatever the round does next."""

    round_id: int
    user_id: int
    slot: int
    amount: int
    balance_after: int
    cancelled_ms: int | None = None


@dataclass(frozen=True, slots=True)
class CashedOut:
    round_id: int
    user_id: int
    multiplier: int
    payout: int
    balance_after: int
    reason: CashoutReason
    slot: int = 0


@dataclass(frozen=True, slots=True)
class RoundCrashed:
    """The pillar fell: the seed is public from now on, and goes to Redis with this."""

    round_id: int
    crash_point: int
    elapsed_ms: int
    server_seed: str | None = None
    crashed_ms: int | None = None


@dataclass(frozen=True, slots=True)
class GoalAdvanced:
    """Blocks a finished round added to a community goal."""

    round_id: int
    goal_id: int
    blocks: int
    completed: bool


@dataclass(frozen=True, slots=True)
class Granted:
    """Operator or starting funds credited to a user; ``key`` makes it idempotent.

    ``kind`` ``adjust``: an operator's correction (``pillarpayout adjust``), a
    credit or a debit (``amount`` < 0), with the operator's ``reason``.
    """

    user_id: int
    amount: int
    key: str
    balance_after: int
    kind: Literal["grant", "adjust"] = "grant"
    reason: str | None = None


RoundRecord = RoundOpened | BetPlaced | BetCancelled | CashedOut | RoundCrashed | GoalAdvanced
Record = RoundRecord | Granted
