"""Roles and moderation in PostgreSQL, and the CLI's Redis channel to a running server.

Each action is one transaction: the target's row is locked, who may act on
whom is checked against the roles PostgreSQL holds at that moment, the
change is made, and a row is appended to ``moderation_log`` (append-only: a
trigger refuses UPDATE, DELETE and TRUNCATE; nothing here updates it).

Who may act on whom (``may_act``): roles rank ``player`` < ``moderator`` <
``admin``; a user acts only on users of a lower rank (so never on
themselves): moderators on players, admins on players and moderators,
nobody on an admin over the wire. The command line (``cli:<os user>``, no
user id) is the operator and acts on anyone. Roles change only from the
command line (``pillarpayout role``). A chat line may be deleted by its own
author if they are a moderator, else by a rank above the author's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from ..exceptions import PillarPayoutError
from .postgres import Database, _translated

__all__ = [
    "ACTIONS",
    "RANK",
    "ROLES",
    "Actor",
    "ModerationRefused",
    "Outcome",
    "delete_chat",
    "may_act",
    "moderate_user",
]

ROLES: Final = ("player", "moderator", "admin")
RANK: Final = {role: rank for rank, role in enumerate(ROLES)}
ACTIONS: Final = ("ban", "unban", "mute", "unmute", "role")

_PG_MAX_BIGINT: Final = 2**63 - 1


class ModerationRefused(PillarPayoutError):
    """A moderation action that may not happen; ``code`` is the wire error code
    (``forbidden``, ``unknown_user``, ``unknown_chat``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: a moderator's username and id, or the command line (``user_id`` None)."""

    name: str
    user_id: int | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What an action left: the target's state after it (``muted_until`` Unix time)."""

    action: str
    user_id: int
    username: str
    role: str
    banned: bool
    muted_until: float | None
    chat_id: int | None = None


def may_act(actor_role: str | None, actor_id: int | None, target_id: int, target_role: str) -> bool:
    """Whether an actor of ``actor_role`` (None: the command line) may act on the target."""
    if actor_role is None:
        return True
    return actor_id != target_id and RANK[actor_role] > RANK[target_role]


_STATE = (
    "id, username, role, banned_at IS NOT NULL AS banned, "
    "CASE WHEN muted_until > now() THEN extract(epoch FROM muted_until)::float8 END "
    "AS muted_until"
)

# The change each action makes ($2: its one argument, if any).
_CHANGES: Final = {
    "ban": "banned_at = COALESCE(banned_at, now()), ban_reason = $2",
    "unban": "banned_at = NULL, ban_reason = NULL",
    "mute": "muted_until = now() + make_interval(mins => $2), mute_reason = $3",
    "unmute": "muted_until = NULL, mute_reason = NULL",
    "role": "role = $2",
}


def _arguments(action: str, reason: str, minutes: int | None, role: str | None) -> list[object]:
    """The $2... of ``_CHANGES[action]``."""
    arguments: dict[str, list[object]] = {
        "ban": [reason],
        "mute": [minutes, reason],
        "role": [role],
    }
    return arguments.get(action, [])


async def _actor_role(conn: Any, actor: Actor) -> str | None:
    if actor.user_id is None:
        return None
    role = await conn.fetchval("SELECT role FROM users WHERE id = $1", actor.user_id)
    return str(role) if role is not None else "player"


async def moderate_user(
    db: Database,
    actor: Actor,
    action: str,
    username: str,
    *,
    reason: str = "",
    minutes: int | None = None,
    role: str | None = None,
) -> Outcome:
    """Apply ``action`` (``ACTIONS``) to ``username`` and log it; ``ModerationRefused``
    when the user is unknown or the actor may not."""
    assert action in ACTIONS
    assert (action == "mute") == (minutes is not None) and (action == "role") == (role is not None)
    if role is not None and role not in ROLES:
        raise ModerationRefused("invalid_role", f"a role is one of {', '.join(ROLES)}")
    if action == "role" and actor.user_id is not None:
        raise ModerationRefused("forbidden", "roles are changed from the command line only")
    if "\x00" in username:  # PostgreSQL text cannot hold U+0000, so no name has one
        raise ModerationRefused("unknown_user", f"no user named {username!r}")
    async with _translated(f"a {action}"), db._pool.acquire() as conn, conn.transaction():
        target = await conn.fetchrow(
            "SELECT id, role FROM users WHERE lower(username) = lower($1) FOR UPDATE", username
        )
        if target is None:
            raise ModerationRefused("unknown_user", f"no user named {username!r}")
        actor_role = await _actor_role(conn, actor)
        if actor_role is not None and RANK[actor_role] < RANK["moderator"]:
            raise ModerationRefused("forbidden", "only moderators and admins may moderate")
        if not may_act(actor_role, actor.user_id, target["id"], target["role"]):
            raise ModerationRefused(
                "forbidden",
                "you may act only on users of a lower role (moderators on players, "
                "admins on players and moderators)",
            )
        row = await conn.fetchrow(
            f"UPDATE users SET {_CHANGES[action]}, updated_at = now() WHERE id = $1 "
            f"RETURNING {_STATE}",
            target["id"],
            *_arguments(action, reason, minutes, role),
        )
        await conn.execute(
            "INSERT INTO moderation_log "
            "(actor_id, actor, action, target_id, target, reason, until, role) "
            "VALUES ($1, $2, $3, $4, $5, $6, to_timestamp($7), $8)",
            actor.user_id,
            actor.name,
            action,
            row["id"],
            row["username"],
            reason,
            row["muted_until"] if action == "mute" else None,
            role,
        )
    return _outcome(action, row)


def _outcome(action: str, row: Any, chat_id: int | None = None) -> Outcome:
    return Outcome(
        action=action,
        user_id=row["id"],
        username=row["username"],
        role=row["role"],
        banned=row["banned"],
        muted_until=row["muted_until"],
        chat_id=chat_id,
    )


async def delete_chat(db: Database, actor: Actor, chat_id: int, reason: str = "") -> Outcome:
    """Mark chat line ``chat_id`` deleted (kept, never shown again) and log it."""
    unknown = ModerationRefused("unknown_chat", f"no chat line {chat_id} (or it was deleted)")
    if not 1 <= chat_id <= _PG_MAX_BIGINT:
        raise unknown
    async with _translated("a delete_chat"), db._pool.acquire() as conn, conn.transaction():
        author = await conn.fetchrow(
            "SELECT u.id, u.role FROM chat_messages m JOIN users u ON u.id = m.user_id "
            "WHERE m.id = $1 AND m.deleted_at IS NULL FOR UPDATE OF m",
            chat_id,
        )
        if author is None:
            raise unknown
        actor_role = await _actor_role(conn, actor)
        if actor_role is not None and RANK[actor_role] < RANK["moderator"]:
            raise ModerationRefused("forbidden", "only moderators and admins may moderate")
        own = actor.user_id == author["id"]
        if not own and not may_act(actor_role, actor.user_id, author["id"], author["role"]):
            raise ModerationRefused(
                "forbidden", "you may delete your own lines and those of users of a lower role"
            )
        await conn.execute("UPDATE chat_messages SET deleted_at = now() WHERE id = $1", chat_id)
        row = await conn.fetchrow(f"SELECT {_STATE} FROM users WHERE id = $1", author["id"])
        await conn.execute(
            "INSERT INTO moderation_log (actor_id, actor, action, target_id, target, reason, "
            "chat_id) VALUES ($1, $2, 'delete_chat', $3, $4, $5, $6)",
            actor.user_id,
            actor.name,
            row["id"],
            row["username"],
            reason,
            chat_id,
        )
    return _outcome("delete_chat", row, chat_id)


# -- the command line's channel to a running server (as grants.py's) --------------
