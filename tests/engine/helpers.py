"""Shared test helpers: seeds with known crash points, and a ready-made game."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from pillarpayout_ws.engine.events import Event
from pillarpayout_ws.engine.fairness import RoundSeed, crash_point
from pillarpayout_ws.engine.game import Game, GameConfig
from pillarpayout_ws.engine.goals import Goal
from pillarpayout_ws.engine.records import Record

VECTORS_PATH = Path(__file__).resolve().parents[3] / "shared" / "vectors" / "fairness-public.json"
CLIENT_SEED = "pillarpayout-test-salt"
CHAIN_ID = 7

E = TypeVar("E")


def load_vectors() -> list[dict[str, Any]]:
    """The public bustabit vectors (``shared/vectors/fairness-public.json``)."""
    data = json.loads(VECTORS_PATH.read_text())
    vectors: list[dict[str, Any]] = data["vectors"]
    return vectors


@cache
def seed_with_crash(low: int, high: int | None = None) -> str:
    """The first test seed whose crash point (hundredths) is in ``[low, high]``.

    Deterministic (seeds are sha256 of a counter), so every run uses the same
    rounds; ``high`` defaults to ``low`` (an exact crash point).
    """
    top = low if high is None else high
    for i in range(2_000_000):
        seed = hashlib.sha256(f"pillarpayout-test-{i}".encode()).hexdigest()
        if low <= crash_point(seed, CLIENT_SEED) <= top:
            return seed
    raise AssertionError(f"no test seed crashes in [{low}, {top}]")


class ScriptedSeeds:
    """A SeedSource that plays the given server seeds in order, cycling."""

    def __init__(self, *server_seeds: str) -> None:
        assert server_seeds
        self._seeds = server_seeds
        self.handed_out = 0

    def next_round_seed(self) -> RoundSeed:
        self.handed_out += 1
        seed = self._seeds[(self.handed_out - 1) % len(self._seeds)]
        return RoundSeed(CHAIN_ID, self.handed_out, seed, CLIENT_SEED)


@dataclass
class Table:
    """A started game, its seed source, and what it has said and recorded so far."""

    game: Game
    seeds: ScriptedSeeds
    events: list[Event]
    records: list[Record]

    def drain(self) -> tuple[list[Event], list[Record]]:
        """The events and records since the last drain (also kept in the logs)."""
        events = self.game.events_to_send()
        records = self.game.records_to_persist()
        self.events.extend(events)
        self.records.extend(records)
        return events, records

    @property
    def round_started_ms(self) -> int:
        """When the first round starts running (the table starts at t=0)."""
        return self.game.config.betting_ms


def make_table(
    *server_seeds: str,
    config: GameConfig | None = None,
    balances: Iterable[tuple[int, int]] = ((1, 100_000), (2, 100_000), (3, 100_000)),
    goals: Iterable[Goal] = (),
    start: bool = True,
) -> Table:
    """A game at t=0 with funded accounts (``user_id -> cents``, via grants).

    Starts it (opening round 1's betting phase) unless ``start=False``, and
    drains the outboxes so tests begin from silence.
    """
    seeds = ScriptedSeeds(*(server_seeds or (seed_with_crash(300, 400),)))
    game = Game(config or GameConfig(), seeds, next_round_id=1, goals=tuple(goals))
    for user_id, balance in balances:
        game.load_account(user_id, f"user{user_id}", 0)
        if balance:
            game.grant(user_id, balance, f"start-{user_id}")
    if start:
        game.start(0)
    table = Table(game, seeds, [], [])
    table.drain()
    return table


def of_type(items: Iterable[object], kind: type[E]) -> list[E]:
    """The items that are instances of ``kind``, in order."""
    return [item for item in items if isinstance(item, kind)]
