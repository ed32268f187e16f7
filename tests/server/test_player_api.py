"""``/api/me/bets``, ``/api/users/NAME`` and ``/api/leaderboard`` (server/api.py):
a player's own bets behind their session token, profiles and leaderboards
from bets played through the game and flushed."""

from __future__ import annotations

import asyncio
import http.client
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from pillarpayout_ws.engine.records import (
    BetPlaced,
    CashedOut,
    RoundCrashed,
    RoundOpened,
    RoundRecord,
)
from pillarpayout_ws.server.api import UNAUTHORIZED
from pillarpayout_ws.server.clock import ManualClock
from pillarpayout_ws.storage import Storage
from pillarpayout_ws.storage.settle import settle_round

from .conftest import ManualGame, Player, start_game

MONDAY_NOON = datetime(2026, 11, 30, 12, tzinfo=UTC)  # the game's clock starts here
SUNDAY = datetime(2026, 11, 29, 20, tzinfo=UTC)  # the day before, and the ISO week before


def get(port: int, path: str, headers: list[tuple[str, str]]) -> tuple[int, dict[str, str], Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest("GET", path)
        for name, value in headers:
            conn.putheader(name, value)
        conn.endheaders()
        resp = conn.getresponse()
        body = resp.read()
        assert resp.headers["Content-Type"] == "application/json"
        return resp.status, dict(resp.headers), orjson.loads(body)
    finally:
        conn.close()


async def api(game: ManualGame, path: str, token: str | None = None) -> tuple[int, Any]:
    headers = [] if token is None else [("Authorization", f"Bearer {token}")]
    status, _, body = await asyncio.to_thread(get, game.app.port, path, headers)
    return status, body


@pytest.fixture
async def game(storage_for_game: Storage) -> AsyncIterator[ManualGame]:
    clock = ManualClock(start=MONDAY_NOON.timestamp())
    app = await start_game(storage_for_game, clock=clock, stop_timeout_s=0)
    try:
        yield ManualGame(app, clock)
    finally:
        await app.stop()


async def bet(player: Player, ref: str, amount: int, auto: float | None) -> None:
    await player.send(type="bet", amount=amount, auto_cashout=auto, ref=ref)
    await player.next("bet_accepted", ref=ref)


async def play(game: ManualGame) -> tuple[str, str]:
    """Three rounds (each crashing between 1.50x and 4.00x): alice bets 100 at
    auto 1.20x, 200 with none (lost), 50 at auto 1.20x; bob 300 with none, 100
    at 1.20x. Flushed and summed; the session tokens of alice and bob."""
    alice, alice_session = await game.register("alice")
    bob, bob_session = await game.register("bob")
    plays = [
        ((100, 1.2), (300, None)),
        ((200, None), (100, 1.2)),
        ((50, 1.2), None),
    ]
    for i, (a, b) in enumerate(plays):
        await game.to_phase("betting")
        await bet(alice, f"a{i}", *a)
        if b is not None:
            await bet(bob, f"b{i}", *b)
        await game.to_phase("crashed")
    flusher, stats = game.app.flusher, game.app.stats
    await flusher.wait_until(lambda: flusher.rounds_flushed >= 3)
    await stats.wait_until(lambda: stats.bets_summarised >= 5)
    await alice.close()
    await bob.close()
    return alice_session["token"], bob_session["token"]


async def test_my_bets_newest_first_a_page_at_a_time(game: ManualGame) -> None:
    alice, bob = await play(game)
    status, body = await api(game, "/api/me/bets", alice)
    assert status == 200 and body["next_before"] is None
    bets = body["bets"]
    assert [b["id"] for b in bets] == sorted((b["id"] for b in bets), reverse=True)
    rounds = [b["round_id"] for b in bets]
    assert rounds == sorted(rounds, reverse=True) and len(set(rounds)) == 3
    for b in bets:
        assert MONDAY_NOON.timestamp() <= b.pop("placed_at") < MONDAY_NOON.timestamp() + 600
        del b["id"], b["round_id"]
    assert bets == [
        {"amount": 50, "auto_cashout": 1.2, "cashout_multiplier": 1.2, "payout": 60,
         "status": "cashed_out", "slot": 0},
        {"amount": 200, "auto_cashout": None, "cashout_multiplier": None, "payout": 0,
         "status": "lost", "slot": 0},
        {"amount": 100, "auto_cashout": 1.2, "cashout_multiplier": 1.2, "payout": 120,
         "status": "cashed_out", "slot": 0},
    ]  # fmt: skip
    _, whole = await api(game, "/api/me/bets", alice)
    ids = [b["id"] for b in whole["bets"]]
    _, page = await api(game, "/api/me/bets?limit=2", alice)
    assert [b["id"] for b in page["bets"]] == ids[:2] and page["next_before"] == ids[1]
    _, rest = await api(game, f"/api/me/bets?limit=2&before={ids[1]}", alice)
    assert [b["id"] for b in rest["bets"]] == ids[2:] and rest["next_before"] is None
    _, exact = await api(game, "/api/me/bets?limit=3", alice)
    assert exact["next_before"] is None
    _, empty = await api(game, f"/api/me/bets?before={min(ids)}", alice)
    assert empty == {"bets": [], "next_before": None}
    # Bob sees his own two, never alice's.
    _, his = await api(game, "/api/me/bets", bob)
    assert [(b["amount"], b["status"]) for b in his["bets"]] == [(100, "cashed_out"), (300, "lost")]


async def test_profiles_and_leaderboards(game: ManualGame, storage_for_game: Storage) -> None:
    await play(game)
    status, alice = await api(game, "/api/users/ALICE")
    assert status == 200
    assert MONDAY_NOON.timestamp() - 3600 < alice.pop("joined_at")
    assert alice == {
        "username": "alice",
        "rounds_played": 3,
        "bets": 3,
        "wagered": 350,
        "profit": 20 - 200 + 10,
        "best_multiplier": 1.2,
        "biggest_win": 20,
    }

    async def board(by: str, period: str) -> list[tuple[str, Any]]:
        status, body = await api(game, f"/api/leaderboard?by={by}&period={period}")
        assert status == 200 and (body["by"], body["period"]) == (by, period)
        assert [r["rank"] for r in body["rows"]] == list(range(1, len(body["rows"]) + 1))
        return [(r["username"], r["value"]) for r in body["rows"]]

    for period in ("day", "week", "all"):
        assert await board("profit", period) == [("alice", -170), ("bob", -280)]
        assert await board("wagered", period) == [("bob", 400), ("alice", 350)]
        # A tie: the older account first.
        assert await board("multiplier", period) == [("alice", 1.2), ("bob", 1.2)]
    _, body = await api(game, "/api/leaderboard")
    assert (body["by"], body["period"], body["starts"]) == ("profit", "all", None)
    _, body = await api(game, "/api/leaderboard?period=week")
    assert body["starts"] == "2026-11-30"  # a Monday

    # Carol's win on Sunday (the day and ISO week before), flushed by another
    # process: all time only, once summed; the cached answers give way.
    db = storage_for_game.db
    carol = await db.create_user("Carol", "carol@example.com", "x", 10_000)
    assert carol is not None
    chain = game.app.runner.fairness().chain_id
    placed = int(SUNDAY.timestamp() * 1000)
    records: list[RoundRecord] = [
        RoundOpened(900, chain, 900, "00" * 32, "salt", 1.0, placed),
        BetPlaced(900, carol.id, None, 1000, None, 9000, placed),
        CashedOut(900, carol.id, 500, 5000, 14_000, "manual"),
        RoundCrashed(900, 600, 5000, "11" * 32, placed + 5000),
    ]
    await db.flush([settle_round(records)])
    stats = game.app.stats
    stats.poke()
    await stats.wait_until(lambda: stats.bets_summarised >= 6)
    for period in ("day", "week"):
        assert await board("profit", period) == [("alice", -170), ("bob", -280)]
        assert await board("multiplier", period) == [("alice", 1.2), ("bob", 1.2)]
    assert await board("profit", "all") == [("Carol", 4000), ("alice", -170), ("bob", -280)]
    assert await board("multiplier", "all") == [("Carol", 5.0), ("alice", 1.2), ("bob", 1.2)]
    _, profile = await api(game, "/api/users/carol")
    assert (profile["username"], profile["profit"], profile["biggest_win"]) == ("Carol", 4000, 4000)


async def test_a_new_player_has_a_profile_with_nothing_in_it(game: ManualGame) -> None:
    player, _ = await game.register("newbie")
    await player.close()
    status, body = await api(game, "/api/users/newbie")
    assert status == 200
    del body["joined_at"]
    assert body == {
        "username": "newbie",
        "rounds_played": 0,
        "bets": 0,
        "wagered": 0,
        "profit": 0,
        "best_multiplier": None,
        "biggest_win": None,
    }
    _, board = await api(game, "/api/leaderboard?by=multiplier&period=day")
    assert board["rows"] == []


@pytest.mark.parametrize("path", ["nobody", "%FF", "%00", "a" * 65, "", "al%20ice", "%2E%2E%2Fapi"])
async def test_an_unknown_user_is_404(game: ManualGame, path: str) -> None:
    player, _ = await game.register("alice")
    await player.close()
    assert await api(game, f"/api/users/{path}") == (404, {"error": "no such user"})


async def test_a_session_token_is_needed_for_my_bets(game: ManualGame) -> None:
    player, session = await game.register("alice")
    token = session["token"]
    # A second connection on the same session logs it out.
    other = await game.resume(token)
    await other.send(type="logout")
    await other.next("logged_out")
    await other.close()
    await player.close()
    fresh, fresh_session = await game.register("bob")
    await fresh.close()
    valid = fresh_session["token"]
    refused = [
        [],
        [("Authorization", f"Basic {valid}")],
        [("Authorization", "Bearer")],
        [("Authorization", "Bearer ")],
        [("Authorization", f"Bearer {valid}!")],
        [("Authorization", "Bearer " + "x" * 200)],
        [("Authorization", "Bearer " + "A" * 43)],  # well formed, nobody's
        [("Authorization", f"Bearer {token}")],  # logged out
        [("Authorization", f"Bearer {valid}"), ("Authorization", f"Bearer {valid}")],
    ]
    for headers in refused:
        status, got, body = await asyncio.to_thread(get, game.app.port, "/api/me/bets", headers)
        assert (status, body) == (401, {"error": UNAUTHORIZED}), headers
        assert got["WWW-Authenticate"] == "Bearer"
    # Refused before its parameters are read.
    assert await api(game, "/api/me/bets?limit=0") == (401, {"error": UNAUTHORIZED})
    for scheme in ("Bearer", "bearer"):
        status, _, body = await asyncio.to_thread(
            get, game.app.port, "/api/me/bets", [("Authorization", f"{scheme} {valid}")]
        )
        assert (status, body) == (200, {"bets": [], "next_before": None})


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("/api/me/bets?limit=0", "limit is a positive whole number"),
        ("/api/me/bets?limit=101", "limit is 1 to 100"),
        ("/api/me/bets?before=abc", "before is a positive whole number"),
        ("/api/me/bets?before=1&before=2", "before is given more than once"),
        ("/api/me/bets?page=2", "unknown parameter: page"),
        ("/api/leaderboard?by=foo", "by is profit, wagered or multiplier"),
        ("/api/leaderboard?period=foo", "period is day, week or all"),
        ("/api/leaderboard?by=", "by is profit, wagered or multiplier"),
        ("/api/leaderboard?by=profit&peroid=day", "unknown parameter: peroid"),
        ("/api/users/alice?x=1", "unknown parameter: x"),
    ],
)
async def test_bad_parameters_are_400(game: ManualGame, path: str, error: str) -> None:
    player, session = await game.register("alice")
    await player.close()
    assert await api(game, path, session["token"]) == (400, {"error": error})


async def test_two_slots_are_two_bets_of_one_round(game: ManualGame) -> None:
    alice, session = await game.register("alice")
    await alice.send(type="bet", amount=100, auto_cashout=1.2, ref="s0")
    await alice.send(type="bet", amount=300, ref="s1", slot=1)
    await alice.next("bet_accepted", ref="s1")
    await game.to_phase("crashed")
    flusher, stats = game.app.flusher, game.app.stats
    await flusher.wait_until(lambda: flusher.rounds_flushed >= 1)
    await stats.wait_until(lambda: stats.bets_summarised >= 2)
    _, mine = await api(game, "/api/me/bets", session["token"])
    assert [(b["slot"], b["amount"], b["status"]) for b in mine["bets"]] == [
        (1, 300, "lost"),
        (0, 100, "cashed_out"),
    ]
    _, profile = await api(game, "/api/users/alice")
    assert (profile["rounds_played"], profile["bets"], profile["wagered"]) == (1, 2, 400)
    assert profile["profit"] == 20 - 300
    await alice.close()
