"""An in-process game server on real storage, with a fast clock and a known seed chain."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from pillarpayout_ws.engine.fairness import SeedChain, crash_point
from pillarpayout_ws.server.app import App, ServerConfig
from pillarpayout_ws.storage import Storage

from ..conftest import Servers, fresh_storage

SPEED = 10.0  # game milliseconds per real millisecond
CLIENT_SEED = "pillarpayout-tests"


def chain_with_crashes(low: int, high: int, rounds: int) -> str:
    """A top seed whose first ``rounds`` crash points all lie in [low, high] hundredths."""
    for i in range(100_000):
        top = hashlib.sha256(f"test-chain-{i}".encode()).hexdigest()
        chain = SeedChain.from_top(top, 20)
        points = [crash_point(chain.seed_for(n), CLIENT_SEED) for n in range(1, rounds + 1)]
        if all(low <= p <= high for p in points):
            return top
    raise AssertionError("no such chain")


class Player:
    """A WebSocket client that reads every frame in the background and keeps it."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.frames: list[dict[str, Any]] = []
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._seen = 0
        self._match: dict[str, Any] = {}
        self._arrived = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                async with self._arrived:
                    self.frames.append(orjson.loads(message))
                    self._arrived.notify_all()
        except ConnectionClosed:
            pass
        finally:
            self.closed.set_result(None)
            async with self._arrived:
                self._arrived.notify_all()

    async def send(self, **frame: object) -> None:
        await self.ws.send(orjson.dumps(frame).decode())

    async def next(self, type_: str, within: float = 10.0, **match: object) -> dict[str, Any]:
        """The next frame of ``type_`` (matching ``match``) after those already returned."""

        def found() -> bool:
            while self._seen < len(self.frames):
                frame = self.frames[self._seen]
                self._seen += 1
                if frame["type"] == type_ and all(frame.get(k) == v for k, v in match.items()):
                    self._match = frame
                    return True
            if self.closed.done():
                raise AssertionError(f"connection closed before a {type_!r} frame")
            return False

        async with asyncio.timeout(within), self._arrived:
            await self._arrived.wait_for(found)
        return self._match

    async def close(self) -> None:
        await self.ws.close()
        await self._reader


class GameServer:
    def __init__(self, app: App) -> None:
        self.app = app
        self.url = f"ws://127.0.0.1:{app.port}/ws"

    async def connect(self) -> Player:
        return Player(await connect(self.url))

    async def register(self, name: str) -> tuple[Player, dict[str, Any]]:
        player = await self.connect()
        await player.next("hello")
        await player.send(
            type="register",
            username=name,
            email=f"{name}@example.com",
            password="correct horse battery",
        )
        return player, await player.next("session")


@pytest.fixture
async def storage_for_game(servers: Servers) -> AsyncIterator[Storage]:
    st = await fresh_storage(servers)
    yield st
    await st.close()


async def start_game(
    storage: Storage,
    *,
    crashes: tuple[int, int, int] = (150, 400, 4),
    time_scale: float = SPEED,
    **config: Any,
) -> App:
    """A started game whose first ``crashes[2]`` rounds crash within
    ``crashes[0]..crashes[1]`` hundredths; ``config`` overrides the fast defaults."""
    low, high, rounds = crashes
    top = chain_with_crashes(low, high, rounds)
    chain = SeedChain.from_top(top, 20)
    await storage.db.create_seed_chain(top, 20, chain.commitment, CLIENT_SEED)
    app = App(replace(FAST, **config), storage, time_scale=time_scale)
    await app.start()
    return app


FAST = ServerConfig(
    port=0,
    betting_ms=3000,
    tick_ms=100,
    cooldown_ms=1000,
    flush_rounds=1,
    flush_interval_ms=100,
)


@pytest.fixture
async def game_server(storage_for_game: Storage) -> AsyncIterator[GameServer]:
    app = await start_game(storage_for_game)
    try:
        yield GameServer(app)
    finally:
        await app.stop()
