"""One WebSocket connection: decode frames, check who may do what, pass commands on.

A connection starts as a read-only spectator (every broadcast, ``hello`` on
connect); ``register``/``login``/``resume`` make it a player. Game actions go
to the ``GameRunner`` as commands and are answered from the game loop after
they are durable; account actions are answered here, chat by the chat room.

What a handler works with is handed to it (``Services``): it imports nothing
of the server's wiring, and it never touches the engine.

Abuse: each connection has a message budget (``limits.FrameLimiter``); beyond
it each message gets ``rate_limited``, and a connection that keeps going is
closed with 1008 (every frame, control frames included, also spends from the
connection's frame budget: ``limits.guard_frames``). An exception while
handling one frame is logged with its traceback; the client gets
``internal_error`` and the connection, the other connections and the game
loop carry on.

Moderation frames (``mute``, ``unmute``, ``ban``, ``unban``, ``delete_chat``)
go to ``Moderation`` (server/moderation.py), which refuses players
(``forbidden``); a muted user's chat is refused here (``muted``), and a user
banned while logging in is refused after the last await (``banned``).

Sessions: after every await on the way to logging a connection in, the
session is checked again (``Accounts.still_valid``), so a ``resume`` racing a
``logout`` or ``logout_all`` never ends logged in.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from ..exceptions import PillarPayoutError
from ..protocol import (
    CancelBet,
    CashOut,
    Chat,
    Command,
    FrameError,
    GetLimits,
    Login,
    Logout,
    LogoutAll,
    ModerationCommand,
    Ping,
    PlaceBet,
    Register,
    Resume,
    SetLimits,
    decode_command,
    encode_balance,
    encode_error,
    encode_logged_out,
    encode_pong,
    encode_session,
)
from ..storage.postgres import UserRow
from .auth import Accounts, AuthError
from .chat import ChatRoom
from .clock import Clock
from .fanout import Client, Hub
from .hello import Hello
from .limits import AddressBuckets, ClientAddresses, FrameLimiter, Verdict
from .metrics import Metrics
from .moderation import Moderation
from .player_limits import LimitsDesk
from .runner import BetCommand, CancelCommand, CashoutCommand, GameRunner

__all__ = ["ConnectionHandler", "Services"]

log = logging.getLogger("pillarpayout.server")


@dataclass(frozen=True, slots=True, kw_only=True)
class Services:
    """What every connection handler works with; built once by the app."""

    addresses: ClientAddresses
    hub: Hub
    runner: GameRunner
    accounts: Accounts
    chat: ChatRoom
    hello: Hello
    metrics: Metrics
    clock: Clock
    moderation: Moderation
    limits: LimitsDesk
    address_budget: AddressBuckets  # messages a second, all of an address's connections


class ConnectionHandler:
    def __init__(self, services: Services, connection: ServerConnection) -> None:
        self.services = services
        self.connection = connection
        self.client = Client.joining(connection, services.addresses)
        self.limiter = FrameLimiter(services.clock.now)
        self.session_ends = 0.0  # clock time: a logged-in socket's session runs out then

    def send_error(self, code: str, message: str, ref: str | None) -> None:
        self.services.metrics.errors.labels(code).inc()
        self.services.hub.send(self.client, encode_error(code, message, ref))

    async def run(self) -> None:
        hub, metrics = self.services.hub, self.services.metrics
        try:
            await self._greet()
            async for message in self.connection:
                metrics.frames_in.inc()
                verdict = self.limiter.check()
                if verdict is Verdict.CLOSE:
                    await self.connection.close(1008, "too many frames")
                    return
                if verdict is Verdict.REFUSE:
                    self.send_error("rate_limited", "slow down", None)
                    continue
                if not self.services.address_budget.take(self.client.ip):
                    self.send_error("rate_limited", "too many messages from your address", None)
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
            hub.remove(self.client)

    async def _greet(self) -> None:
        """Join the fan-out with a ``hello``, in one step (``hello.py``)."""
        hub, client = self.services.hub, self.client
        greeted = asyncio.get_running_loop().create_future()

        def send(hello: bytes) -> None:
            if greeted.done():  # this handler was cancelled meanwhile
                return
            hub.add(client)
            hub.send(client, hello)
            greeted.set_result(None)

        self.services.hello.greet(send)
        await greeted

    async def handle(self, command: Command) -> None:
        services, client = self.services, self.client
        accounts = services.accounts
        if isinstance(command, Ping):
            services.hub.send(client, encode_pong(command.ref, ts=time.time()))
        elif isinstance(command, Register):
            since = accounts.revocations
            user, token, digest = await accounts.register(
                command.username, command.email, command.password, client.ip
            )
            await self.logged_in(user, token, digest, since, accounts.session_ttl_s)
            if accounts.starting_balance:  # the grant a new account gets, as any grant
                balance = accounts.starting_balance
                services.hub.send(client, encode_balance(balance, balance, "grant"))
        elif isinstance(command, Login):
            since = accounts.revocations
            user, token, digest = await accounts.login(
                command.username, command.password, client.ip
            )
            await self.logged_in(user, token, digest, since, accounts.session_ttl_s)
        elif isinstance(command, Resume):
            since = accounts.revocations
            user, digest, left_s = await accounts.resume(command.token, client.ip)
            await self.logged_in(user, command.token, digest, since, left_s)
        elif client.user_id is not None and services.clock.now() >= self.session_ends:
            # The session ran out while this socket stayed open: it is a spectator's
            # from now on, as a resume of its token would be refused.
            services.hub.logout(client)
            self.send_error("invalid_session", "the session expired: log in again", command.ref)
        elif client.user_id is None:
            self.send_error("auth_required", "log in first: spectators can only watch", command.ref)
        elif isinstance(command, Logout):
            await self.logout(everywhere=False)
        elif isinstance(command, LogoutAll):
            await self.logout(everywhere=True)
        elif isinstance(command, PlaceBet):
            at_ms = services.runner.now_ms()  # the moment it was read (runner.py, step 1)
            services.runner.submit(
                BetCommand(
                    client.user_id,
                    command.amount,
                    command.auto_cashout,
                    command.ref,
                    at_ms,
                    command.slot,
                )
            )
        elif isinstance(command, CashOut):
            at_ms = services.runner.now_ms()
            services.runner.submit(CashoutCommand(client.user_id, command.ref, at_ms, command.slot))
        elif isinstance(command, CancelBet):
            at_ms = services.runner.now_ms()  # betting may end while it waits for its turn
            services.runner.submit(CancelCommand(client.user_id, command.ref, at_ms, command.slot))
        elif isinstance(command, Chat):
            self.chat(command.text, command.ref)
        elif isinstance(command, ModerationCommand):
            await services.moderation.command(client, command)
        elif isinstance(command, SetLimits):
            answer = await services.limits.set_limits(client.user_id, command)
            services.hub.send(client, answer)
        elif isinstance(command, GetLimits):
            services.hub.send(client, services.limits.frame(client.user_id, command.ref))

    async def logged_in(
        self, user: UserRow, token: str, digest: str, since: int, lasts_s: float
    ) -> None:
        """Log this connection in as ``user`` for the ``lasts_s`` seconds its session
        has left, unless the session was revoked while it was being checked
        (revocation number ``since`` was the latest then)."""
        services = self.services
        limits, activity = await services.limits.load(user.id)
        balance = await services.runner.load_account(
            user.id, user.username, user.balance, limits, activity
        )
        if not services.accounts.still_valid(digest, user.id, since=since):
            raise AuthError("invalid_session", "the session is unknown, expired or revoked")
        moderation = services.moderation
        moderation.seen(user)
        if moderation.banned(user.id):  # banned while this login was on its way
            raise AuthError("banned", "this account is banned")
        services.hub.login(self.client, user.id, user.username, digest)
        self.session_ends = services.clock.now() + lasts_s
        services.hub.send(
            self.client,
            encode_session(token, user.id, user.username, balance, moderation.role_of(user.id)),
        )

    async def logout(self, *, everywhere: bool) -> None:
        """Revoke this session (``everywhere``: every session of the user); close the
        user's other sockets on the revoked sessions with 4002."""
        client, hub, accounts = self.client, self.services.hub, self.services.accounts
        user_id, digest = client.user_id, client.token_sha256
        assert user_id is not None and digest is not None
        if everywhere:
            await accounts.logout_all(user_id)
        else:
            await accounts.logout(digest)
        hub.logout(client)
        hub.send(client, encode_logged_out())
        for other in list(hub.by_user.get(user_id, ())):
            if everywhere or other.token_sha256 == digest:
                hub.logout(other)
                await other.connection.close(4002, "logged out elsewhere")

    def chat(self, text: str, ref: str | None) -> None:
        client = self.client
        assert client.user_id is not None and client.username is not None
        muted_s = self.services.moderation.muted_for(client.user_id)
        if muted_s > 0:
            minutes = max(1, round(muted_s / 60))
            self.send_error("muted", f"you are muted for {minutes} more minute(s)", ref)
            return
        refused = self.services.chat.say(
            client.user_id, client.username, text, self.services.runner.round_id
        )
        if refused is not None:
            self.send_error("rate_limited", refused, ref)
