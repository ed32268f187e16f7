"""Fairness from outside (pillarpayout_ws/verifier.py and ``/api/*``).

The first test is an outsider's: it plays a few rounds on a real ``serve``
(house edge 5 %), then checks every round from the published record alone,
with a verifier written here from the published formula, not imported from
the package. The others run ``pillarpayout verify --url`` against the same
server and against one that lies.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import math
import subprocess
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from typing import Any, ClassVar

import pytest
from websockets.asyncio.client import connect

from pillarpayout_ws.engine.fairness import SeedChain
from pillarpayout_ws.storage import open_storage

from .conftest import PILLARPAYOUT
from .server.conftest import CHAIN_ROUNDS, CLIENT_SEED, Player, chain_with_crashes
from .serving import ServeProcess

ROUNDS = 4


def fetch(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
        return json.loads(resp.read())


def outsider_crash_point(server_seed: str, client_seed: str, edge: float) -> int:
    """The published formula, in hundredths."""
    d = hmac.new(client_seed.encode("ascii"), bytes.fromhex(server_seed), hashlib.sha256)
    x = int(d.hexdigest()[:13], 16) / 2**52
    return max(100, math.floor((100 - edge) / (1 - x)))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """A real ``serve`` at a 5 % house edge whose first rounds crash early."""
    data = tmp_path_factory.mktemp("verify") / "data"
    top = chain_with_crashes(130, 300, ROUNDS + 2)

    async def store_chain() -> None:
        storage = await open_storage(data_dir=data)
        try:
            await storage.db.create_seed_chain(
                top,
                CHAIN_ROUNDS,
                SeedChain.from_top(top, CHAIN_ROUNDS).commitment,
                CLIENT_SEED,
                "a test's salt",
            )
        finally:
            await storage.close()

    asyncio.run(store_chain())
    serve = ServeProcess(data, "--betting-ms", "300", "--cooldown-ms", "200", "--house-edge", "5")
    try:
        serve.wait_healthy()
        asyncio.run(watch_rounds(serve.port, ROUNDS))
        yield serve
    finally:
        assert serve.terminate() == 0


async def watch_rounds(port: int, rounds: int) -> None:
    async with connect(f"ws://127.0.0.1:{port}/ws") as ws:
        player = Player(ws)
        for _ in range(rounds):
            await player.next("crashed", within=60)


def test_an_outsider_checks_every_round_from_the_published_record(served: ServeProcess) -> None:
    fairness = fetch(served.port, "/api/fairness")
    chains = {c["chain_id"]: c for c in fairness["chains"]}
    assert fairness["current"]["house_edge"] == 5.0
    rounds = fetch(served.port, "/api/rounds?limit=100")["rounds"]
    crashed = sorted((r for r in rounds if r["status"] == "crashed"), key=lambda r: r["nonce"])
    assert len(crashed) >= ROUNDS
    chain = chains[crashed[0]["chain_id"]]
    assert chain["client_seed"] == CLIENT_SEED and chain["client_seed_source"] == "a test's salt"
    linked = chain["commitment"]  # sha256 of the seed of nonce 1
    for r in crashed:
        seed = r["server_seed"]
        assert hashlib.sha256(bytes.fromhex(seed)).hexdigest() == r["seed_hash"]
        value = seed
        for _ in range(r["nonce"]):
            value = hashlib.sha256(bytes.fromhex(value)).hexdigest()
        assert value == linked
        assert r["house_edge"] == 5.0
        assert outsider_crash_point(seed, chain["client_seed"], r["house_edge"]) == round(
            r["crash_point"] * 100
        )
        assert r["started_at"] is not None and r["started_at"] < r["ended_at"]


def verify_cli(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PILLARPAYOUT, "verify", "--url", url], capture_output=True, text=True, timeout=120
    )


def test_verify_url_checks_a_fair_server(served: ServeProcess) -> None:
    result = verify_cli(f"http://127.0.0.1:{served.port}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "checked" in result.stdout and "every one verified" in result.stdout


class Liar(BaseHTTPRequestHandler):
    """Serves a real server's record with one crash point raised by 0.01x."""

    record: ClassVar[dict[str, Any]] = {}

    def do_GET(self) -> None:
        body = json.dumps(self.record.get(self.path.split("?")[0], {"rounds": []})).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def liar(served: ServeProcess) -> Iterator[str]:
    rounds = fetch(served.port, "/api/rounds?limit=100")["rounds"]
    crashed = [r for r in rounds if r["status"] == "crashed"]
    crashed[0] = {**crashed[0], "crash_point": round(crashed[0]["crash_point"] + 0.01, 2)}
    Liar.record = {
        "/api/fairness": fetch(served.port, "/api/fairness"),
        "/api/rounds": {"rounds": crashed},
    }
    server = ThreadingHTTPServer(("127.0.0.1", 0), Liar)
    thread = Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


def test_verify_url_names_a_lie(liar: str) -> None:
    result = verify_cli(liar)
    assert result.returncode == 1
    lines = result.stdout.strip().splitlines()
    assert "the formula gives" in lines[0] and "1 failure(s)" in lines[-1]


def test_verify_url_that_does_not_answer_is_one_line(tmp_path: Path) -> None:
    result = verify_cli("http://127.0.0.1:1")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "cannot read" in result.stderr
