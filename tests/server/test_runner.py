"""The game loop (server/runner.py) over real sockets and real storage.

Most of these run on a ``ManualClock``: the round moves only when the test
says, so what a cashout pays and which error a late frame gets are exact.
The concurrency tests (replays, fifty cashouts at once) keep real time.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from typing import Any

import pytest

from pillarpayout_ws.engine.events import GameSnapshot
from pillarpayout_ws.engine.fairness import SeedChain, crash_point
from pillarpayout_ws.engine.game import Game, GameConfig, Phase
from pillarpayout_ws.engine.growth import elapsed_for, multiplier_at
from pillarpayout_ws.engine.records import BetPlaced, Record
from pillarpayout_ws.exceptions import RedisUnavailable
from pillarpayout_ws.server.app import App
from pillarpayout_ws.server.clock import ManualClock
from pillarpayout_ws.server.fanout import Hub
from pillarpayout_ws.server.metrics import Metrics
from pillarpayout_ws.server.runner import BetCommand, GameRunner
from pillarpayout_ws.server.seeds import Chains
from pillarpayout_ws.storage import Storage
from pillarpayout_ws.storage.audit import audit
from pillarpayout_ws.storage.flush import Flusher

from .conftest import (
    CLIENT_SEED,
    GameServer,
    HeldCommits,
    ManualGame,
    chain_with_crashes,
    fast_config,
)

# Also run against Debian's PostgreSQL and Redis (python -m tests.external, in make test).
pytestmark = pytest.mark.external


async def stored_chains(storage: Storage, top: str) -> Chains:
    """The chain of ``top``, stored and salted, as the engine's seed source."""
    await storage.db.create_seed_chain(top, 20, SeedChain.from_top(top, 20).commitment, CLIENT_SEED)
    return Chains(await storage.db.seed_chains())


async def test_a_full_round(manual_game: ManualGame) -> None:
    game = manual_game
    spectator = await game.connect()
    hello = await spectator.next("hello")
    assert hello["phase"] == "betting"  # time stands still in the first round's window
    round_id = hello["round_id"]
    alice, alice_session = await game.register("alice")
    bob, _ = await game.register("bob")
    assert alice_session["user"]["balance"] == 100_000

    await alice.send(type="bet", amount=1000, auto_cashout=None, ref="a1")
    await bob.send(type="bet", amount=2000, auto_cashout=1.2, ref="b1")
    a_ack = await alice.next("bet_accepted", ref="a1")
    b_ack = await bob.next("bet_accepted", ref="b1")
    assert (a_ack["round_id"], a_ack["amount"], a_ack["balance"]) == (round_id, 1000, 99_000)
    assert (b_ack["auto_cashout"], b_ack["balance"]) == (1.2, 98_000)

    await game.to_phase("running")
    await alice.next("running", round_id=round_id)
    await game.advance(elapsed_for(130))
    b_out = await bob.next("cashed_out", round_id=round_id)
    assert (b_out["multiplier"], b_out["payout"], b_out["reason"]) == (1.2, 2400, "auto")
    # Time stands still until the next advance: the cashout gets exactly the
    # multiplier of this instant.
    await alice.send(type="cashout", ref="c1")
    a_out = await alice.next("cashed_out", ref="c1")
    assert a_out["multiplier"] == multiplier_at(elapsed_for(130)) / 100
    assert a_out["payout"] == 1000 * multiplier_at(elapsed_for(130)) // 100
    assert a_out["balance"] == 99_000 + a_out["payout"]

    await game.to_phase("crashed")
    crashed = await spectator.next("crashed", round_id=round_id)
    assert hashlib.sha256(bytes.fromhex(crashed["server_seed"])).hexdigest() == hello["seed_hash"]
    assert crash_point(crashed["server_seed"], crashed["client_seed"]) == round(
        crashed["crash_point"] * 100
    )
    # One tick every 100 ms of running, each below the crash point.
    ticks = [f for f in spectator.frames if f["type"] == "tick" and f["round_id"] == round_id]
    assert [t["elapsed_ms"] for t in ticks] == [100 * (i + 1) for i in range(len(ticks))]
    assert len(ticks) == (elapsed_for(round(crashed["crash_point"] * 100)) - 1) // 100
    assert all(t["m"] < crashed["crash_point"] for t in ticks)
    bets_frames = [f for f in spectator.frames if f["type"] == "bets"]
    assert {b["username"] for f in bets_frames for b in f["bets"]} >= {"alice", "bob"}

    app = game.app
    await app.flusher.wait_until(
        lambda: app.flusher.backlog == 0 and app.flusher.rounds_flushed > 0
    )
    for player in (spectator, alice, bob):
        await player.close()
    report = await audit(app.storage.db, app.storage.live)
    assert report.clean, report.render()


async def test_bet_and_cashout_errors_through_a_round(manual_game: ManualGame) -> None:
    game = manual_game
    alice, _ = await game.register("alice")
    bob, _ = await game.register("bob")

    round_id = game.app.runner.round_id
    assert await alice.refused("e1", type="bet", amount=5) == "invalid_amount"  # below the minimum
    assert await alice.refused("e2", type="bet", amount=200_000) == "insufficient_funds"
    assert await alice.refused("e3", type="bet", amount=100, auto_cashout=20000) == (
        "invalid_auto_cashout"
    )
    assert await alice.refused("e4", type="bet", amount="100") == "invalid_amount"
    assert await alice.refused("e5", type="bet", amount=100, auto_cashout=1.0) == (
        "invalid_auto_cashout"
    )
    await alice.send(type="bet", amount=1000, ref="ok")
    accepted = await alice.next("bet_accepted", ref="ok")
    assert accepted["balance"] == 99_000  # none of the refused bets moved money
    # The same ref again: the same answer, no second debit.
    await alice.send(type="bet", amount=1000, ref="ok")
    assert (await alice.next("bet_accepted", ref="ok"))["balance"] == 99_000
    assert await alice.refused("e6", type="bet", amount=1000) == "already_bet"
    assert await alice.refused("e7", type="cashout") == "round_not_running"

    await game.to_phase("running")
    await alice.next("running", round_id=round_id)
    assert await bob.refused("e8", type="bet", amount=1000) == "betting_closed"
    assert await bob.refused("e9", type="cashout") == "no_active_bet"

    await game.to_phase("crashed")
    await alice.next("crashed", round_id=round_id)
    assert await alice.refused("e10", type="cashout") == "round_crashed"
    for player in (alice, bob):
        await player.close()


async def test_a_login_sees_the_balance_of_the_game_not_of_postgres(
    manual_game: ManualGame,
) -> None:
    """The account is loaded through the game loop: a second login of a user whose
    bet is not flushed yet sees the debited balance the game holds."""
    alice, session = await manual_game.register("alice")
    await alice.send(type="bet", amount=2500, ref="b")
    await alice.next("bet_accepted", ref="b")
    second = await manual_game.connect()
    await second.send(type="resume", token=session["token"])
    assert (await second.next("session"))["user"]["balance"] == 100_000 - 2500
    for player in (alice, second):
        await player.close()


async def test_a_newcomer_is_greeted_after_the_turn_under_way(
    manual_game: ManualGame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A snapshot is never taken between a turn's engine changes and its frames:
    a hello asked for while a commit is under way waits for that turn, and shows
    what it sent (here, a bet) rather than what it has not."""
    runner = manual_game.app.runner
    live = manual_game.app.storage.live
    held = HeldCommits(live)
    alice, _ = await manual_game.register("alice")
    monkeypatch.setattr(live, "commit", held)
    await alice.send(type="bet", amount=1000, ref="b")
    await held.committing.wait()
    snapshots: list[GameSnapshot] = []
    runner.greet(snapshots.append)
    assert snapshots == []  # the turn has taken the bet but not yet sent its ack
    held.release.set()
    await alice.next("bet_accepted", ref="b")
    assert [[b.username for b in s.bets] for s in snapshots] == [["alice"]]
    await alice.close()


async def test_a_commit_applied_but_unanswered_is_not_written_twice(
    manual_game: ManualGame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis ran the turn's transaction but its answer was lost (a reset, a
    timeout): the loop asks Redis before trying again, so the bet is in the
    write-ahead once and the round still flushes; sending it again, as redis-py's
    pipeline did by itself, left it there twice and the flush refused the round."""
    app = manual_game.app
    live = app.storage.live
    commit = live.commit
    lost: list[str | None] = []

    async def answer_lost(records: Sequence[Record], key: str | None = None) -> None:
        await commit(records, key)
        if not lost:
            lost.append(key)
            raise RedisUnavailable("Connection reset by peer (after EXEC)")

    alice, _session = await manual_game.register("alice")
    round_id = app.runner.round_id
    monkeypatch.setattr(live, "commit", answer_lost)
    await alice.send(type="bet", amount=1000, ref="b")
    assert (await alice.next("bet_accepted", ref="b"))["balance"] == 99_000
    assert lost and lost[0] is not None and await live.committed(lost[0])
    monkeypatch.setattr(live, "commit", commit)
    assert round_id is not None
    bets = [r for r in (await live.round_records([round_id]))[round_id] if isinstance(r, BetPlaced)]
    assert len(bets) == 1
    await manual_game.to_phase("crashed")
    await alice.next("crashed", round_id=round_id)
    await app.flusher.wait_until(lambda: app.flusher.rounds_flushed + len(app.flusher.held) >= 1)
    assert app.flusher.held == {}
    assert (await audit(app.storage.db, live)).clean
    assert (await app.storage.db.user_by_name("alice")).balance == 99_000  # type: ignore[union-attr]
    await alice.close()


async def test_a_bet_ref_replayed_across_connections_debits_once(game_server: GameServer) -> None:
    alice, session = await game_server.register("alice")
    second = await game_server.resume(session["token"])
    await alice.next("betting")
    for i in range(100):
        player = alice if i % 2 else second
        await player.send(type="bet", amount=700, auto_cashout=None, ref="same")
    answers = [await alice.next("bet_accepted", ref="same") for _ in range(50)]
    assert {(a["round_id"], a["balance"]) for a in answers} == {
        (answers[0]["round_id"], 100_000 - 700)
    }
    assert game_server.app.runner.game.balance_of(session["user"]["id"]) == 100_000 - 700
    for player in (alice, second):
        await player.close()


async def test_fifty_concurrent_cashouts_pay_once(game_server: GameServer) -> None:
    alice, session = await game_server.register("alice")
    others = [await game_server.resume(session["token"]) for _ in range(4)]
    connections = [alice, *others]
    betting = await alice.next("betting")
    await alice.send(type="bet", amount=1000, ref="b")
    await alice.next("bet_accepted", ref="b")
    await alice.next("running", round_id=betting["round_id"])
    await asyncio.gather(
        *(c.send(type="cashout", ref=f"c{i}") for i in range(10) for c in connections)
    )
    # Every connection of the user sees every answer; take alice's 50.
    answers = [await alice.next("cashed_out", round_id=betting["round_id"]) for _ in range(50)]
    assert len({(a["multiplier"], a["payout"], a["balance"]) for a in answers}) == 1
    payout = answers[0]["payout"]
    assert answers[0]["balance"] == 100_000 - 1000 + payout
    assert game_server.app.runner.game.balance_of(session["user"]["id"]) == 99_000 + payout
    for player in connections:
        await player.close()


async def test_bets_are_refused_once_shutdown_begins(manual_game: ManualGame) -> None:
    alice, _ = await manual_game.register("alice")
    waiting = asyncio.create_task(manual_game.app.runner.wait_round_over(0.0))
    await alice.send(type="bet", amount=100, ref="late")
    error = await alice.next("error", ref="late")
    assert error["code"] == "shutting_down"
    await waiting
    await alice.close()


async def test_stopping_waits_for_the_running_round_not_for_a_pause_between_rounds(
    storage: Storage,
) -> None:
    """On a fast clock a whole cooldown and betting window can pass between two
    wake-ups of the stop; it must see that the round it waited for is over,
    even if the next one is already running (it used to wait for its timeout)."""
    chains = await stored_chains(storage, chain_with_crashes(150, 400, 2))
    game = Game(GameConfig(betting_ms=100, cooldown_ms=100), chains, next_round_id=1)
    flusher = Flusher(storage.live, storage.db)
    runner = GameRunner(game, chains, storage.live, flusher, Hub(), Metrics(), ManualClock())
    game.start(0)
    game.advance(100)  # round 1 runs
    assert game.phase is Phase.RUNNING
    waiting = asyncio.create_task(runner.wait_round_over(30.0))
    await asyncio.sleep(0)  # the stop begins while round 1 runs
    game.advance(100 + 60_000)  # round 1 crashed, round 2 opened...
    game.advance(game.next_due_ms() or 0)  # ...and runs
    assert (game.round_id, game.phase) == (2, Phase.RUNNING)
    runner.turn_done.set()
    assert await waiting


async def test_a_bet_waits_for_the_clock_not_for_real_time(storage: Storage) -> None:
    """The loop sleeps on the injected clock: with a manual clock nothing happens
    until it moves, and moving it plays the round's instants in order."""
    chains = await stored_chains(storage, chain_with_crashes(150, 400, 1))
    clock = ManualClock()
    game = Game(GameConfig(betting_ms=1000), chains, next_round_id=1)
    flusher = Flusher(storage.live, storage.db)
    runner = GameRunner(game, chains, storage.live, flusher, Hub(), Metrics(), clock)
    loop = asyncio.create_task(runner.run())
    try:
        await runner.turn_done.wait()  # the first round is open
        assert await runner.load_account(1, "alice", 5000) == 5000
        runner.submit(BetCommand(1, 1000, 200, "b", runner.now_ms()))
        runner.turn_done.clear()
        await runner.turn_done.wait()
        assert game.balance_of(1) == 4000
        await asyncio.sleep(0.05)  # real time passes; the game's does not
        assert game.phase.value == "betting"
        clock.advance(1.0)
        while game.phase is not Phase.RUNNING:
            runner.turn_done.clear()
            await runner.turn_done.wait()
        assert runner.sent_ms == round(clock.now() * 1000)
    finally:
        runner.stop()
        await loop


async def test_a_new_chain_is_announced_before_its_first_round(storage_for_game: Storage) -> None:
    older, newer = chain_with_crashes(150, 400, 2), chain_with_crashes(150, 400, 1)
    await storage_for_game.db.create_seed_chain(
        older, 20, SeedChain.from_top(older, 20).commitment, CLIENT_SEED
    )
    await storage_for_game.db.create_seed_chain(
        newer, 1, SeedChain.from_top(newer, 1).commitment, "one round"
    )
    clock = ManualClock()
    app = App(fast_config(), storage_for_game, clock=clock, stop_timeout_s=0)
    await app.start()
    game = ManualGame(app, clock)
    try:
        watcher = await game.connect()
        hello = await watcher.next("hello")
        assert (hello["fairness"]["client_seed"], hello["fairness"]["chain_length"]) == (
            "one round",
            1,
        )
        await game.to_phase("crashed")
        await game.to_phase("betting")
        fairness = await watcher.next("fairness")
        betting = await watcher.next("betting")
        assert watcher.frames.index(fairness) == watcher.frames.index(betting) - 1
        assert (fairness["client_seed"], fairness["chain_length"]) == (CLIENT_SEED, 20)
        assert (betting["chain_id"], betting["nonce"]) == (fairness["chain_id"], 1)
        await watcher.close()
    finally:
        await app.stop()


async def test_a_ref_from_an_earlier_round_is_refused_not_replayed(
    manual_game: ManualGame,
) -> None:
    """A page that reloads restarts its refs; the server ties a ref to its round."""
    alice, _ = await manual_game.register("alice")
    first_round = manual_game.app.runner.round_id
    await alice.send(type="bet", amount=1000, ref="bet-1")
    await alice.next("bet_accepted", ref="bet-1")
    await manual_game.to_phase("crashed")
    await manual_game.to_phase("betting")
    await alice.send(type="bet", amount=1000, ref="bet-1")
    refused = await alice.next("error", ref="bet-1")
    assert refused["code"] == "ref_reused" and f"round {first_round}" in refused["message"]
    await alice.send(type="bet", amount=1000, ref="bet-2")
    accepted = await alice.next("bet_accepted", ref="bet-2")
    assert accepted["round_id"] == manual_game.app.runner.round_id != first_round
    await alice.close()


async def test_a_cashout_gets_the_multiplier_of_the_moment_it_was_read(
    manual_game: ManualGame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loop is held up (Bob's cashout waits on a slow Redis commit) while
    the clock runs on: Alice's cashout, read meanwhile at t, is paid
    multiplier_at(t), not the multiplier of the turn that gets to it."""
    app = manual_game.app
    live = app.storage.live
    alice, _ = await manual_game.register("alice")
    bob, _ = await manual_game.register("bob")
    for player, ref in ((alice, "a"), (bob, "b")):
        await player.send(type="bet", amount=1000, ref=ref)
        await player.next("bet_accepted", ref=ref)
    await manual_game.to_phase("running")
    running_since = app.runner.now_ms()
    await manual_game.advance(2000)
    held = HeldCommits(live)
    queued = asyncio.Event()
    submit = app.runner.submit

    def noting_submit(command: Any) -> None:
        submit(command)
        if getattr(command, "ref", None) == "ac":
            queued.set()

    monkeypatch.setattr(live, "commit", held)
    monkeypatch.setattr(app.runner, "submit", noting_submit)
    await bob.send(type="cashout", ref="bc")
    await held.committing.wait()  # the loop waits on Redis for Bob's cashout
    assert app.hub._holds == 1  # broadcasts wait for Bob's answer meanwhile
    monkeypatch.setattr(live, "commit", held.commit)
    await alice.send(type="cashout", ref="ac")
    read_at = app.runner.now_ms()
    await queued.wait()  # Alice's cashout is read and queued behind Bob's turn
    manual_game.clock.advance(1.5)  # the loop is slow: time passes before it gets there
    held.release.set()
    paid = await alice.next("cashed_out", ref="ac")
    assert paid["multiplier"] == multiplier_at(read_at - running_since) / 100
    assert multiplier_at(read_at + 1500 - running_since) > multiplier_at(read_at - running_since)
    await bob.next("cashed_out", ref="bc")
    assert app.hub._holds == 0  # every answer written, nothing held
    for player in (alice, bob):
        await player.close()


async def test_bets_show_during_betting_at_most_a_frame_a_tick(manual_game: ManualGame) -> None:
    """Bets go out while the round is still betting (else nobody sees the others'
    bets until it runs), but never more than one ``bets`` frame a tick."""
    game = manual_game
    alice, _ = await game.register("alice")
    bob, _ = await game.register("bob")
    carol, _ = await game.register("carol")
    round_id = game.app.runner.round_id

    def bettors(frame: dict[str, Any]) -> list[str]:
        return [b["username"] for b in frame["bets"]] if frame["type"] == "bets" else []

    await alice.send(type="bet", amount=1000, ref="a1")
    assert bettors(await carol.next("bets", round_id=round_id)) == ["alice"]
    # Bob's bet in the same tick waits: carol's pong, written after his ack's
    # turn, comes before any bets frame naming him.
    await bob.send(type="bet", amount=2000, ref="b1")
    await bob.next("bet_accepted", ref="b1")
    await carol.send(type="ping", ref="p")
    await carol.next("pong", ref="p")
    assert "bob" not in [name for f in carol.frames for name in bettors(f)]
    await game.advance(game.app.runner.game.config.tick_ms)
    assert bettors(await carol.next("bets", round_id=round_id)) == ["bob"]
    assert game.app.runner.game.phase is Phase.BETTING
    for player in (alice, bob, carol):
        await player.close()
