"""From a round's write-ahead records to the rows PostgreSQL receives.

Pure functions: the flusher and recovery both call ``settle_round`` on what
Redis holds, so a round is settled the same way whether it finished normally
or is finished by recovery after a restart.

- A round whose records end in ``RoundCrashed`` settles as it happened: bets
  that cashed out are paid, the others are lost.
- A round with no ``RoundCrashed`` never finished (the server stopped): it is
  **void**. Acknowledged cashouts are honoured; every other bet is refunded.
- A bet its player cancelled during betting (``BetCancelled``) is refunded in
  either case, once: its stake is debited and refunded like a voided round's
  bet (``bets.status`` ``refunded``), so the ledger shows both and the audit
  checks it as any refund. It keeps the slot's keys, which is why the engine
  takes no second bet in that slot of the round.

Every ledger row carries an idempotency key derived from (round, user, slot):
``bet:<round>:<user>`` for slot 0 (as before there were two slots, so a round
written by an older version settles to the same keys) and
``bet:<round>:<user>:1`` for slot 1; settling and flushing a round twice
changes nothing.

Times are the game's own: a bet's ``placed_at`` is when the game accepted it,
a round's ``started_at`` and ``ended_at`` when it began running and crashed
(records written before these times existed give ``None``; a void round has
no ``started_at`` and ends when it is flushed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, NamedTuple

from ..engine.records import (
    BetCancelled,
    BetPlaced,
    CashedOut,
    CashoutReason,
    GoalAdvanced,
    RoundCrashed,
    RoundOpened,
    RoundRecord,
)
from ..exceptions import StorageError

BetStatus = Literal["cashed_out", "lost", "refunded"]
LedgerKind = Literal["grant", "bet", "payout", "refund"]


class SettledBet(NamedTuple):
    """A bet as it ended: a row of ``bets``, its fields in the flush's COPY order."""

    round_id: int
    user_id: int
    ref: str | None
    amount: int
    auto_cashout: int | None
    multiplier: int | None
    payout: int
    status: BetStatus
    reason: CashoutReason | None
    balance_after: int  # the bettor's balance right after the debit (the bet's ack)
    placed_at: datetime | None
    slot: int = 0


# A row of ``ledger`` in the flush's COPY order: (user_id, kind, signed amount,
# round_id, idempotency key, slot).
LedgerRow = tuple[int, LedgerKind, int, int, str, int]


def ledger_row(kind: LedgerKind, amount: int, round_id: int, user_id: int, slot: int) -> LedgerRow:
    """A bet's ledger row, with the idempotency key of its (round, user, slot)."""
    key = f"{kind}:{round_id}:{user_id}" if slot == 0 else f"{kind}:{round_id}:{user_id}:{slot}"
    return user_id, kind, amount, round_id, key, slot


def at(ms: int | None) -> datetime | None:
    """A record's time (Unix milliseconds) as PostgreSQL takes it."""
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC)


@dataclass(frozen=True, slots=True)
class SettledRound:
    opened: RoundOpened
    crash_point: int | None  # None: void
    # Revealed at the crash; None for a void round (and for a crashed round
    # written before the crash record carried it: the flush derives it).
    server_seed: str | None
    started_at: datetime | None
    ended_at: datetime | None
    bets: tuple[SettledBet, ...]
    ledger: tuple[LedgerRow, ...]  # every balance change of the bets, each bet's in order
    goal: GoalAdvanced | None
    # The (user, slot) of the bets their players cancelled (settled as refunded).
    cancelled: frozenset[tuple[int, int]] = frozenset()

    @property
    def round_id(self) -> int:
        return self.opened.round_id

    @property
    def void(self) -> bool:
        return self.crash_point is None

    @property
    def total_wagered(self) -> int:
        return sum(b.amount for b in self.bets if b.status != "refunded")

    @property
    def total_paid(self) -> int:
        return sum(b.payout for b in self.bets)


def settle_round(records: Sequence[RoundRecord]) -> SettledRound:
    """Settle one round from its records (the order they were committed in)."""
    if not records or not isinstance(records[0], RoundOpened):
        raise StorageError("a round's write-ahead does not start with RoundOpened")
    opened = records[0]
    bets: dict[tuple[int, int], BetPlaced] = {}
    cashouts: dict[tuple[int, int], CashedOut] = {}
    cancelled: set[tuple[int, int]] = set()
    crashed: RoundCrashed | None = None
    goal: GoalAdvanced | None = None
    for record in records[1:]:
        if record.round_id != opened.round_id:
            raise StorageError(f"round {opened.round_id} holds a record of round {record.round_id}")
        if isinstance(record, BetPlaced):
            key = (record.user_id, record.slot)
            if key in bets:
                raise StorageError(
                    f"round {opened.round_id}: two bets of user {record.user_id} "
                    f"in slot {record.slot}"
                )
            bets[key] = record
        elif isinstance(record, CashedOut | BetCancelled):
            # Either ends an open bet: a cash-out or a cancel, never both, never twice.
            key = (record.user_id, record.slot)
            what = "cashout" if isinstance(record, CashedOut) else "cancel"
            if key not in bets or key in cashouts or key in cancelled:
                raise StorageError(
                    f"round {opened.round_id}: {what} of user {record.user_id} "
                    f"in slot {record.slot} without one open bet"
                )
            if isinstance(record, CashedOut):
                cashouts[key] = record
            else:
                cancelled.add(key)
        elif isinstance(record, RoundCrashed):
            crashed = record
        elif isinstance(record, GoalAdvanced):
            goal = record
    round_id = opened.round_id
    unpaid: BetStatus = "lost" if crashed is not None else "refunded"
    settled: list[SettledBet] = []
    ledger: list[LedgerRow] = []
    for key, bet in bets.items():
        user_id, slot = key
        ledger.append(ledger_row("bet", -bet.amount, round_id, user_id, slot))
        cashout = cashouts.get(key)
        if cashout is not None:
            if crashed is not None and cashout.multiplier > crashed.crash_point:
                raise StorageError(
                    f"round {round_id}: cashout at {cashout.multiplier} above the crash "
                    f"point {crashed.crash_point}"
                )
            settled.append(
                SettledBet(
                    round_id,
                    user_id,
                    bet.ref,
                    bet.amount,
                    bet.auto_cashout,
                    cashout.multiplier,
                    cashout.payout,
                    "cashed_out",
                    cashout.reason,
                    bet.balance_after,
                    at(bet.placed_ms),
                    slot,
                )
            )
            ledger.append(ledger_row("payout", cashout.payout, round_id, user_id, slot))
        else:
            status = "refunded" if key in cancelled else unpaid
            settled.append(
                SettledBet(
                    round_id,
                    user_id,
                    bet.ref,
                    bet.amount,
                    bet.auto_cashout,
                    None,
                    0,
                    status,
                    None,
                    bet.balance_after,
                    at(bet.placed_ms),
                    slot,
                )
            )
            if status == "refunded":
                ledger.append(ledger_row("refund", bet.amount, round_id, user_id, slot))
    started = ended = None
    if crashed is not None and crashed.crashed_ms is not None:
        started, ended = at(crashed.crashed_ms - crashed.elapsed_ms), at(crashed.crashed_ms)
    return SettledRound(
        opened=opened,
        crash_point=crashed.crash_point if crashed is not None else None,
        server_seed=crashed.server_seed if crashed is not None else None,
        started_at=started,
        ended_at=ended,
        bets=tuple(settled),
        ledger=tuple(ledger),
        goal=goal if crashed is not None else None,
        cancelled=frozenset(cancelled),
    )
