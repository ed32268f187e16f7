"""``/api/*`` (server/api.py): the published record, its limits and its secrecy."""

from __future__ import annotations

import asyncio
import http.client
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from pillarpayout_ws.engine.fairness import crash_point
from pillarpayout_ws.server.clock import ManualClock
from pillarpayout_ws.storage import Storage

from .conftest import CLIENT_SEED, ManualGame, start_game

# Also run against Debian's PostgreSQL and Redis (python -m tests.external, in make test).
pytestmark = pytest.mark.external


def get(port: int, path: str) -> tuple[int, dict[str, str], Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        assert resp.headers["Content-Type"] == "application/json"
        return resp.status, dict(resp.headers), orjson.loads(body)
    finally:
        conn.close()


async def api(game: ManualGame, path: str) -> tuple[int, dict[str, str], Any]:
    return await asyncio.to_thread(get, game.app.port, path)


async def play_rounds(game: ManualGame, rounds: int) -> list[dict[str, Any]]:
    """Play ``rounds`` rounds, a bet in each; their ``crashed`` frames."""
    alice, _ = await game.register("alice")
    crashed = []
    for i in range(rounds):
        await game.to_phase("betting")
        await alice.send(type="bet", amount=100 * (i + 1), ref=f"b{i}")
        await alice.next("bet_accepted", ref=f"b{i}")
        await game.to_phase("crashed")
        crashed.append(await alice.next("crashed"))
    await alice.close()
    return crashed


@pytest.fixture(params=[True, False], ids=["flushed", "in-redis"])
async def record_game(
    request: pytest.FixtureRequest, storage_for_game: Storage
) -> AsyncIterator[tuple[ManualGame, bool]]:
    """A manual game that flushes every round, or keeps them in Redis (for an hour)."""
    flushed: bool = request.param
    clock = ManualClock()
    delays: dict[str, Any] = (
        {} if flushed else {"flush_rounds": 1000, "flush_interval_ms": 3_600_000}
    )
    app = await start_game(storage_for_game, clock=clock, stop_timeout_s=0, **delays)
    try:
        yield ManualGame(app, clock), flushed
    finally:
        await app.stop()


async def test_a_round_is_on_record_the_moment_it_crashes(
    record_game: tuple[ManualGame, bool],
) -> None:
    game, flushed = record_game
    crashed = await play_rounds(game, 3)
    if flushed:
        flusher = game.app.flusher
        await flusher.wait_until(lambda: flusher.rounds_flushed >= 3)
    else:
        assert game.app.flusher.rounds_flushed == 0
    status, headers, body = await api(game, "/api/rounds")
    assert status == 200 and headers["Cache-Control"] == "no-cache"
    rounds = body["rounds"]
    assert [r["id"] for r in rounds] == [c["round_id"] for c in reversed(crashed)]
    for r, c in zip(reversed(rounds), crashed, strict=True):
        assert (r["server_seed"], r["crash_point"], r["nonce"]) == (
            c["server_seed"],
            c["crash_point"],
            c["nonce"],
        )
        assert crash_point(r["server_seed"], CLIENT_SEED, r["house_edge"]) == round(
            r["crash_point"] * 100
        )
        assert r["status"] == "crashed" and r["bets_count"] == 1
        assert r["started_at"] < r["ended_at"]
    # One round, with its bet.
    first = crashed[0]["round_id"]
    status, headers, one = await api(game, f"/api/rounds/{first}")
    assert status == 200
    assert headers["Cache-Control"] == "public, max-age=31536000, immutable"
    (bet,) = one["bets"]
    assert (bet["username"], bet["amount"], bet["status"]) == ("alice", 100, "lost")
    assert one["started_at"] - 5 < bet["placed_at"] < one["started_at"]
    # Paging: newest first, below `before`.
    _, _, page = await api(game, f"/api/rounds?before={rounds[0]['id']}&limit=1")
    assert [r["id"] for r in page["rounds"]] == [rounds[1]["id"]]


async def test_the_round_being_played_shows_no_seed(manual_game: ManualGame) -> None:
    alice, _ = await manual_game.register("alice")
    await alice.send(type="bet", amount=500, ref="b")
    await alice.next("bet_accepted", ref="b")
    await manual_game.to_phase("running")
    current = manual_game.app.runner.round_id
    status, headers, body = await api(manual_game, f"/api/rounds/{current}")
    assert status == 200 and headers["Cache-Control"] == "no-store"
    assert (body["status"], body["server_seed"], body["crash_point"]) == ("open", None, None)
    assert [b["status"] for b in body["bets"]] == ["open"]
    _, _, listed = await api(manual_game, "/api/rounds")
    assert current not in [r["id"] for r in listed["rounds"]]
    await alice.close()


async def test_fairness_lists_every_chain(manual_game: ManualGame) -> None:
    status, _, body = await api(manual_game, "/api/fairness")
    assert status == 200
    (chain,) = body["chains"]
    hello_fairness = manual_game.app.runner.fairness()
    assert chain["chain_id"] == hello_fairness.chain_id == body["current"]["chain_id"]
    assert (chain["commitment"], chain["client_seed"]) == (
        hello_fairness.commitment,
        CLIENT_SEED,
    )
    assert chain["committed_at"] <= chain["salted_at"]
    assert "top_seed" not in chain


@pytest.mark.parametrize(
    ("path", "status", "error"),
    [
        ("/api/rounds?limit=0", 400, "limit is a positive whole number"),
        ("/api/rounds?limit=101", 400, "limit is 1 to 100"),
        ("/api/rounds?limit=ten", 400, "limit is a positive whole number"),
        ("/api/rounds?before=-1", 400, "before is a positive whole number"),
        ("/api/rounds?before=0", 400, "before is a positive whole number"),
        ("/api/rounds?before=1&before=2", 400, "before is given more than once"),
        ("/api/rounds?before=" + "9" * 40, 400, "before is a positive whole number"),
        ("/api/rounds/abc", 400, "a round id is a positive whole number"),
        ("/api/rounds/%31", 400, "a round id is a positive whole number"),
        ("/api/rounds/" + "9" * 40, 400, "a round id is a positive whole number"),
        ("/api/rounds/", 400, "a round id is a positive whole number"),
        ("/api/rounds/123456", 404, "no round 123456"),
    ],
)
async def test_bad_requests_get_a_one_line_error(
    manual_game: ManualGame, path: str, status: int, error: str
) -> None:
    got, headers, body = await api(manual_game, path)
    assert (got, body) == (status, {"error": error})
    assert headers["Cache-Control"] == "no-store"


async def test_unknown_parameters_are_ignored(manual_game: ManualGame) -> None:
    status, _, body = await api(manual_game, "/api/rounds?limit=5&utm_source=x")
    assert status == 200 and body == {"rounds": []}
