"""Servers for the reliability suite: in-process ``App``s on real storage that can restart.

``Rig`` is one game server on a fresh database and Redis, with a seed chain
chosen by the test (so its crash points are known) and a fast clock. It can be
stopped and started again on the same storage, which is a server restart as
far as money is concerned: recovery runs, the engine is rebuilt from what
PostgreSQL holds.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from websockets.asyncio.client import connect

from pillarpayout_ws.engine.fairness import SeedChain, crash_point
from pillarpayout_ws.server.app import App, ServerConfig
from pillarpayout_ws.server.clock import ScaledClock
from pillarpayout_ws.storage import Storage
from pillarpayout_ws.storage.audit import audit

from ..conftest import Servers, fresh_storage
from ..server.conftest import (  # noqa: F401 (manual_game and its storage: fixtures)
    CLIENT_SEED,
    SPEED,
    GameServer,
    Player,
    fast_config,
    manual_game,
    storage_for_game,
)

__all__ = [
    "CLIENT_SEED",
    "SPEED",
    "Client",
    "Player",
    "Rig",
    "RigFactory",
    "chain_where",
    "documented_close_codes",
    "documented_codes",
]

PROTOCOL_MD = Path(__file__).resolve().parents[2] / "protocol.md"


def chain_where(
    accept: Callable[[list[int]], bool], rounds: int, length: int = 200
) -> tuple[str, list[int]]:
    """A top seed whose first ``rounds`` crash points satisfy ``accept``, and those points."""
    for i in range(100_000):
        top = hashlib.sha256(f"reliability-chain-{i}".encode()).hexdigest()
        chain = SeedChain.from_top(top, length)
        points = [crash_point(chain.seed_for(n), CLIENT_SEED) for n in range(1, rounds + 1)]
        if accept(points):
            return top, points
    raise AssertionError("no such chain")


def documented_codes(heading: str) -> set[str]:
    """The codes in the first column of the tables under ``## heading`` in protocol.md."""
    text = PROTOCOL_MD.read_text()
    section = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    codes = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            codes.add(line.split("`")[1])
    return codes


def documented_close_codes() -> set[int]:
    """The codes in the table under ``### Close codes`` in protocol.md."""
    text = PROTOCOL_MD.read_text()
    section = text.split("\n### Close codes\n", 1)[1].split("\n#", 1)[0]
    cells = [line.split("|") for line in section.splitlines() if line.startswith("|")]
    return {int(row[1]) for row in cells if row[1].strip().isdigit()}


class Client(Player):
    """A ``Player`` that can bet in the next window when this one has just closed."""

    async def bet(self, amount: int, ref: str) -> dict[str, Any]:
        """Bet ``amount`` with ``ref``, in the next window if this one has just closed.

        The machine is shared: a window of a few hundred milliseconds of real
        time may pass before a frame gets there.
        """
        while True:
            await self.send(type="bet", amount=amount, auto_cashout=None, ref=ref)
            answer = await self.answer(ref, within=30)
            if answer["type"] == "bet_accepted":
                return answer
            assert answer["code"] == "betting_closed", answer
            await self.next("betting", within=30)


class Rig(GameServer):
    """One server on its own storage; ``restart()`` stops it and starts a new one there."""

    def __init__(self, storage: Storage, config: ServerConfig, speed: float) -> None:
        self.storage = storage
        self.config = config
        self.speed = speed
        self.players: list[Client] = []
        self.running = False

    async def start(self) -> None:
        app = App(self.config, self.storage, clock=ScaledClock(self.speed))
        await app.start()
        self.running = True
        super().__init__(app)
        # The next start must listen where clients reconnect to.
        self.config = dataclasses.replace(self.config, port=app.port)

    async def stop(self) -> None:
        """Graceful, as on SIGTERM: a running round may end, everything is flushed."""
        if self.running:
            self.running = False
            await self.app.stop()

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def connect(self) -> Client:
        player = Client(await connect(self.url))
        self.players.append(player)
        return player

    async def register(self, name: str) -> tuple[Client, dict[str, Any]]:
        player, session = await super().register(name)
        assert isinstance(player, Client)
        return player, session

    async def login(self, token: str) -> Client:
        """A new connection of the user whose session ``token`` is."""
        player = await self.resume(token)
        assert isinstance(player, Client)
        return player

    async def flushed(self) -> None:
        """Wait until every completed round is in PostgreSQL."""
        flusher = self.app.flusher
        await flusher.wait_until(lambda: flusher.backlog == 0)

    async def fetch(self, query: str, *args: object) -> list[asyncpg.Record]:
        return await self.storage.db.fetch(query, *args)

    async def ledger(self, user_id: int) -> list[tuple[str, int, int | None]]:
        rows = await self.fetch(
            "SELECT kind, amount, round_id FROM ledger WHERE user_id = $1 ORDER BY id", user_id
        )
        return [(r["kind"], r["amount"], r["round_id"]) for r in rows]

    async def balance(self, user_id: int) -> int:
        rows = await self.fetch("SELECT balance FROM users WHERE id = $1", user_id)
        return int(rows[0]["balance"])

    async def assert_audit_clean(self) -> None:
        report = await audit(self.storage.db, self.storage.live)
        assert report.clean, report.render()


RigFactory = Callable[..., Awaitable[Rig]]


@pytest.fixture
async def make_rig(servers: Servers) -> AsyncIterator[RigFactory]:
    """``await make_rig(top_seed, speed=..., **settings)``: a started ``Rig`` on a
    clock ``speed`` times real time (settings by their flat names, as ``configure``)."""
    rigs: list[Rig] = []

    async def make(top_seed: str, *, speed: float = SPEED, **config: Any) -> Rig:
        storage = await fresh_storage(servers)
        chain = SeedChain.from_top(top_seed, 200)
        await storage.db.create_seed_chain(top_seed, 200, chain.commitment, CLIENT_SEED)
        rig = Rig(storage, fast_config(**config), speed)
        rigs.append(rig)
        await rig.start()
        return rig

    yield make
    for rig in rigs:
        try:
            await rig.stop()
            for player in rig.players:
                await player.close()
        finally:
            await rig.storage.close()
