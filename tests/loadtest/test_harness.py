"""``python -m loadtest`` for a few seconds against real and deliberately wrong servers."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from pillarpayout_ws.engine.fairness import SeedChain, crash_point, seed_hash
from pillarpayout_ws.engine.growth import elapsed_for, integrity_at, multiplier_at
from pillarpayout_ws.server.clock import MonotonicClock
from pillarpayout_ws.storage import Storage

from ..conftest import REPO, Servers, fresh_storage
from ..server.conftest import CLIENT_SEED, start_game

REQUIRED = {
    "clients_connected",
    "ticks_received",
    "tick_delay_ms",
    "tick_delay_while_connecting_ms",
    "bet_ack_ms",
    "cashout_ack_ms",
    "errors",
    "errors_by_code",
    "rounds",
}


async def harness(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "loadtest",
        *args,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


@pytest.fixture
async def real_time_server(servers: Servers) -> AsyncIterator[str]:
    """A game at real speed whose first rounds crash by 1.15x: a round every few seconds."""
    storage: Storage = await fresh_storage(servers)
    app = await start_game(
        storage,
        crashes=(100, 115, 3),
        clock=MonotonicClock(),
        betting_ms=1000,
        cooldown_ms=300,
    )
    try:
        yield f"ws://127.0.0.1:{app.port}/ws"
    finally:
        await app.stop()
        await storage.close()


async def test_a_short_run_reports_every_figure_and_checks_every_round(
    real_time_server: str, tmp_path: Path
) -> None:
    report, picture = tmp_path / "run.json", tmp_path / "run.png"
    code, out = await harness(
        "--url",
        real_time_server,
        "--clients",
        "30",
        "--bettors",
        "6",
        "--procs",
        "2",
        "--duration",
        "7",
        "--json",
        str(report),
        "--plot",
        str(picture),
        "--seed",
        "7",
    )
    assert code == 0, out
    result = json.loads(report.read_text())
    assert result.keys() >= REQUIRED
    assert set(result["tick_delay_ms"]) == {"p50", "p90", "p99", "max"}
    assert result["clients_connected"] == 30
    assert result["errors"] == 0, result["errors_by_code"]
    assert result["rounds"] >= 1
    assert result["bets"] >= 6
    assert result["bettors_logged_in"] == 6
    assert result["bet_ack_ms"]["p50"] is not None
    assert result["ticks_received"] > 0
    assert result["ticks_missed"] == 0
    assert result["server_metrics"]["after"]["pillarpayout_bets_total"] >= result["bets"]
    assert picture.read_bytes().startswith(b"\x89PNG")


class WrongServer:
    """Plays fair rounds, except for the one lie it is told to tell."""

    def __init__(self, lie: str) -> None:
        self.lie = lie
        self.chain = SeedChain.from_top("5e" * 32, 1000)

    async def handler(self, ws: ServerConnection) -> None:
        """Every connection gets its own game, rounds 1, 2, 3, ... (quickly)."""
        try:
            await ws.send(orjson.dumps({"type": "hello", "round_id": 0, "phase": "idle"}).decode())
            for round_id in range(1, 1000):
                await self.play(ws, round_id)
        except ConnectionClosed:
            pass

    async def play(self, ws: ServerConnection, round_id: int) -> None:
        async def send(**frame: Any) -> None:
            await ws.send(orjson.dumps(frame).decode())

        seed = self.chain.seed_for(round_id)
        point = crash_point(seed, CLIENT_SEED)
        published = seed_hash(seed if self.lie != "seed" else self.chain.seed_for(round_id + 7))
        await send(type="betting", round_id=round_id, seed_hash=published, betting_ms=100)
        await send(type="running", round_id=round_id)
        last = elapsed_for(point + (50 if self.lie == "tick" else 0))
        for elapsed in [*range(0, last, 1000), last]:
            m = multiplier_at(elapsed)
            if m > point and self.lie != "tick":
                break
            await send(
                type="tick",
                round_id=round_id,
                m=m / 100,
                integrity=integrity_at(m) / 100,
                elapsed_ms=elapsed,
                ts=time.time(),
            )
            await asyncio.sleep(0.005)
        claimed = point + (1 if self.lie == "crash_point" else 0)
        await send(
            type="crashed",
            round_id=round_id,
            crash_point=claimed / 100,
            server_seed=seed,
            client_seed=CLIENT_SEED,
            nonce=round_id,
        )
        await asyncio.sleep(0.02)


async def against_wrong_server(lie: str, tmp_path: Path) -> tuple[int, str, dict[str, Any]]:
    """Two seconds of the harness against a ``WrongServer``: exit status, output, JSON."""
    wrong = WrongServer(lie)
    async with serve(wrong.handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        report = tmp_path / "run.json"
        status, out = await harness(
            "--url", f"ws://127.0.0.1:{port}/ws", "--clients", "4", "--procs", "1",
            "--duration", "2", "--json", str(report),
        )  # fmt: skip
    return status, out, json.loads(report.read_text())


@pytest.mark.parametrize(
    ("lie", "code"),
    [
        ("tick", "check:tick_above_crash"),
        ("seed", "check:seed_mismatch"),
        ("crash_point", "check:crash_point_mismatch"),
    ],
)
async def test_a_server_that_cheats_is_reported(lie: str, code: str, tmp_path: Path) -> None:
    status, out, result = await against_wrong_server(lie, tmp_path)
    assert status == 1, out
    # Every round tells the lie (the first may have been joined too late to see it).
    assert result["rounds"] >= 2
    assert result["errors_by_code"].get(code, 0) >= result["rounds"] - 1, result


async def test_a_fair_copy_of_the_wrong_server_passes(tmp_path: Path) -> None:
    """The control for the test above: the same server telling no lie is clean."""
    status, out, result = await against_wrong_server("none", tmp_path)
    assert status == 0, out
    assert result["errors"] == 0 and result["rounds"] >= 1


async def test_a_server_that_speaks_something_else_is_named(real_time_server: str) -> None:
    status, out = await harness("--url", real_time_server.replace("/ws", "/metrics"))
    assert status == 2
    assert "did not accept a WebSocket" in out and "Traceback" not in out


async def test_an_unreachable_url_is_named() -> None:
    from ..serving import free_port

    status, out = await harness("--url", f"ws://127.0.0.1:{free_port()}/ws", "--clients", "1")
    assert status == 2
    assert "cannot reach" in out and "Traceback" not in out


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--clients", "0"], "--clients must be at least 1"),
        (["--clients", "10", "--bettors", "11"], "--bettors must be between"),
        (["--clients", "1000000", "--procs", "1"], "open files each"),
        (["--url", "http://127.0.0.1:1/ws"], "--url must look like"),
    ],
)
async def test_impossible_settings_are_refused_before_connecting(
    flags: list[str], message: str
) -> None:
    status, out = await harness(*flags)
    assert status == 2
    assert message in out and "Traceback" not in out
