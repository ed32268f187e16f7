"""PostgreSQL unreachable for 30 s while rounds complete, and a flood next to 1,000 clients."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from loadtest.client import ClientStats, GameClient, masked_text_frame, open_client
from loadtest.players import MIN_BET

from ..conftest import REPO
from ..serving import ServeProcess, healthz, postgres_pids
from ..test_cli import run_cli
from .crowd import Crowd, check_money, clean_up, money, provision

pytestmark = pytest.mark.chaos

FREEZE_S = 30.0


def health(port: int) -> tuple[int | None, dict[str, Any]]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
            return int(resp.status), json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
    except OSError:
        return None, {}


async def until_health(port: int, want: int, within: float) -> dict[str, Any]:
    """Poll /healthz (an outside process: nothing to subscribe to) until it says ``want``."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        status, body = await asyncio.to_thread(health, port)
        if status == want:
            return body
        await asyncio.sleep(0.2)
    raise AssertionError(f"/healthz never answered {want}")


@pytest.fixture
async def data_dir(tmp_path: Path) -> AsyncIterator[Path]:
    yield tmp_path / "data"
    clean_up(tmp_path / "data")


async def test_postgres_unreachable_for_30_s_while_rounds_complete(data_dir: Path) -> None:
    tokens = await provision(data_dir, 100)
    serve = ServeProcess(
        data_dir, "--betting-ms", "1000", "--cooldown-ms", "500", "--flush-rounds", "1"
    )
    await asyncio.to_thread(serve.wait_healthy)
    crowd = Crowd(serve.port, tokens)
    await crowd.connect()

    async def bet_every_round() -> None:
        while True:
            await crowd.bet(lambda user_id: 1.01 + (user_id % 30) / 100)

    betting = asyncio.create_task(bet_every_round())
    await crowd.until(lambda: len(crowd.crashed) >= 1, 120)
    frozen = postgres_pids(data_dir)
    for pid in frozen:
        os.kill(pid, signal.SIGSTOP)
    stopped_at = time.monotonic()
    try:
        crashed_before = len(crowd.crashed)
        await until_health(serve.port, 503, 15)
        # The fault lasts FREEZE_S whatever happens meanwhile.
        await asyncio.sleep(max(0.0, FREEZE_S - (time.monotonic() - stopped_at)))
        during = await until_health(serve.port, 503, 5)
        assert during["postgres"] is False and during["redis"] is True
        completed = len(crowd.crashed) - crashed_before
        assert completed >= 1, "no round completed while PostgreSQL was away"
        assert during["flush_backlog"] >= 1  # held in Redis meanwhile
        assert crowd.acks.errors["unavailable"] == 0  # bets never needed PostgreSQL
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
    after = await until_health(serve.port, 200, 90)
    assert after["postgres"] is True
    betting.cancel()
    crowd.close()
    assert await asyncio.to_thread(serve.terminate) == 0, serve.log
    audit = await asyncio.to_thread(run_cli, "audit", "--data-dir", str(data_dir))
    assert audit.returncode == 0, audit.stdout
    state = await money(data_dir)
    voided = {r for r, status in state["rounds"].items() if status == "void"}
    check_money(state, crowd.acks, voided)
    assert set(crowd.crashed) <= set(state["rounds"])  # every round arrived


async def tick_p99(port: int, clients: int, seconds: int) -> float:
    """The load-test harness's tick delay p99 for ``clients`` spectators."""
    report = Path(f"/tmp/pp-flood-{os.getpid()}-{time.monotonic_ns()}.json")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "loadtest", "--url", f"ws://127.0.0.1:{port}/ws",
        "--clients", str(clients), "--duration", str(seconds), "--json", str(report),
        cwd=REPO, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    await proc.wait()
    result = json.loads(await asyncio.to_thread(report.read_text))
    await asyncio.to_thread(report.unlink)
    assert result["clients_connected"] == clients and result["errors"] == 0
    print(
        f"{clients} clients: tick p99 {result['tick_delay_ms']['p99']} ms, "
        f"{result['ticks_missed']} ticks missed"
    )
    return float(result["tick_delay_ms"]["p99"])


async def test_a_flood_is_cut_off_and_everyone_else_keeps_their_ticks(data_dir: Path) -> None:
    serve = ServeProcess(data_dir, "--betting-ms", "500", "--cooldown-ms", "500")
    await asyncio.to_thread(serve.wait_healthy)
    try:
        quiet = await tick_p99(serve.port, 1000, 15)
        stats = ClientStats()
        errors: dict[str, int] = {}
        floods = 0

        def on_frame(client: GameClient, payload: bytes) -> None:
            if payload.startswith(b'{"type":"error"'):
                code = orjson.loads(payload)["code"]
                errors[code] = errors.get(code, 0) + 1

        async def flood() -> None:
            nonlocal floods
            frame = masked_text_frame(orjson.dumps({"type": "bet", "amount": MIN_BET}))
            while True:  # one client after another, each as fast as it can write
                client = await open_client("127.0.0.1", serve.port, stats, on_frame=on_frame)
                floods += 1
                assert client.transport is not None
                while not client.transport.is_closing():
                    if client.transport.get_write_buffer_size() < 65536:
                        client.transport.write(frame * 50)
                    # Let the socket drain and the server's answers (and close) arrive.
                    await asyncio.sleep(0.001)

        flooding = asyncio.create_task(flood())
        try:
            loaded = await tick_p99(serve.port, 1000, 15)
        finally:
            flooding.cancel()
        assert stats.close_codes[1008] >= 1 and errors.get("rate_limited", 0) >= 1
        assert floods >= 2
        print(f"tick p99 quiet {quiet:.1f} ms, under a flood {loaded:.1f} ms ({floods} floods)")
        assert loaded <= 2 * quiet
        assert await asyncio.to_thread(healthz, serve.port) == 200
    finally:
        assert await asyncio.to_thread(serve.terminate) == 0, serve.log
