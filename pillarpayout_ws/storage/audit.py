"""``pillarpayout audit``: check the money invariants (architecture rule 6).

Each check is one SQL query that returns the rows breaking it, so a report
names the users, bets and rounds at fault rather than just failing:

1. every user's balance equals the sum of their ledger;
2. every bet ended exactly once: one debit of its amount, and exactly one
   payout (cashed out) or one refund (refunded) or neither (lost), matching
   the bet row;
3. no payout multiplier above its round's crash point, and every payout is
   ``floor(amount * multiplier)``;
4. money is conserved: sum(balances) + house result == sum(grants), with the
   house result computed from the bets table, not from the ledger;
5. the write-ahead still in Redis is well formed (settles without error).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..exceptions import StorageError
from .live import LiveStore
from .postgres import Database
from .settle import settle_round

_BALANCE = """
SELECT u.id, u.username, u.balance, COALESCE(SUM(l.amount), 0)::bigint AS ledger
FROM users u LEFT JOIN ledger l ON l.user_id = u.id
GROUP BY u.id HAVING u.balance <> COALESCE(SUM(l.amount), 0)
ORDER BY u.id LIMIT 100
"""

_SETTLEMENT = """
WITH per_bet AS (
    SELECT b.id, b.round_id, b.user_id, b.slot, b.status, b.bet_amount, b.winnings,
           COUNT(l.id) FILTER (WHERE l.kind = 'bet') AS debits,
           COALESCE(SUM(l.amount) FILTER (WHERE l.kind = 'bet'), 0)::bigint AS debited,
           COUNT(l.id) FILTER (WHERE l.kind = 'payout') AS payouts,
           COALESCE(SUM(l.amount) FILTER (WHERE l.kind = 'payout'), 0)::bigint AS paid,
           COUNT(l.id) FILTER (WHERE l.kind = 'refund') AS refunds,
           COALESCE(SUM(l.amount) FILTER (WHERE l.kind = 'refund'), 0)::bigint AS refunded
    FROM bets b LEFT JOIN ledger l
        ON l.round_id = b.round_id AND l.user_id = b.user_id AND l.slot = b.slot
    GROUP BY b.id
)
SELECT * FROM per_bet
WHERE debits <> 1 OR debited <> -bet_amount
   OR payouts <> (CASE WHEN status = 'cashed_out' THEN 1 ELSE 0 END)
   OR paid <> winnings
   OR refunds <> (CASE WHEN status = 'refunded' THEN 1 ELSE 0 END)
   OR refunded <> (CASE WHEN status = 'refunded' THEN bet_amount ELSE 0 END)
ORDER BY id LIMIT 100
"""

_ORPHAN_LEDGER = """
SELECT l.id, l.user_id, l.kind, l.amount FROM ledger l
WHERE l.kind <> 'grant' AND (l.round_id IS NULL OR NOT EXISTS (
    SELECT 1 FROM bets b
    WHERE b.round_id = l.round_id AND b.user_id = l.user_id AND b.slot = l.slot))
ORDER BY l.id LIMIT 100
"""

_PAYOUT = """
SELECT b.id, b.round_id, b.user_id, b.bet_amount, b.cash_out_multiplier_x100 AS m,
       b.winnings, r.crash_point_x100 AS crash
FROM bets b JOIN rounds r ON r.id = b.round_id
WHERE b.status = 'cashed_out'
  AND ((r.status = 'crashed' AND b.cash_out_multiplier_x100 > r.crash_point_x100)
       OR b.winnings <> b.bet_amount * b.cash_out_multiplier_x100 / 100)
ORDER BY b.id LIMIT 100
"""

_TOTALS = """
SELECT (SELECT COALESCE(SUM(balance), 0)::bigint FROM users) AS balances,
       (SELECT COALESCE(SUM(amount), 0)::bigint FROM ledger WHERE kind = 'grant') AS grants,
       (SELECT (COALESCE(SUM(bet_amount) FILTER (WHERE status <> 'refunded'), 0)
               - COALESCE(SUM(winnings), 0))::bigint FROM bets) AS house,
       (SELECT COUNT(*) FROM users) AS users,
       (SELECT COUNT(*) FROM rounds) AS rounds,
       (SELECT COUNT(*) FROM bets) AS bets
"""


@dataclass
class AuditReport:
    problems: list[str] = field(default_factory=list)
    facts: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.problems

    def render(self) -> str:
        lines = [*self.facts]
        if self.clean:
            lines.append("audit: clean: every invariant holds")
        else:
            lines.append(f"audit: {len(self.problems)} problem(s):")
            lines.extend(f"  - {p}" for p in self.problems)
        return "\n".join(lines)


def _cents(value: int) -> str:
    sign = "-" if value < 0 else ""
    return f"{sign}{abs(value) // 100}.{abs(value) % 100:02d}"


async def audit(db: Database, live: LiveStore | None) -> AuditReport:
    report = AuditReport()
    for row in await db.fetch(_BALANCE):
        report.problems.append(
            f"user {row['id']} ({row['username']}): balance {_cents(row['balance'])} "
            f"but ledger sums to {_cents(row['ledger'])}"
        )
    for row in await db.fetch(_SETTLEMENT):
        report.problems.append(
            f"bet {row['id']} (round {row['round_id']}, user {row['user_id']}, "
            f"slot {row['slot']}, {row['status']}): "
            f"{row['debits']} debit(s), {row['payouts']} payout(s) totalling "
            f"{_cents(row['paid'])} for winnings {_cents(row['winnings'])}, "
            f"{row['refunds']} refund(s): not settled exactly once"
        )
    for row in await db.fetch(_ORPHAN_LEDGER):
        report.problems.append(
            f"ledger row {row['id']} ({row['kind']} {_cents(row['amount'])} for user "
            f"{row['user_id']}) belongs to no bet of that user"
        )
    for row in await db.fetch(_PAYOUT):
        crash = "none (void)" if row["crash"] is None else f"{row['crash'] / 100:.2f}x"
        report.problems.append(
            f"bet {row['id']} (round {row['round_id']}): paid {_cents(row['winnings'])} at "
            f"{row['m'] / 100:.2f}x on {_cents(row['bet_amount'])}; crash point {crash}"
        )
    totals = (await db.fetch(_TOTALS))[0]
    if totals["balances"] + totals["house"] != totals["grants"]:
        report.problems.append(
            f"money not conserved: balances {_cents(totals['balances'])} + house result "
            f"{_cents(totals['house'])} != grants {_cents(totals['grants'])}"
        )
    report.facts.append(
        f"PostgreSQL: {totals['users']} users, {totals['rounds']} rounds, {totals['bets']} bets; "
        f"balances {_cents(totals['balances'])}, house result {_cents(totals['house'])}, "
        f"grants {_cents(totals['grants'])}"
    )
    if live is not None:
        pending = await live.pending_round_ids()
        records = await live.round_records(pending)
        for round_id in pending:
            try:
                settle_round(records[round_id])
            except StorageError as exc:
                report.problems.append(f"Redis write-ahead of round {round_id}: {exc}")
        grants = await live.pending_grants()
        report.facts.append(
            f"Redis: {len(pending)} round(s) and {len(grants)} grant(s) not yet flushed "
            "(a running server flushes them; otherwise the next start recovers them)"
        )
    return report
