"""One WebSocket connection: decode frames, check who may do what, pass commands on.

A connection starts as a read-only spectator (every broadcast, ``hello`` on
connect); ``register``/``login``/``resume`` make it a player. Game actions go
to the ``GameRunner`` as commands and are answered from the game loop after
they are durable; account actions are answered here.

Abuse: each connection may send ``FRAME_RATE`` frames per second (burst
``FRAME_BURST``); beyond that each frame gets ``rate_limited``, and a
connection that keeps going (``ABUSE_LIMIT`` refused frames) is closed with
1008. An exception while handling one frame is logged with its traceback; the
client gets ``internal_error`` and the connection, the other connections and
the game loop carry on.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from ..exceptions import PillarPayoutError
from ..protocol import (
    CashOut,
    Chat,
    Command,
    FrameError,
    Login,
    Logout,
    Ping,
    PlaceBet,
    Register,
    Resume,
    decode_command,
    encode_chat,
    encode_error,
    encode_logged_out,
    encode_pong,
    encode_session,
)
from ..storage.postgres import UserRow
from .auth import AuthError
from .fanout import Client
from .runner import BetCommand, CashoutCommand

if TYPE_CHECKING:
    from .app import App

log = logging.getLogger("pillarpayout.server")

FRAME_RATE = 20.0
FRAME_BURST = 40.0
ABUSE_LIMIT = 100
CHAT_RATE = 1.0
CHAT_BURST = 5.0


class TokenBucket:
    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = burst
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class ConnectionHandler:
    def __init__(self, app: App, connection: ServerConnection) -> None:
        self.app = app
        self.connection = connection
        peer = connection.remote_address
        self.client = Client(connection, ip=str(peer[0]) if peer else "?")
        self.frames = TokenBucket(FRAME_RATE, FRAME_BURST)
        self.refused = 0

    def send_error(self, code: str, message: str, ref: str | None) -> None:
        self.app.metrics.errors.labels(code).inc()
        self.app.hub.send(self.client, encode_error(code, message, ref))

    async def run(self) -> None:
        app, client = self.app, self.client
        app.hub.add(client)
        app.hub.send(client, app.hello())
        try:
            async for message in self.connection:
                app.metrics.frames_in.inc()
                if not self.frames.take():
                    self.refused += 1
                    if self.refused >= ABUSE_LIMIT:
                        await self.connection.close(1008, "too many frames")
                        return
                    self.send_error("rate_limited", "slow down", None)
                    continue
                try:
                    command = decode_command(message)
                except FrameError as exc:
                    self.send_error(exc.code, exc.message, exc.ref)
                    continue
                try:
                    await self.handle(command)
                except AuthError as exc:
                    self.send_error(exc.code, exc.message, command.ref)
                except PillarPayoutError as exc:
                    log.warning("storage error while handling a frame: %s", exc)
                    self.send_error("unavailable", "storage is unavailable; try again", command.ref)
                except Exception:
                    # A bug in one frame's handling: this connection carries on, and
                    # nothing reaches the other connections or the game loop.
                    log.exception("handling a %s frame failed", type(command).__name__)
                    self.send_error("internal_error", "the server failed; try again", command.ref)
        except ConnectionClosed:
            pass
        finally:
            app.hub.remove(client)

    async def handle(self, command: Command) -> None:
        app, client = self.app, self.client
        if isinstance(command, Ping):
            app.hub.send(client, encode_pong(command.ref, ts=time.time()))
        elif isinstance(command, Register):
            user, token, digest = await app.accounts.register(
                command.username, command.email, command.password
            )
            self.logged_in(user, token, digest)
        elif isinstance(command, Login):
            user, token, digest = await app.accounts.login(
                command.username, command.password, client.ip
            )
            self.logged_in(user, token, digest)
        elif isinstance(command, Resume):
            user, digest = await app.accounts.resume(command.token)
            self.logged_in(user, command.token, digest)
        elif client.user_id is None:
            self.send_error("auth_required", "log in first: spectators can only watch", command.ref)
        elif isinstance(command, Logout):
            await self.logout()
        elif isinstance(command, PlaceBet):
            app.runner.submit(
                BetCommand(client.user_id, command.amount, command.auto_cashout, command.ref)
            )
        elif isinstance(command, CashOut):
            app.runner.submit(CashoutCommand(client.user_id, command.ref))
        elif isinstance(command, Chat):
            self.chat(command.text, command.ref)

    def logged_in(self, user: UserRow, token: str, digest: str) -> None:
        app = self.app
        app.runner.game.load_account(user.id, user.username, user.balance)
        app.hub.login(self.client, user.id, user.username, digest)
        balance = app.runner.game.balance_of(user.id)
        app.hub.send(
            self.client,
            encode_session(token, user.id, user.username, balance if balance is not None else 0),
        )

    async def logout(self) -> None:
        """Revoke this session; every other socket of the user is closed."""
        client, hub = self.client, self.app.hub
        user_id, digest = client.user_id, client.token_sha256
        assert user_id is not None and digest is not None
        await self.app.accounts.logout(digest)
        hub.logout(client)
        hub.send(client, encode_logged_out())
        for other in list(hub.by_user.get(user_id, ())):
            hub.logout(other)
            await other.connection.close(4002, "logged out elsewhere")

    def chat(self, text: str, ref: str | None) -> None:
        client, app = self.client, self.app
        assert client.user_id is not None and client.username is not None
        bucket = app.chat_buckets.setdefault(client.user_id, TokenBucket(CHAT_RATE, CHAT_BURST))
        if not bucket.take():
            self.send_error("rate_limited", "one chat line a second, please", ref)
            return
        ts = time.time()
        app.chat_lines.append((client.username, text, ts))
        app.chat_to_save.append((client.user_id, app.runner.game.round_id, text))
        app.hub.broadcast(encode_chat(client.username, text, ts))
