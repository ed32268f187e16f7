"""The round's phases and the one table of legal transitions between them.

::

    idle --start--> betting --betting_ends--> running --collapse--> crashed
                       ^                                               |
                       +----------------- cooldown_ends ---------------+

    betting or running --void--> betting (the next round, opened at once)

* ``idle``: before ``Game.start``; no round exists yet.
* ``betting``: a round is open and takes bets for ``betting_ms``.
* ``running``: the pillar grows; players cash out; auto-cashouts fire.
* ``crashed``: the pillar fell and the seed is revealed; after ``cooldown_ms``
  the next round opens (the cooldown is the tail of this phase, not a phase of
  its own, because nothing a player can do differs between the two).

Every phase change in the engine goes through ``next_phase``, which consults
``TRANSITIONS`` before anything is changed, so an illegal change raises
``TransitionError`` with nothing half-applied (h11's discipline).

Which *player commands* each phase accepts is part of the same picture:
``ACCEPTS_BETS``, ``ACCEPTS_CANCELS`` and ``ACCEPTS_CASHOUTS`` are its columns.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from pillarpayout_ws.engine.errors import TransitionError

__all__ = [
    "ACCEPTS_BETS",
    "ACCEPTS_CANCELS",
    "ACCEPTS_CASHOUTS",
    "TRANSITIONS",
    "Phase",
    "Trigger",
    "next_phase",
]


class Phase(StrEnum):
    """Where the game is; the value is the wire name (``hello.phase``)."""

    IDLE = "idle"
    BETTING = "betting"
    RUNNING = "running"
    CRASHED = "crashed"


class Trigger(StrEnum):
    """What moves the game from one phase to the next."""

    START = "start"
    BETTING_ENDS = "betting_ends"
    COLLAPSE = "collapse"
    COOLDOWN_ENDS = "cooldown_ends"
    # An operator voided the round (``pillarpayout void-round``): the next opens at once.
    VOID = "void"


TRANSITIONS: Final[dict[tuple[Phase, Trigger], Phase]] = {
    (Phase.IDLE, Trigger.START): Phase.BETTING,
    (Phase.BETTING, Trigger.BETTING_ENDS): Phase.RUNNING,
    (Phase.RUNNING, Trigger.COLLAPSE): Phase.CRASHED,
    (Phase.CRASHED, Trigger.COOLDOWN_ENDS): Phase.BETTING,
    (Phase.BETTING, Trigger.VOID): Phase.BETTING,
    (Phase.RUNNING, Trigger.VOID): Phase.BETTING,
}
"""(phase, trigger) -> next phase. Anything not listed is illegal."""

ACCEPTS_BETS: Final = frozenset({Phase.BETTING})
"""Phases in which ``place_bet`` may succeed."""

ACCEPTS_CANCELS: Final = ACCEPTS_BETS
"""Phases in which ``cancel_bet`` may take a bet back: exactly those that take bets."""

ACCEPTS_CASHOUTS: Final = frozenset({Phase.RUNNING})
"""Phases in which a manual ``cash_out`` may succeed."""


def next_phase(phase: Phase, trigger: Trigger) -> Phase:
    """The phase ``trigger`` leads to from ``phase``.

    Promises: the entry of ``TRANSITIONS``, or ``TransitionError`` (and no
    other effect) when the table has none.
    """
    try:
        return TRANSITIONS[phase, trigger]
    except KeyError:
        raise TransitionError(
            f"{trigger.value!r} is not allowed in phase {phase.value!r}"
        ) from None
