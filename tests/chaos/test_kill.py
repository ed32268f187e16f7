"""kill -9 of ``serve`` and of its Redis under 600 players: nothing acknowledged is lost.

The kill mid-round, the kill after cancels and the Redis kill run in
``make test``; the other kill moments (``chaos`` marker) in ``make chaos``.

Each test runs a real ``pillarpayout serve`` on embedded storage, 600 funded
players with live sessions, kills something at a chosen moment, restarts,
and then checks, from PostgreSQL: ``pillarpayout audit`` is clean; every
acknowledged bet is there with its amount; every acknowledged cashout is paid
exactly; every acknowledged cancel is refunded once; an interrupted round is
voided (no bet lost, the rest refunded); a crashed one keeps its outcome;
every balance is its start plus its bets' results; and another restart
changes nothing.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ..serving import ServeProcess, server_pids
from ..test_cli import run_cli
from .crowd import Crowd, check_money, clean_up, money, provision

PLAYERS = 600
# One in five cashes out early (1.01x to 1.20x); the rest aim at 500x and stay open.
FLAGS = ("--betting-ms", "3000", "--cooldown-ms", "1000", "--flush-rounds", "1")


def target(user_id: int) -> float:
    return 1.01 + (user_id % 20) / 100 if user_id % 5 == 0 else 500.0


async def started(data_dir: Path, *flags: str) -> ServeProcess:
    serve = ServeProcess(data_dir, *FLAGS, *flags)
    await asyncio.to_thread(serve.wait_healthy)
    return serve


async def playing(
    data_dir: Path, tokens: dict[int, str], *flags: str
) -> tuple[ServeProcess, Crowd]:
    """A started ``serve`` and the crowd connected to it, every session resumed."""
    serve = await started(data_dir, *flags)
    crowd = Crowd(serve.port, tokens)
    await crowd.connect()
    return serve, crowd


async def settle_and_check(data_dir: Path, crowd: Crowd, voided: set[int]) -> None:
    """Restart, stop gracefully, audit, check the money; then once more: no change."""
    states = []
    for _ in range(2):
        serve = await started(data_dir)
        assert await asyncio.to_thread(serve.terminate) == 0, serve.log
        audit = await asyncio.to_thread(run_cli, "audit", "--data-dir", str(data_dir))
        assert audit.returncode == 0, audit.stdout + audit.stderr
        states.append(await money(data_dir))
    first, second = states
    for round_id in voided:
        assert first["rounds"][round_id] == "void"
    check_money(first, crowd.acks, voided)
    assert (first["balances"], first["bets"], first["ledger"]) == (
        second["balances"],
        second["bets"],
        second["ledger"],
    )


@pytest.fixture
async def game(tmp_path: Path) -> AsyncIterator[tuple[Path, dict[int, str]]]:
    data_dir = tmp_path / "data"
    yield data_dir, await provision(data_dir, PLAYERS)
    clean_up(data_dir)


async def running_round_with_open_bets(crowd: Crowd) -> int:
    """A round now running with >= 500 open bets and >= 50 acknowledged cashouts."""
    for _ in range(5):
        round_id = await crowd.bet(target)

        def ready(r: int = round_id) -> bool:
            enough = crowd.acks.open_bets(r) >= 500 and len(crowd.acks.cashouts) >= 50
            return r in crowd.crashed or enough

        await crowd.until(ready, 60)
        if round_id not in crowd.crashed:
            return round_id
    raise AssertionError("five rounds in a row crashed too early")


async def test_kill_mid_round_voids_it_and_honours_every_acked_cashout(
    game: tuple[Path, dict[int, str]],
) -> None:
    data_dir, tokens = game
    serve, crowd = await playing(data_dir, tokens)
    round_id = await running_round_with_open_bets(crowd)
    serve.kill9()
    crowd.close()
    assert crowd.acks.open_bets(round_id) >= 500
    await settle_and_check(data_dir, crowd, {round_id})


@pytest.mark.chaos
async def test_kill_while_betting_refunds_every_bet(game: tuple[Path, dict[int, str]]) -> None:
    data_dir, tokens = game
    serve, crowd = await playing(data_dir, tokens, "--betting-ms", "8000")
    round_id = await crowd.bet(target)
    await crowd.until(lambda: len(crowd.acks.bets) >= 500, 60)
    assert crowd.phase == "betting"
    serve.kill9()
    crowd.close()
    await settle_and_check(data_dir, crowd, {round_id})
    assert not any(r == round_id for r, _ in crowd.acks.cashouts)


async def test_kill_after_cancels_refunds_each_cancelled_bet_once(
    game: tuple[Path, dict[int, str]],
) -> None:
    """Half the crowd cancels its bet, some of them twice (a replayed frame),
    and serve is killed while the round is still betting: the restart voids
    the round, refunding every other bet, and each cancelled one keeps the
    one refund its cancel made (a second, from the void or the replay, would
    show in the balance)."""
    data_dir, tokens = game
    serve, crowd = await playing(data_dir, tokens, "--betting-ms", "10000")
    round_id = await crowd.bet(target)
    await crowd.until(lambda: len(crowd.acks.bets) >= 500, 60)
    cancelling = [u for r, u in crowd.acks.bets if r == round_id and u % 2 == 0]
    crowd.cancel(cancelling, f"c{round_id}")
    twice = cancelling[::5]
    crowd.cancel(twice, f"again{round_id}")
    await crowd.until(lambda: crowd.acks.cancel_answers == len(cancelling) + len(twice), 60)
    assert crowd.phase == "betting"
    serve.kill9()
    crowd.close()
    assert len(crowd.acks.cancels) == len(cancelling) >= 200
    await settle_and_check(data_dir, crowd, {round_id})


@pytest.mark.chaos
async def test_kill_right_after_the_crash_keeps_the_round_as_it_ended(
    game: tuple[Path, dict[int, str]],
) -> None:
    """The flush of a round starts as it crashes (``--flush-rounds 1``): the kill
    lands before, during or just after it."""
    data_dir, tokens = game
    serve, crowd = await playing(data_dir, tokens, "--flush-interval-ms", "1")
    round_id = await crowd.bet(lambda user_id: 1.01 + (user_id % 10) / 100)
    await crowd.until(lambda: round_id in crowd.crashed, 120)
    serve.kill9()
    crowd.close()
    assert sum(1 for r, _ in crowd.acks.bets if r == round_id) >= 500
    await settle_and_check(data_dir, crowd, set())


@pytest.mark.chaos
async def test_kills_during_recovery_change_nothing(game: tuple[Path, dict[int, str]]) -> None:
    """After a kill mid-round, the next starts are killed too, at several moments
    of their start-up (adopting the servers, recovering, listening)."""
    data_dir, tokens = game
    serve, crowd = await playing(data_dir, tokens)
    round_id = await running_round_with_open_bets(crowd)
    serve.kill9()
    crowd.close()
    for delay in (0.3, 0.6, 0.9, 1.2):
        restart = ServeProcess(data_dir, *FLAGS)
        await asyncio.sleep(delay)  # the fault's timing, not a wait for anything
        restart.kill9()
    await settle_and_check(data_dir, crowd, {round_id})


async def test_kill_of_redis_mid_round_loses_no_acknowledged_action(
    game: tuple[Path, dict[int, str]],
) -> None:
    data_dir, tokens = game
    serve, crowd = await playing(data_dir, tokens)
    round_id = await running_round_with_open_bets(crowd)
    _, redis_pid = server_pids(data_dir)
    os.kill(redis_pid, signal.SIGKILL)
    # serve restarts Redis from its append-only file and the round goes on.
    await crowd.until(lambda: round_id in crowd.crashed, 300)
    assert await asyncio.to_thread(serve.terminate) == 0, serve.log
    assert "the embedded Redis had died: restarted it" in serve.log
    crowd.close()
    await settle_and_check(data_dir, crowd, set())
