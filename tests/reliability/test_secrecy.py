"""Issue 7, item 11: nothing sent before ``crashed`` gives the crash away.

Many rounds on a fast clock, watched by a spectator, a player who bets every
round (so live ``bets`` frames and auto-cashouts are in the stream),
newcomers who connect mid-round (``hello``), and scrapes of ``/metrics``:

- no frame sent before a round's ``crashed``, and no ``hello`` or ``/metrics``
  page, holds that round's server seed (nor any later round's);
- nothing before ``crashed`` varies with the crash point: every tick is the
  growth curve at its elapsed time, so ticks at the same elapsed time are
  identical across rounds with different crash points, and the frames before
  the crash have the same types and fields in every round;
- each round's ``seed_hash`` is sha256 of the seed revealed in its
  ``crashed``, the crash point follows from that seed, and consecutive rounds
  link through the chain down to its published commitment;
- nothing in Redis (which relays and operators read) holds a round's seed
  before its crash: every key and value, dumped while it bets and runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import urllib.request
from collections import defaultdict
from typing import Any

import orjson
import redis.asyncio as aioredis

from pillarpayout_ws.engine.fairness import crash_point, verify_link
from pillarpayout_ws.engine.growth import integrity_at, multiplier_at

from ..server.conftest import ManualGame
from .conftest import CLIENT_SEED, RigFactory, chain_where

ROUNDS = 12
# The only fields a frame may carry before its round crashes.
EARLY_FIELDS = {
    "betting": {"type", "round_id", "seed_hash", "betting_ms", "chain_id", "nonce", "house_edge"},
    "running": {"type", "round_id"},
    "tick": {"type", "round_id", "m", "integrity", "elapsed_ms", "ts"},
    "bets": {"type", "round_id", "bets", "more"},
}


def hundredths(value: float) -> int:
    return round(value * 100)


def holds_any(frame: object, seeds: list[str]) -> bool:
    text = orjson.dumps(frame).decode().lower()
    return any(seed in text for seed in seeds)


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        return str(resp.read().decode())


async def test_nothing_before_the_crash_gives_it_away(make_rig: RigFactory) -> None:
    # Short rounds (at most 5x) with many different crash points.
    top, points = chain_where(lambda p: max(p) <= 500 and len(set(p)) >= ROUNDS, rounds=ROUNDS + 5)
    rig = await make_rig(top, speed=50, betting_ms=2000, cooldown_ms=300)
    spectator = await rig.connect()
    player, _ = await rig.register("alice")

    async def bet_every_round() -> None:
        while True:
            await player.next("betting", within=60)
            await player.send(type="bet", amount=100, auto_cashout=1.5)

    bettor = asyncio.create_task(bet_every_round())
    hellos: list[dict[str, Any]] = []
    pages: list[str] = []
    crashes: list[dict[str, Any]] = []
    try:
        while len(crashes) < ROUNDS:
            running = await spectator.next("running", within=30)
            newcomer = await rig.connect()
            hellos.append(await newcomer.next("hello"))
            await newcomer.close()
            pages.append(await asyncio.to_thread(scrape, rig.app.port))
            crashes.append(await spectator.next("crashed", round_id=running["round_id"], within=30))
    finally:
        bettor.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await bettor

    # A fresh chain: round n plays nonce n, so every seed is known in advance,
    # including those of rounds not yet revealed when a frame was sent.
    first = crashes[0]["round_id"]
    assert [c["round_id"] for c in crashes] == list(range(first, first + ROUNDS))
    assert [hundredths(c["crash_point"]) for c in crashes] == points[first - 1 : first - 1 + ROUNDS]
    seeds = [c["server_seed"] for c in crashes]
    frames = spectator.frames
    crash_index = {f["round_id"]: i for i, f in enumerate(frames) if f["type"] == "crashed"}

    for position, crashed in enumerate(crashes):
        round_id = crashed["round_id"]
        before = frames[: crash_index[round_id]]
        assert not any(holds_any(f, seeds[position:]) for f in before), round_id
        early = [f for f in before if f.get("round_id") == round_id and f["type"] != "hello"]
        types = [f["type"] for f in early]
        assert set(types) <= set(EARLY_FIELDS), types
        assert types.count("running") == 1 and types.count("betting") <= 1, types
        assert types.index("running") >= types.count("betting")
        for frame in early:
            assert set(frame) == EARLY_FIELDS[frame["type"]], frame
            if frame["type"] == "bets":
                for bet in frame["bets"]:
                    assert bet["status"] in ("open", "cashed_out"), bet
                    assert bet["multiplier"] in (None, 1.5), bet

    for hello in hellos:
        position = hello["round_id"] - first
        assert not holds_any(hello, seeds[max(0, position) :])
        if hello["phase"] == "crashed":
            assert hundredths(hello["crash_point"]) == points[hello["round_id"] - 1]
        else:
            assert hello["crash_point"] is None
            assert hundredths(hello["m"]) == multiplier_at(hello["elapsed_ms"])
            assert hundredths(hello["integrity"]) == integrity_at(hundredths(hello["m"]))
    for page in pages:
        assert not any(seed in page.lower() for seed in seeds)

    # Ticks are the growth curve at their elapsed time, whatever the round.
    crash_of = {c["round_id"]: c["crash_point"] for c in crashes}
    seen: dict[int, set[tuple[float, float]]] = defaultdict(set)
    crash_points_at: dict[int, set[float]] = defaultdict(set)
    for tick in (f for f in frames if f["type"] == "tick" and f["round_id"] in crash_of):
        m = hundredths(tick["m"])
        assert m == multiplier_at(tick["elapsed_ms"])
        assert hundredths(tick["integrity"]) == integrity_at(m)
        assert tick["elapsed_ms"] % rig.config.game.tick_ms == 0
        assert tick["m"] < crash_of[tick["round_id"]]
        seen[tick["elapsed_ms"]].add((tick["m"], tick["integrity"]))
        crash_points_at[tick["elapsed_ms"]].add(crash_of[tick["round_id"]])
    assert all(len(values) == 1 for values in seen.values())
    # The comparison has teeth: many instants were seen under several crash points.
    assert sum(len(points) >= 3 for points in crash_points_at.values()) >= 5

    # Fairness: each seed hashes to the seed_hash published before its round,
    # gives the announced crash point, and the chain links down to its commitment.
    published = {f["round_id"]: f["seed_hash"] for f in frames if f["type"] == "betting"}
    published.update({h["round_id"]: h["seed_hash"] for h in hellos})
    assert len(published.keys() & crash_of.keys()) >= ROUNDS - 1
    for crashed in crashes:
        seed, round_id = crashed["server_seed"], crashed["round_id"]
        if round_id in published:
            assert hashlib.sha256(bytes.fromhex(seed)).hexdigest() == published[round_id]
        assert crash_point(seed, crashed["client_seed"]) == hundredths(crashed["crash_point"])
        assert (crashed["client_seed"], crashed["nonce"]) == (CLIENT_SEED, round_id)
    for earlier, later in itertools.pairwise(crashes):
        assert verify_link(later["server_seed"], earlier["server_seed"])
    (chain,) = await rig.fetch("SELECT commitment FROM seed_chains")
    down = seeds[0]
    for _ in range(first - 1):
        down = hashlib.sha256(bytes.fromhex(down)).hexdigest()
    assert verify_link(down, chain["commitment"])


async def dump_redis(url: str) -> bytes:
    """Every key and every value of the Redis database at ``url``, as bytes."""
    client = aioredis.Redis.from_url(url, decode_responses=False)
    parts: list[Any] = []
    try:
        async for key in client.scan_iter():
            parts.append(key)
            kind = await client.type(key)
            if kind == b"string":
                parts.append(await client.get(key) or b"")
            elif kind == b"list":
                parts.extend(await client.lrange(key, 0, -1))
            elif kind == b"hash":
                for field, value in (await client.hgetall(key)).items():
                    parts += [field, value]
            elif kind == b"zset":
                parts.extend(await client.zrange(key, 0, -1))
            else:
                parts.append(b"<other>")
    finally:
        await client.aclose()
    return b"\n".join(bytes(part) for part in parts)


async def test_no_seed_in_redis_before_its_crash(manual_game: ManualGame) -> None:
    app = manual_game.app
    url = app.storage.live.url
    alice, _ = await manual_game.register("alice")
    spectator = await manual_game.connect()
    await alice.send(type="bet", amount=1000, auto_cashout=50.0, ref="b")
    await alice.next("bet_accepted", ref="b")
    dumps = [await dump_redis(url)]
    await manual_game.to_phase("running")
    await manual_game.advance(500)
    await app.publisher.wait_until(lambda: app.publisher.state_written is not None)
    dumps.append(await dump_redis(url))
    await manual_game.to_phase("crashed")
    crashed = await spectator.next("crashed")
    seed = crashed["server_seed"].encode()
    assert b"pp:round:" in dumps[0] and b"game_state" in dumps[1]  # the dumps saw the game
    assert all(seed not in dump and seed.upper() not in dump for dump in dumps)
    assert seed in await dump_redis(url)  # once crashed, it is there (the crash record)
    for player in (alice, spectator):
        await player.close()
