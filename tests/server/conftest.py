"""An in-process game server on real storage, with a known seed chain and a clock:
a fast real one (``ScaledClock``, for tests about sockets and races) or one the
test moves by hand (``ManualGame``, for tests about what happens in a round)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import socket
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from pillarpayout_ws.engine.fairness import SeedChain, crash_point
from pillarpayout_ws.engine.records import Record
from pillarpayout_ws.server.app import App, ServerConfig
from pillarpayout_ws.server.clock import Clock, ManualClock, ScaledClock
from pillarpayout_ws.settings import configure
from pillarpayout_ws.storage import Storage
from pillarpayout_ws.storage.live import LiveStore

from ..conftest import Servers, fresh_storage

SPEED = 10.0  # game milliseconds per real millisecond
CLIENT_SEED = "pillarpayout-tests"


CHAIN_ROUNDS = 20  # the length of the chains chain_with_crashes draws
LATER_CRASH_MAX = 2000  # hundredths: a later round runs at most 50 s of game time (5 s at 10x)


def chain_with_crashes(low: int, high: int, rounds: int) -> str:
    """A top seed whose first ``rounds`` crash points all lie in [low, high] hundredths,
    and whose later ones crash by ``max(high, LATER_CRASH_MAX)``: no round of a test's
    chain runs for minutes, as one in a few hundred of a random chain's does (at 10x
    speed, past a test's wait for the next round)."""
    later_max = max(high, LATER_CRASH_MAX)
    for i in range(100_000):
        top = hashlib.sha256(f"test-chain-{i}".encode()).hexdigest()
        chain = SeedChain.from_top(top, CHAIN_ROUNDS)
        points = (crash_point(chain.seed_for(n), CLIENT_SEED) for n in range(1, CHAIN_ROUNDS + 1))
        if all(
            low <= p <= high if n <= rounds else p <= later_max
            for n, p in enumerate(points, start=1)
        ):
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

    async def next_where(
        self, predicate: Callable[[dict[str, Any]], bool], within: float = 10.0
    ) -> dict[str, Any]:
        """The next frame (after those already returned) for which ``predicate`` holds."""
        found: list[dict[str, Any]] = []

        def scan() -> bool:
            while self._seen < len(self.frames):
                frame = self.frames[self._seen]
                self._seen += 1
                if predicate(frame):
                    found.append(frame)
                    return True
            if self.closed.done():
                raise AssertionError("connection closed before the frame awaited")
            return False

        async with asyncio.timeout(within), self._arrived:
            await self._arrived.wait_for(scan)
        return found[0]

    async def answer(self, ref: str, within: float = 10.0) -> dict[str, Any]:
        """The next frame carrying ``ref``: the answer to the frame sent with it."""
        return await self.next_where(lambda f: f.get("ref") == ref, within)

    async def refused(self, ref: str, **frame: object) -> str:
        """Send ``frame`` with ``ref``; the code of the ``error`` that answers it."""
        await self.send(**frame, ref=ref)
        return str((await self.next("error", ref=ref))["code"])

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

    async def resume(self, token: str) -> Player:
        """Another connection of the user whose session ``token`` is."""
        player = await self.connect()
        await player.send(type="resume", token=token)
        await player.next("session")
        return player


@pytest.fixture
async def storage_for_game(servers: Servers) -> AsyncIterator[Storage]:
    st = await fresh_storage(servers)
    yield st
    await st.close()


async def start_game(
    storage: Storage,
    *,
    crashes: tuple[int, int, int] = (150, 400, 4),
    clock: Clock | None = None,
    stop_timeout_s: float = 10.0,
    **config: Any,
) -> App:
    """A started game whose first ``crashes[2]`` rounds crash within
    ``crashes[0]..crashes[1]`` hundredths; ``config`` (flat setting names)
    overrides the fast defaults; the clock is 10x real time unless given."""
    low, high, rounds = crashes
    top = chain_with_crashes(low, high, rounds)
    chain = SeedChain.from_top(top, CHAIN_ROUNDS)
    await storage.db.create_seed_chain(top, CHAIN_ROUNDS, chain.commitment, CLIENT_SEED)
    app = App(
        fast_config(**config),
        storage,
        clock=clock or ScaledClock(SPEED),
        stop_timeout_s=stop_timeout_s,
    )
    await app.start()
    return app


FAST: dict[str, Any] = {
    "port": 0,
    "exempt_loopback": True,  # every test client is on loopback
    "betting_ms": 3000,
    "tick_ms": 100,
    "cooldown_ms": 1000,
    "flush_rounds": 1,
    "flush_interval_ms": 100,
}


def fast_config(**config: Any) -> ServerConfig:
    """The tests' server: any port, short rounds, every round flushed at once."""
    return configure(ServerConfig, **{**FAST, **config})


@pytest.fixture
async def game_server(storage_for_game: Storage) -> AsyncIterator[GameServer]:
    app = await start_game(storage_for_game)
    try:
        yield GameServer(app)
    finally:
        await app.stop()


class ManualGame(GameServer):
    """A game whose time moves only when the test says: ``advance``, ``to_phase``."""

    def __init__(self, app: App, clock: ManualClock) -> None:
        super().__init__(app)
        self.clock = clock

    @property
    def now_ms(self) -> int:
        return self.app.runner.now_ms()

    async def advance(self, ms: int) -> None:
        """Move game time ``ms`` forward, with a turn of the game loop at every instant
        the game has due on the way (betting ends, each tick, cashouts, the crash, the
        next round), each turn's frames sent before the next."""
        runner = self.app.runner
        target = self.now_ms + ms
        while True:
            due = runner.game.next_due_ms()
            if due is None or due > target:
                self.clock.advance_to(target / 1000)
                return
            self.clock.advance_to(due / 1000)
            while runner.sent_ms < due:
                runner.turn_done.clear()
                if runner.sent_ms < due:
                    await runner.turn_done.wait()

    async def to_phase(self, phase: str, round_id: int | None = None) -> None:
        """Advance, one due instant at a time, until the game is in ``phase``
        (of round ``round_id`` when given)."""
        game = self.app.runner.game
        for _ in range(10_000):
            if game.phase.value == phase and round_id in (None, game.round_id):
                return
            due = game.next_due_ms()
            assert due is not None
            await self.advance(due - self.now_ms)
        raise AssertionError(f"the game never reached {phase}")


@pytest.fixture
async def manual_game(storage_for_game: Storage) -> AsyncIterator[ManualGame]:
    """A game on a ``ManualClock``; stopping it voids a round still running."""
    clock = ManualClock()
    app = await start_game(storage_for_game, clock=clock, stop_timeout_s=0)
    try:
        yield ManualGame(app, clock)
    finally:
        await app.stop()


class HeldCommits:
    """Put in place of ``LiveStore.commit``: each commit says it has begun
    (``committing``) and waits for ``release`` before it goes to Redis: how a test
    catches the game loop waiting on Redis. ``commit`` is the real one."""

    def __init__(self, live: LiveStore) -> None:
        self.commit = live.commit
        self.committing, self.release = asyncio.Event(), asyncio.Event()

    async def __call__(self, records: Sequence[Record], key: str | None = None) -> None:
        self.committing.set()
        await self.release.wait()
        await self.commit(records, key)


PING, PONG, CLOSE, CONT, TEXT = 0x9, 0xA, 0x8, 0x0, 0x1


class RawClient:
    """A WebSocket client of raw bytes: to send what no well-behaved library would."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int, headers: str = "", *, buffer: int | None = None) -> RawClient:
        """With ``buffer``, a client that takes little more than that until it reads:
        its socket's receive buffer and its stream's limit are that small."""
        if buffer is None:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        else:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
            reader, writer = await asyncio.open_connection(sock=sock, limit=buffer)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\n{headers}\r\n".encode()
        )
        status = await reader.readuntil(b"\r\n\r\n")
        if b" 101 " not in status.split(b"\r\n")[0]:
            writer.close()
            await writer.wait_closed()
            raise AssertionError(status.decode(errors="replace"))
        return cls(reader, writer)

    @staticmethod
    def frame(opcode: int, payload: bytes = b"", *, fin: bool = True) -> bytes:
        """A masked client frame (payload under 126 bytes)."""
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        return bytes(((0x80 if fin else 0) | opcode, 0x80 | len(payload))) + mask + masked

    async def next_frame(self) -> tuple[int, bytes]:
        """The next server frame (unmasked): its opcode and payload."""
        head = await self.reader.readexactly(2)
        size = head[1] & 0x7F
        if size == 126:
            size = int.from_bytes(await self.reader.readexactly(2), "big")
        elif size == 127:
            size = int.from_bytes(await self.reader.readexactly(8), "big")
        return head[0] & 0x0F, await self.reader.readexactly(size)

    async def frames(self) -> list[tuple[int, bytes]]:
        """Every server frame until the connection ends: (opcode, payload)."""
        out: list[tuple[int, bytes]] = []
        try:
            while True:
                out.append(await self.next_frame())
        except (asyncio.IncompleteReadError, ConnectionError):
            return out

    def close(self) -> None:
        self.writer.close()
