"""Community goals (engine/goals.py) and how rounds build them."""

from __future__ import annotations

import pytest

from pillarpayout_ws.engine.errors import ConfigError
from pillarpayout_ws.engine.events import Crashed, GoalUpdated
from pillarpayout_ws.engine.fairness import crash_point
from pillarpayout_ws.engine.game import Phase
from pillarpayout_ws.engine.goals import Goal, GoalBoard, blocks_for_round
from pillarpayout_ws.engine.records import GoalAdvanced, RoundCrashed
from tests.engine.helpers import CLIENT_SEED, Table, make_table, of_type, seed_with_crash

TOWER = Goal(1, "Tower", 30, 0, "Gold badge")
SPIRE = Goal(2, "Spire", 20, 5, "Skin")
DONE = Goal(3, "Done", 10, 10, "Old reward")


@pytest.mark.parametrize(
    ("bets", "crash", "blocks"),
    [(0, 100, 0), (0, 105, 0), (0, 110, 1), (3, 247, 17), (1, 100, 1), (10, 1000, 100)],
)
def test_blocks_rule(bets: int, crash: int, blocks: int) -> None:
    assert blocks_for_round(bets, crash) == blocks


def test_board_adds_to_the_active_goal() -> None:
    board = GoalBoard([TOWER, SPIRE])
    announced, record = board.add_round(9, 2, 150)  # 2 + 5 blocks
    assert announced == [(Goal(1, "Tower", 30, 7, "Gold badge"), "active")]
    assert record == GoalAdvanced(9, 1, 7, False)
    assert board.active == Goal(1, "Tower", 30, 7, "Gold badge")


def test_board_completes_and_moves_on_without_carrying_surplus() -> None:
    board = GoalBoard([TOWER, SPIRE])
    announced, record = board.add_round(9, 5, 400)  # 5 + 30 = 35 blocks
    assert announced == [
        (Goal(1, "Tower", 30, 35, "Gold badge"), "completed"),
        (SPIRE, "active"),
    ]
    assert record == GoalAdvanced(9, 1, 35, True)
    assert board.active == SPIRE  # the surplus of 5 did not carry over
    assert board.goals[0].completed


def test_board_skips_goals_already_complete() -> None:
    board = GoalBoard([DONE, TOWER, DONE.__class__(4, "Also done", 1, 3, "x"), SPIRE])
    assert board.active == TOWER
    announced, _ = board.add_round(1, 30, 100)
    assert [(g.id, status) for g, status in announced] == [(1, "completed"), (2, "active")]


def test_board_with_everything_done_adds_nothing() -> None:
    board = GoalBoard([DONE])
    assert board.active is None
    assert board.add_round(1, 10, 500) == ([], None)
    assert GoalBoard([]).add_round(1, 10, 500) == ([], None)


def test_zero_blocks_change_nothing() -> None:
    board = GoalBoard([TOWER])
    assert board.add_round(1, 0, 104) == ([], None)
    assert board.active == TOWER


@pytest.mark.parametrize(
    "goals",
    [
        [TOWER, TOWER],
        [Goal(1, "x", 0, 0, "r")],
        [Goal(1, "x", 5, -1, "r")],
    ],
)
def test_board_refuses_bad_goals(goals: list[Goal]) -> None:
    with pytest.raises(ConfigError, match="goal"):
        GoalBoard(goals)


def _play_round(table: Table, bettors: int) -> None:
    game = table.game
    now = game.now_ms or 0
    for user in range(1, bettors + 1):
        game.place_bet(now, user, 100, None, None)
    while game.phase is not Phase.CRASHED:
        now = game.next_due_ms() or now
        game.advance(now)


def test_a_crashed_round_builds_the_goal_after_the_crash() -> None:
    seed = seed_with_crash(200, 250)
    crash = crash_point(seed, CLIENT_SEED)
    table = make_table(seed, goals=[TOWER, SPIRE])
    assert table.game.active_goal == TOWER
    _play_round(table, 2)
    events, records = table.drain()
    blocks = 2 + (crash - 100) // 10
    updated = GoalUpdated(1, "Tower", blocks, 30, "Gold badge", "active")
    assert of_type(events, GoalUpdated) == [updated]
    assert events.index(updated) > events.index(of_type(events, Crashed)[0])
    assert isinstance(records[-2], RoundCrashed)
    assert records[-1] == GoalAdvanced(1, 1, blocks, False)
    assert table.game.snapshot().goal == Goal(1, "Tower", 30, blocks, "Gold badge")


def test_rounds_complete_a_goal_and_announce_the_next() -> None:
    seed = seed_with_crash(350, 400)  # 3 bets + 25..30 blocks: two rounds pass 50
    tall = Goal(1, "Tower", 50, 0, "Gold badge")
    table = make_table(seed, goals=[tall, SPIRE])
    _play_round(table, 3)
    _play_round_after_cooldown(table, 3)
    events, records = table.drain()
    goal_events = of_type(events, GoalUpdated)
    assert [(e.id, e.status) for e in goal_events] == [
        (1, "active"),
        (1, "completed"),
        (2, "active"),
    ]
    assert goal_events[1].reward == "Gold badge"
    assert [r.completed for r in of_type(records, GoalAdvanced)] == [False, True]
    assert table.game.active_goal == SPIRE
    assert table.game.goals[0].completed


def _play_round_after_cooldown(table: Table, bettors: int) -> None:
    game = table.game
    now = game.next_due_ms() or 0
    game.advance(now)
    assert game.phase is Phase.BETTING
    _play_round(table, bettors)


def test_a_round_with_no_blocks_records_nothing() -> None:
    table = make_table(seed_with_crash(100), goals=[TOWER])
    _play_round(table, 0)
    events, records = table.drain()
    assert not of_type(events, GoalUpdated)
    assert not of_type(records, GoalAdvanced)
