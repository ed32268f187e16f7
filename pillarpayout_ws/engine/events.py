"""What the engine tells the world: events to send, and the newcomer's snapshot.

``Game.events_to_send()`` hands these over in the order they happened; the
server turns each into one JSON frame (broadcast, or to one user when it
carries a ``user_id``). They are small frozen slotted dataclasses: no dicts
travel past the codec.

Secrecy rule: until ``Crashed``, no event carries anything derived from the
crash point or the server seed; ``BettingOpened.seed_hash`` is the only
seed-derived value, and ``Tick`` is a function of elapsed time alone.

Units: money in integer cents, multipliers in integer hundredths, integrity in
hundredths of a percent, times in milliseconds.

Which events go to whom (the server's business, noted here for the reader):

=================  ==========================================================
BettingOpened      everyone: a round opened (``betting``)
RoundRunning       everyone: the pillar starts growing (``running``)
Tick               everyone, droppable snapshot (``tick``)
Crashed            everyone, never dropped (``crashed``)
BetAccepted        the bettor (``bet_accepted``); public part to live bets
CashoutDone        the bettor (``cashed_out``); public part to live bets
CancelDone         the bettor (``bet_cancelled``); public part to live bets
CommandRejected    the user who sent the command (``error``)
GoalUpdated        everyone (``goal``)
FundsGranted       the user credited (a balance update)
=================  ==========================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pillarpayout_ws.engine.goals import Goal, GoalStatus
from pillarpayout_ws.engine.phases import Phase
from pillarpayout_ws.engine.records import CashoutReason

__all__ = [
    "BetAccepted",
    "BetStatus",
    "BetView",
    "BettingOpened",
    "CancelDone",
    "CashoutDone",
    "CashoutReason",
    "CommandRejected",
    "Crashed",
    "Event",
    "FundsGranted",
    "GameSnapshot",
    "GoalStatus",
    "GoalUpdated",
    "RoundRunning",
    "Tick",
]

# cancelled: taken back by its player during betting (``Game.cancel_bet``); the
# bets frame says so once, then the bet is listed nowhere.
BetStatus = Literal["open", "cashed_out", "lost", "refunded", "cancelled"]


@dataclass(frozen=True, slots=True)
class BettingOpened:
    """A round opened for bets; ``betting_ms`` is how long the window has left.

    ``chain_id`` and ``nonce`` say where its seed sits in the published chain,
    ``house_edge`` (percent) what the crash point formula will use.
    """

    round_id: int
    seed_hash: str
    betting_ms: int
    chain_id: int
    nonce: int
    house_edge: float


@dataclass(frozen=True, slots=True)
class RoundRunning:
    """Betting closed and the pillar started growing from 1.00x."""

    round_id: int


@dataclass(frozen=True, slots=True)
class Tick:
    """The pillar at ``elapsed_ms``: ``m`` and ``integrity`` depend on that alone."""

    round_id: int
    m: int
    integrity: int
    elapsed_ms: int


@dataclass(frozen=True, slots=True)
class Crashed:
    """The pillar fell at ``crash_point``; the seed is revealed for verification."""

    round_id: int
    crash_point: int
    server_seed: str
    client_seed: str
    nonce: int
    elapsed_ms: int


@dataclass(frozen=True, slots=True)
class BetAccepted:
    """A bet was debited; ``balance`` is the bettor's balance after the debit."""

    user_id: int
    ref: str | None
    round_id: int
    amount: int
    auto_cashout: int | None
    balance: int
    slot: int = 0


@dataclass(frozen=True, slots=True)
class CashoutDone:
    """A bet was paid ``payout`` at ``multiplier``; ``balance`` is after the credit.

    ``ref`` is the ref of the cashout command it answers, ``None`` when it
    answers none (an auto-cashout or a forced one).
    """

    user_id: int
    ref: str | None
    round_id: int
    multiplier: int
    payout: int
    balance: int
    reason: CashoutReason
    slot: int = 0


@dataclass(frozen=True, slots=True)
class CancelDone:
    """A bet was taken back during betting: ``amount`` refunded, ``balance`` after it.

    ``ref`` is the ref of the cancel command it answers (a replayed cancel
    gets the same answer under its own ref).
    """

    user_id: int
    ref: str | None
    round_id: int
    slot: int
    amount: int
    balance: int


@dataclass(frozen=True, slots=True)
class CommandRejected:
    """A player's command was refused with ``code``; nothing changed."""

    user_id: int
    ref: str | None
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class GoalUpdated:
    """A community goal gained blocks, completed, or became the active one."""

    id: int
    name: str
    current_blocks: int
    target_blocks: int
    reward: str
    status: GoalStatus

    @classmethod
    def of(cls, goal: Goal, status: GoalStatus) -> GoalUpdated:
        """The event announcing ``goal`` as it stands now."""
        return cls(goal.id, goal.name, goal.current_blocks, goal.target_blocks, goal.reward, status)


@dataclass(frozen=True, slots=True)
class FundsGranted:
    """Funds were credited to a user (starting balance or operator grant), or an
    operator adjusted the balance (``reason`` ``adjust``; ``amount`` may be < 0)."""

    user_id: int
    key: str
    amount: int
    balance: int
    reason: str = "grant"


@dataclass(frozen=True, slots=True)
class RoundVoided:
    """An operator voided the round before it crashed: cash-outs already made
    stand, every other bet was refunded (``BetRefunded``); no crash point or
    seed is revealed. The next round opens at once."""

    round_id: int
    refunded: int  # how many bets were refunded


@dataclass(frozen=True, slots=True)
class BetRefunded:
    """A bet of a voided round came back: ``balance`` is the bettor's after it."""

    user_id: int
    round_id: int
    slot: int
    amount: int
    balance: int


Event = (
    BettingOpened
    | RoundRunning
    | Tick
    | Crashed
    | BetAccepted
    | CashoutDone
    | CancelDone
    | CommandRejected
    | GoalUpdated
    | FundsGranted
    | RoundVoided
    | BetRefunded
)


@dataclass(frozen=True, slots=True)
class BetView:
    """One bet of the current round as every player may see it.

    The auto-cashout target is the bettor's private business and is left out.
    """

    user_id: int
    username: str
    amount: int
    status: BetStatus
    multiplier: int | None
    payout: int | None
    slot: int = 0


@dataclass(frozen=True, slots=True)
class GameSnapshot:
    """Everything a newcomer needs to draw the game as of the last ``advance``.

    ``m``, ``integrity`` and ``elapsed_ms`` are 1.00x/100.00 %/0 while betting,
    the live values while running, and the crash values once crashed;
    ``crash_point`` is ``None`` until the round has crashed. ``history`` is the
    last 50 ``(round_id, crash_point)``, oldest first.
    """

    phase: Phase
    round_id: int | None
    seed_hash: str | None
    chain_id: int | None
    nonce: int | None
    m: int
    integrity: int
    elapsed_ms: int
    betting_left_ms: int
    crash_point: int | None
    history: tuple[tuple[int, int], ...]
    goal: Goal | None
    bets: tuple[BetView, ...]
