"""Community goals: every round's pillar adds blocks to one shared goal.

The rule
    When a round crashes it adds ``blocks_for_round(bets, crash_point)`` =
    **one block per bet placed in the round** plus **one block per full 0.10x
    the pillar stood above 1.00x**, i.e. ``bets + (crash_point - 100) // 10``
    (crash point in hundredths). A round with no bets that crashed at 1.05x
    adds nothing; 3 bets and a crash at 2.47x add 3 + 14 = 17 blocks.

    The blocks go to the **active goal**: the first goal, in the configured
    order, whose ``current_blocks < target_blocks``. When the addition brings
    it to ``current_blocks >= target_blocks`` the goal **completes** and the
    next unfinished goal in the list becomes active. **Surplus blocks do not
    carry over**: the completed goal keeps its full count (it may exceed its
    target) and the next goal starts from its own stored count. When every
    goal is complete, rounds add blocks to nothing.

    No money moves when a goal completes: the ``reward`` is a text shown to
    players. Blocks are added only after the crash, so goal progress reveals
    nothing about a round before its seed is public.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from pillarpayout_ws.engine.errors import ConfigError
from pillarpayout_ws.engine.records import GoalAdvanced

__all__ = ["Goal", "GoalBoard", "GoalStatus", "blocks_for_round"]

GoalStatus = Literal["active", "completed"]

# One block per this many hundredths the pillar stood above 1.00x (0.10x).
_HUNDREDTHS_PER_BLOCK = 10


@dataclass(frozen=True, slots=True)
class Goal:
    """A community goal as stored in ``community_goals``."""

    id: int
    name: str
    target_blocks: int
    current_blocks: int
    reward: str

    @property
    def completed(self) -> bool:
        """True once the goal has as many blocks as its target."""
        return self.current_blocks >= self.target_blocks


def blocks_for_round(bet_count: int, crash_point: int) -> int:
    """Blocks a finished round adds: ``bet_count + (crash_point - 100) // 10``."""
    return bet_count + max(0, crash_point - 100) // _HUNDREDTHS_PER_BLOCK


class GoalBoard:
    """The ordered goals and which one is active; the only place goals change."""

    __slots__ = ("_active", "_goals")

    def __init__(self, goals: Sequence[Goal]) -> None:
        ids = [goal.id for goal in goals]
        if len(set(ids)) != len(ids):
            raise ConfigError(f"community goal ids must be unique, got {ids}")
        for goal in goals:
            if goal.target_blocks < 1 or goal.current_blocks < 0:
                raise ConfigError(f"goal {goal.id} needs target_blocks >= 1, current >= 0")
        self._goals = list(goals)
        self._active = self._first_unfinished(0)

    def _first_unfinished(self, start: int) -> int | None:
        for index in range(start, len(self._goals)):
            if not self._goals[index].completed:
                return index
        return None

    @property
    def active(self) -> Goal | None:
        """The goal the next round's blocks go to, or ``None`` when all are done."""
        return None if self._active is None else self._goals[self._active]

    @property
    def goals(self) -> tuple[Goal, ...]:
        """Every goal as it stands, in the configured order."""
        return tuple(self._goals)

    def add_round(
        self, round_id: int, bet_count: int, crash_point: int
    ) -> tuple[list[tuple[Goal, GoalStatus]], GoalAdvanced | None]:
        """Add a crashed round's blocks to the active goal.

        Promises: returns the goals to announce, in order (the advanced goal
        with status ``active`` or ``completed``, then the newly active goal if
        one completed), and the record to persist; ``([], None)`` when the
        round adds no blocks or no goal is active.
        """
        blocks = blocks_for_round(bet_count, crash_point)
        if blocks == 0 or self._active is None:
            return [], None
        index = self._active
        goal = replace(
            self._goals[index], current_blocks=self._goals[index].current_blocks + blocks
        )
        self._goals[index] = goal
        record = GoalAdvanced(round_id, goal.id, blocks, goal.completed)
        if not goal.completed:
            return [(goal, "active")], record
        announced: list[tuple[Goal, GoalStatus]] = [(goal, "completed")]
        self._active = self._first_unfinished(index + 1)
        if self._active is not None:
            announced.append((self._goals[self._active], "active"))
        return announced, record
