"""The transition table (engine/phases.py) and the config checks (engine/config.py)."""

from __future__ import annotations

import itertools

import pytest

from pillarpayout_ws.engine.config import GameConfig
from pillarpayout_ws.engine.errors import ConfigError, EngineError, TransitionError
from pillarpayout_ws.engine.phases import (
    ACCEPTS_BETS,
    ACCEPTS_CASHOUTS,
    TRANSITIONS,
    Phase,
    Trigger,
    next_phase,
)
from pillarpayout_ws.exceptions import PillarPayoutError


def test_the_cycle() -> None:
    phase = next_phase(Phase.IDLE, Trigger.START)
    seen = [phase]
    for trigger in [Trigger.BETTING_ENDS, Trigger.COLLAPSE, Trigger.COOLDOWN_ENDS]:
        phase = next_phase(phase, trigger)
        seen.append(phase)
    assert seen == [Phase.BETTING, Phase.RUNNING, Phase.CRASHED, Phase.BETTING]


def test_everything_not_in_the_table_raises() -> None:
    illegal = [pair for pair in itertools.product(Phase, Trigger) if pair not in TRANSITIONS]
    assert len(illegal) == len(Phase) * len(Trigger) - 6
    for phase, trigger in illegal:
        with pytest.raises(TransitionError, match=trigger.value):
            next_phase(phase, trigger)


def test_a_void_opens_the_next_round_from_betting_or_running_only() -> None:
    assert next_phase(Phase.BETTING, Trigger.VOID) is Phase.BETTING
    assert next_phase(Phase.RUNNING, Trigger.VOID) is Phase.BETTING
    for phase in (Phase.IDLE, Phase.CRASHED):
        with pytest.raises(TransitionError, match="void"):
            next_phase(phase, Trigger.VOID)


def test_transition_error_is_an_engine_error() -> None:
    assert issubclass(TransitionError, EngineError)
    assert issubclass(EngineError, PillarPayoutError)


def test_command_columns() -> None:
    assert frozenset({Phase.BETTING}) == ACCEPTS_BETS
    assert frozenset({Phase.RUNNING}) == ACCEPTS_CASHOUTS


def test_phase_values_are_the_wire_names() -> None:
    assert [p.value for p in Phase] == ["idle", "betting", "running", "crashed"]


def test_default_config() -> None:
    config = GameConfig()
    assert (config.betting_ms, config.tick_ms, config.cooldown_ms) == (5000, 100, 3000)
    assert (config.min_bet, config.max_bet, config.max_auto_cashout) == (10, 1_000_000, 1_000_000)
    assert config.max_profit == 1_000_000


@pytest.mark.parametrize(
    "kwargs",
    [
        {"tick_ms": 0},
        {"betting_ms": -1},
        {"betting_ms": 0, "cooldown_ms": 0},
        {"min_bet": 0},
        {"min_bet": 100, "max_bet": 99},
        {"max_auto_cashout": 100},
        {"house_edge": 100.0},
        {"house_edge": -1.0},
        {"house_edge": float("nan")},
        {"house_bankroll": -1},
        {"max_profit_pct": 101.0},
        {"max_profit_pct": float("inf")},
        {"ref_memory_rounds": 0},
        {"betting_ms": 1.5},
    ],
)
def test_bad_config_raises(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match=r"\w"):
        GameConfig(**kwargs)  # type: ignore[arg-type]
