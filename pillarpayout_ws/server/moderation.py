"""Roles and moderation in the running server, and the command line's half.

The rules (who may act on whom) and the storage are in
``storage/moderation.py``. Here:

- ``Moderation`` (the server's half) answers moderators' frames (``mute``,
  ``unmute``, ``ban``, ``unban``, ``delete_chat``) and the command line's
  requests, and makes each change felt at once: a banned user's sockets are
  logged out and closed with ``BANNED_CLOSE`` (4003); a muted user is told
  (``muted``, also when unmuted); a role change is sent
  (``role``) to every connection of the user; a deleted line leaves the
  recent chat and ``chat_deleted`` is broadcast.
- It remembers the role, ban and mute of every user it has seen log in, and
  every change made since it started: all changes go through the running
  server while there is one (the command line finds it by the server lock,
  as ``grant`` does), so what it remembers is the truth. A user first seen
  at a login keeps what was remembered if a change came in between (a ban
  racing a login never ends logged in).
- ``moderate`` (the command line's half): with no server running, straight
  to PostgreSQL; else queued in Redis for the server's ``ModerationDesk``,
  with a deadline after which the request is never applied.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

from ..exceptions import PillarPayoutError, StorageError
from ..protocol import (
    Ban,
    DeleteChat,
    ModerationCommand,
    Mute,
    Unban,
    Unmute,
    encode_chat_deleted,
    encode_moderated,
    encode_muted,
    encode_role,
)
from ..storage import Storage
from ..storage.live import MODERATION_DESK
from ..storage.moderation import (
    RANK,
    Actor,
    ModerationRefused,
    Outcome,
    delete_chat,
    moderate_user,
)
from ..storage.postgres import Database, UserRow
from .auth import AuthError
from .chat import ChatRoom
from .fanout import Client, Hub

__all__ = ["BANNED_CLOSE", "Moderation", "ModerationDesk", "moderate"]

log = logging.getLogger("pillarpayout.server")

BANNED_CLOSE = 4003
ANSWER_TIMEOUT_S = 10.0


@dataclass(slots=True)
class _Standing:
    role: str
    banned: bool
    muted_until: float | None


class Moderation:
    """The server's half (module docstring)."""

    def __init__(self, db: Database, hub: Hub, chat: ChatRoom) -> None:
        self._db = db
        self._hub = hub
        self._chat = chat
        self._users: dict[int, _Standing] = {}

    # -- what a connection asks -------------------------------------------------

    def seen(self, user: UserRow) -> None:
        """A user read from PostgreSQL at a login; what is remembered wins."""
        self._users.setdefault(user.id, _Standing(user.role, user.banned, user.muted_until))

    def role_of(self, user_id: int) -> str:
        standing = self._users.get(user_id)
        return standing.role if standing is not None else "player"

    def banned(self, user_id: int) -> bool:
        standing = self._users.get(user_id)
        return standing is not None and standing.banned

    def muted_for(self, user_id: int) -> float:
        """Seconds of mute left (0: not muted)."""
        standing = self._users.get(user_id)
        if standing is None or standing.muted_until is None:
            return 0.0
        return max(0.0, standing.muted_until - time.time())

    # -- acting ------------------------------------------------------------------

    async def command(self, client: Client, command: ModerationCommand) -> None:
        """A moderator's frame: act, answer ``moderated``; ``AuthError`` when refused."""
        assert client.user_id is not None and client.username is not None
        if RANK[self.role_of(client.user_id)] < RANK["moderator"]:
            raise AuthError("forbidden", "only moderators and admins may moderate")
        actor = Actor(client.username, client.user_id)
        try:
            if isinstance(command, DeleteChat):
                await self._chat.store()  # a line said a moment ago is in PostgreSQL too
                outcome = await delete_chat(self._db, actor, command.id, command.reason)
            else:
                action, minutes = _ACTIONS[type(command)], getattr(command, "minutes", None)
                outcome = await moderate_user(
                    self._db,
                    actor,
                    action,
                    command.username,
                    reason=command.reason,
                    minutes=minutes,
                )
        except ModerationRefused as exc:
            raise AuthError(exc.code, exc.message) from None
        await self.felt(outcome, command.reason)
        until = outcome.muted_until if outcome.action == "mute" else None
        self._hub.send(
            client,
            encode_moderated(
                outcome.action,
                command.ref,
                username=outcome.username,
                until=until,
                chat_id=outcome.chat_id,
            ),
        )

    async def felt(self, outcome: Outcome, reason: str = "") -> None:
        """Make a change stored in PostgreSQL felt: remembered, and on the sockets."""
        self._users[outcome.user_id] = _Standing(outcome.role, outcome.banned, outcome.muted_until)
        hub = self._hub
        if outcome.action == "ban":
            peers = list(hub.by_user.get(outcome.user_id, ()))
            for peer in peers:
                hub.logout(peer)
            await asyncio.gather(
                *(peer.connection.close(BANNED_CLOSE, "banned") for peer in peers),
                return_exceptions=True,
            )
        elif outcome.action in ("mute", "unmute"):
            hub.send_user(outcome.user_id, encode_muted(outcome.muted_until, reason))
        elif outcome.action == "role":
            hub.send_user(outcome.user_id, encode_role(outcome.role))
        elif outcome.action == "delete_chat" and outcome.chat_id is not None:
            self._chat.forget(outcome.chat_id)
            hub.broadcast(encode_chat_deleted(outcome.chat_id))


_ACTIONS: dict[type, str] = {Mute: "mute", Unmute: "unmute", Ban: "ban", Unban: "unban"}


# -- the command line's half ------------------------------------------------------


async def moderate(
    storage: Storage,
    action: str,
    username: str,
    *,
    actor: str,
    reason: str = "",
    minutes: int | None = None,
    role: str | None = None,
) -> tuple[Outcome, str]:
    """Apply ``action`` as the operator ``actor``; (the outcome, how it was applied).
    ``ModerationRefused`` for an unknown user; ``StorageError`` when the running
    server did not answer in time (then nothing happened)."""
    db = storage.db
    if await db.try_server_lock():
        try:
            outcome = await moderate_user(
                db, Actor(actor), action, username, reason=reason, minutes=minutes, role=role
            )
        finally:
            await db.release_server_lock()
        return outcome, "in PostgreSQL (no server running)"
    request = {
        "key": f"{actor}:{time.time_ns()}",
        "actor": actor,
        "action": action,
        "username": username,
        "reason": reason,
        "minutes": minutes,
        "role": role,
        "deadline": time.time() + ANSWER_TIMEOUT_S,
    }
    answer = await storage.live.request(MODERATION_DESK, request, timeout_s=ANSWER_TIMEOUT_S + 2)
    if answer is None:
        raise StorageError(
            f"the running server did not take the {action} within {ANSWER_TIMEOUT_S:.0f} s; "
            "nothing was changed"
        )
    if "code" in answer:
        raise ModerationRefused(str(answer["code"]), str(answer["message"]))
    if "error" in answer:
        raise StorageError(f"the running server refused the {action}: {answer['error']}")
    return Outcome(**answer["outcome"]), "through the running server"


class ModerationDesk:
    """The server's side of the command line's requests (module docstring)."""

    def __init__(self, storage: Storage, moderation: Moderation) -> None:
        self._storage = storage
        self._moderation = moderation

    async def take(self, wait_s: float = 0.0, until: asyncio.Event | None = None) -> bool:
        return await self._storage.live.answer_requests(
            MODERATION_DESK, self._take_one, wait_s, until
        )

    async def _take_one(self, request: dict[str, Any], key: str) -> dict[str, Any]:
        try:
            outcome = await moderate_user(
                self._storage.db,
                Actor(str(request["actor"])),
                str(request["action"]),
                str(request["username"]),
                reason=str(request["reason"]),
                minutes=request["minutes"],
                role=request["role"],
            )
        except ModerationRefused as exc:
            return {"code": exc.code, "message": exc.message}
        except PillarPayoutError as exc:
            return {"error": str(exc)}
        await self._moderation.felt(outcome, str(request["reason"]))
        return {"outcome": asdict(outcome)}
