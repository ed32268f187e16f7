"""Bets: checking what players send, and the book of one round's bets.

Validation (``check_slot``, ``check_amount``, ``check_auto_cashout``)
    The wire's units are turned into the engine's once, by the protocol's
    decoder: an amount arrives as integer cents and an auto-cashout target as
    integer hundredths (or ``None``). What is checked here is the game's rule:
    a slot in ``range(SLOTS)``, an amount within ``[min_bet, max_bet]``, a
    target within ``[MIN_AUTO_CASHOUT, max_auto_cashout]``. A failure raises ``Rejection``
    before anything changes.

The book (``RoundBook``)
    Holds the round's bets by (user, slot): a user may hold one bet in each
    of the ``SLOTS`` slots, each with its own amount, target and cashout.
    It is built for ``Game.advance`` to be O(1) per step no matter how many
    bets are open:

    * auto-cashout targets sit in a heap ordered by (target, placement order),
      so the next one to fire is read without scanning; bets that left the
      heap's view (cashed out by hand, forced, cancelled) are dropped lazily
      when they reach the top;
    * the sum of open stakes and the realised profit are running totals, so
      the max-profit cap turns into one number, ``force_multiplier()``.

Max profit
    The players' total profit in a round at multiplier ``m`` is at most
    ``realised + floor(open_stakes * (m - 100) / 100)`` (realised: payouts
    minus stakes of the bets already cashed out; the sum of each bet's floored
    payout can only be lower). The cap ``max_profit`` may not be exceeded, so
    the open bets are forced out at the **largest** ``m`` at which the bound
    is still within the cap::

        force_multiplier = 100 + ((max_profit - realised + 1) * 100 - 1) // open_stakes

    and they are paid exactly that multiplier, like an auto-cashout target
    (bustabit's forced cashout). A cashout only turns part of the bound into
    realised profit that is no larger, so the force multiplier never falls
    below the multiplier already reached.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from pillarpayout_ws.engine.config import MIN_AUTO_CASHOUT, SLOTS, GameConfig
from pillarpayout_ws.engine.errors import RejectCode, Rejection
from pillarpayout_ws.engine.events import BetAccepted, BetStatus, CancelDone, CashoutDone
from pillarpayout_ws.engine.fairness import format_multiplier
from pillarpayout_ws.engine.growth import ONE_X

__all__ = ["Bet", "BetKey", "RoundBook", "check_amount", "check_auto_cashout", "check_slot"]

BetKey = tuple[int, int]
"""A bet's place in its round: (user_id, slot)."""


def check_slot(slot: int) -> None:
    """``Rejection(invalid_slot)`` unless ``slot`` is an int in ``range(SLOTS)``."""
    if type(slot) is not int or not 0 <= slot < SLOTS:
        raise Rejection(RejectCode.INVALID_SLOT, f"slot must be 0 to {SLOTS - 1}")


def check_amount(amount: int, config: GameConfig) -> None:
    """``Rejection(invalid_amount)`` unless ``config.min_bet <= amount <= config.max_bet``.

    The type is checked too (``bool`` is an ``int`` to Python): the engine
    never takes money that is not a whole number of cents.
    """
    if type(amount) is not int or not config.min_bet <= amount <= config.max_bet:
        raise Rejection(
            RejectCode.INVALID_AMOUNT,
            f"amount must be between {config.min_bet} and {config.max_bet} cents",
        )


def check_auto_cashout(target: int | None, config: GameConfig) -> None:
    """``Rejection(invalid_auto_cashout)`` unless ``target`` is ``None`` or integer
    hundredths within ``[MIN_AUTO_CASHOUT, config.max_auto_cashout]``."""
    if target is None:
        return
    if type(target) is not int or not MIN_AUTO_CASHOUT <= target <= config.max_auto_cashout:
        raise Rejection(
            RejectCode.INVALID_AUTO_CASHOUT,
            f"auto_cashout must be between {format_multiplier(MIN_AUTO_CASHOUT)} "
            f"and {format_multiplier(config.max_auto_cashout)}",
        )


@dataclass(slots=True, eq=False)
class Bet:
    """One accepted bet; it ends exactly once: ``cashed_out`` or ``lost``.

    (A third ending, refunded: a round voided by an operator (``Game.void_round``)
    or by storage's recovery of a round that never crashed; and a fourth,
    ``cancelled``: its player took it back while the round was betting, and
    storage settles it as refunded.)
    """

    user_id: int
    ref: str | None
    round_id: int
    amount: int
    auto_cashout: int | None
    accepted: BetAccepted
    slot: int = 0
    # The UTC day it was placed: its stake and payout count in that day's limits.
    placed_day: int = 0
    status: BetStatus = "open"
    # The answer to the cashout, kept to answer a repeated cashout the same way.
    cashout: CashoutDone | None = None
    # The answer to the cancel, kept to answer a repeated cancel the same way.
    cancel: CancelDone | None = None

    @property
    def key(self) -> BetKey:
        return self.user_id, self.slot


class RoundBook:
    """The bets of one round, with the running totals ``advance`` needs.

    The book tracks stakes and multipliers only; balances belong to ``Game``.
    """

    __slots__ = (
        "_bets",
        "_cancelled",
        "_max_profit",
        "_open",
        "_open_stakes",
        "_realised",
        "_seq",
        "_targets",
    )

    def __init__(self, max_profit: int) -> None:
        self._max_profit = max_profit
        self._bets: dict[BetKey, Bet] = {}
        # Insertion-ordered, so forced cashouts go out in placement order.
        self._open: dict[BetKey, Bet] = {}
        self._targets: list[tuple[int, int, Bet]] = []
        self._seq = 0
        self._open_stakes = 0
        self._realised = 0
        self._cancelled = 0

    def __len__(self) -> int:
        """How many bets the round took and kept (a cancelled bet is not counted)."""
        return len(self._bets) - self._cancelled

    def get(self, key: BetKey) -> Bet | None:
        """The user's bet in this slot of the round, if any."""
        return self._bets.get(key)

    def bets(self) -> list[Bet]:
        """Every bet of the round, in placement order."""
        return list(self._bets.values())

    def open_bets(self) -> list[Bet]:
        """The bets still riding, in placement order (a copy, safe to settle from)."""
        return list(self._open.values())

    @property
    def open_stakes(self) -> int:
        """Sum of the stakes of open bets, in cents."""
        return self._open_stakes

    @property
    def realised_profit(self) -> int:
        """Payouts minus stakes of the bets cashed out so far, in cents."""
        return self._realised

    def add(self, bet: Bet) -> None:
        """Take an open bet; the caller has checked that its slot is free."""
        key = bet.key
        if key in self._bets:
            raise ValueError(f"user {bet.user_id} already has a bet in slot {bet.slot}")
        self._bets[key] = bet
        self._open[key] = bet
        self._open_stakes += bet.amount
        if bet.auto_cashout is not None:
            self._seq += 1
            heapq.heappush(self._targets, (bet.auto_cashout, self._seq, bet))

    def next_auto(self) -> Bet | None:
        """The open bet with the lowest auto-cashout target (ties: first placed)."""
        targets = self._targets
        while targets:
            bet = targets[0][2]
            if bet.status == "open":
                return bet
            heapq.heappop(targets)  # settled another way since it was pushed
        return None

    def force_multiplier(self) -> int | None:
        """The multiplier at which every open bet must be forced out, if any bet is open.

        Promises: the largest ``m`` at which the players' profit bound is
        within ``max_profit`` (see the module docstring), never below 1.00x.
        """
        if self._open_stakes == 0:
            return None
        headroom = self._max_profit - self._realised
        return ONE_X + max(0, (headroom + 1) * ONE_X - 1) // self._open_stakes

    def settle(self, bet: Bet, payout: int) -> None:
        """Mark an open bet cashed out for ``payout`` cents and update the totals."""
        if bet.status != "open" or self._open.pop(bet.key, None) is not bet:
            raise ValueError(f"bet of user {bet.user_id} in slot {bet.slot} is not open")
        bet.status = "cashed_out"
        self._open_stakes -= bet.amount
        self._realised += payout - bet.amount
        if bet.auto_cashout is not None and self._targets and self._targets[0][2] is bet:
            heapq.heappop(self._targets)

    def cancel(self, bet: Bet) -> None:
        """Take an open bet back (betting only: it has no payout to account for).

        It stays in the book, ``cancelled``, so its slot stays taken for the
        round and a repeated cancel finds it.
        """
        if bet.status != "open" or self._open.pop(bet.key, None) is not bet:
            raise ValueError(f"bet of user {bet.user_id} in slot {bet.slot} is not open")
        bet.status = "cancelled"
        self._open_stakes -= bet.amount
        self._cancelled += 1

    def refund_open(self) -> list[Bet]:
        """The round is voided: every open bet is refunded. Returns them, in placement order."""
        refunded = list(self._open.values())
        for bet in refunded:
            bet.status = "refunded"
        self._open.clear()
        self._open_stakes = 0
        self._targets.clear()
        return refunded

    def lose_open(self) -> list[Bet]:
        """At the crash: every open bet is lost. Returns them, in placement order."""
        lost = list(self._open.values())
        for bet in lost:
            bet.status = "lost"
        self._open.clear()
        self._open_stakes = 0
        self._targets.clear()
        return lost
