"""The real `pillarpayout serve` process: a round over the wire, then SIGTERM mid-round."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
from websockets.asyncio.client import connect

from .serving import ServeProcess, healthz
from .test_cli import run_cli


async def test_sigterm_mid_round_loses_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    serve = ServeProcess(data, "--betting-ms", "1500", "--tick-ms", "50", "--cooldown-ms", "500")
    try:
        await asyncio.to_thread(serve.wait_healthy)
        async with connect(f"ws://127.0.0.1:{serve.port}/ws") as ws:

            async def frame(type_: str) -> dict[str, object]:
                while True:
                    message = orjson.loads(await ws.recv())
                    if message["type"] == type_:
                        return dict(message)

            await frame("hello")
            await ws.send(
                orjson.dumps(
                    {
                        "type": "register",
                        "username": "carol",
                        "email": "c@example.com",
                        "password": "correct horse",
                    }
                ).decode()
            )
            await frame("session")
            await frame("betting")
            await ws.send(orjson.dumps({"type": "bet", "amount": 5000, "ref": "b"}).decode())
            accepted = await frame("bet_accepted")
            assert accepted["balance"] == 95_000
            await frame("running")
            assert serve.terminate() == 0
        assert healthz(serve.port) is None
    finally:
        if serve.proc.poll() is None:
            serve.kill9()
    log = serve.log
    assert "shutting down" in log and "flushed" in log
    audit = run_cli("audit", "--data-dir", str(data))
    assert audit.returncode == 0, audit.stdout
    assert "0 round(s) and 0 grant(s) not yet flushed" in audit.stdout
