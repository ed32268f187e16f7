"""The harness's checkers on hand-made frames: each violation is named, fair rounds pass."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import orjson
import pytest

from loadtest import players
from loadtest.checks import RoundChecker, payout_problem
from pillarpayout_ws.engine.fairness import SeedChain, crash_point, seed_hash
from pillarpayout_ws.engine.growth import elapsed_for, multiplier_at

CLIENT_SEED = "loadtest-checks"
CHAIN = SeedChain.from_top("ab" * 32, 10)


def round_frames(round_id: int, *, extra_m: int = 0) -> list[dict[str, Any]]:
    """A fair round as the server sends it (``extra_m`` pushes one tick past the crash)."""
    seed = CHAIN.seed_for(round_id)
    point = crash_point(seed, CLIENT_SEED)
    frames: list[dict[str, Any]] = [
        {"type": "betting", "round_id": round_id, "seed_hash": seed_hash(seed), "betting_ms": 0}
    ]
    for elapsed in range(0, elapsed_for(point), 100):
        frames.append(
            {
                "type": "tick",
                "round_id": round_id,
                "m": multiplier_at(elapsed) / 100,
                "elapsed_ms": elapsed,
            }
        )
    if extra_m:
        elapsed = elapsed_for(point + extra_m)
        frames.append(
            {
                "type": "tick",
                "round_id": round_id,
                "m": multiplier_at(elapsed) / 100,
                "elapsed_ms": elapsed,
            }
        )
    frames.append(
        {
            "type": "crashed",
            "round_id": round_id,
            "crash_point": point / 100,
            "server_seed": seed,
            "client_seed": CLIENT_SEED,
            "nonce": round_id,
        }
    )
    return frames


def check(frames: list[dict[str, Any]]) -> RoundChecker:
    checker = RoundChecker()
    for frame in frames:
        checker.feed(frame)
    return checker


def test_fair_rounds_pass_and_are_counted() -> None:
    checker = check(round_frames(1) + round_frames(2) + round_frames(3))
    assert checker.problems == []
    assert checker.rounds == {1, 2, 3}


def test_a_tick_above_the_crash_point_is_named() -> None:
    assert check(round_frames(1, extra_m=5)).problems == ["tick_above_crash"]


def test_a_revealed_seed_that_does_not_hash_to_the_published_one_is_named() -> None:
    frames = round_frames(1)
    frames[0]["seed_hash"] = seed_hash(CHAIN.seed_for(5))
    assert check(frames).problems == ["seed_mismatch"]


def test_a_crash_point_the_formula_does_not_give_is_named() -> None:
    frames = round_frames(1)
    frames[-1]["crash_point"] += 0.01
    assert "crash_point_mismatch" in check(frames).problems


def test_rounds_that_do_not_link_through_the_chain_are_named() -> None:
    assert check(round_frames(1) + round_frames(3)).problems == []  # a gap: nothing to link
    other = SeedChain.from_top("cd" * 32, 10).seed_for(2)
    second = round_frames(2)
    second[0]["seed_hash"] = seed_hash(other)
    for frame in second:
        if frame["type"] == "crashed":
            frame["server_seed"] = other
            frame["crash_point"] = crash_point(other, CLIENT_SEED) / 100
    assert check(round_frames(1) + second).problems == ["chain_broken"]


def test_a_tick_off_the_growth_curve_is_named() -> None:
    frames = round_frames(1)
    frames[3]["m"] = round(frames[3]["m"] + 0.01, 2)
    assert check(frames).problems == ["tick_off_curve"]


@pytest.mark.parametrize(
    ("frame", "problem"),
    [
        ({"multiplier": 2.35, "payout": 2937, "balance": 12937, "reason": "manual"}, None),
        (
            {"multiplier": 2.35, "payout": 2938, "balance": 12938, "reason": "manual"},
            "payout_mismatch",
        ),
        (
            {"multiplier": 2.35, "payout": 2937, "balance": 12937, "reason": "auto"},
            "auto_cashout_mismatch",
        ),
        ({"multiplier": 2.0, "payout": 2500, "balance": 12500, "reason": "auto"}, None),
        (
            {"multiplier": 2.35, "payout": 2937, "balance": 12000, "reason": "manual"},
            "balance_mismatch",
        ),
    ],
)
def test_payouts_are_checked_against_the_bet(frame: dict[str, Any], problem: str | None) -> None:
    assert payout_problem(frame, 1250, 200, 10_000) == problem


class Sent:
    """A ``GameClient`` stand-in that keeps what a bettor sends."""

    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []

    def send(self, frame: dict[str, Any]) -> None:
        self.frames.append(frame)


@pytest.mark.parametrize("code", ["busy", "rate_limited"])
async def test_a_bettor_turned_away_at_the_door_asks_again(
    code: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server's registration cap (``rate_limited``) and its full password
    hashing (``busy``) are answers to wait on, not errors: the bettor sends its
    ``register`` again later, and is counted as retried, not failed."""
    monkeypatch.setitem(players.RETRY_S, code, (0.0, 0.0))
    tally, client = players.Tally(), Sent()
    bettor = players.Bettor("lt1_0", "correct horse battery", tally, random.Random(1))
    bettor(client, orjson.dumps({"type": "hello", "round_id": 0}))  # type: ignore[arg-type]
    bettor(client, orjson.dumps({"type": "error", "code": code}))  # type: ignore[arg-type]
    assert [f["type"] for f in client.frames] == ["register"]
    for _ in range(10):  # the retry's call_later(0) runs within a loop turn or two
        if len(client.frames) == 2:
            break
        await asyncio.sleep(0)
    assert [f["type"] for f in client.frames] == ["register", "register"]
    assert not tally.errors
    assert (tally.busy_retries, tally.limited_retries) == ((1, 0) if code == "busy" else (0, 1))
