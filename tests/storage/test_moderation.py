"""Moderation's storage (storage/moderation.py, schema version 8): the migration of an
older database, the rules in PostgreSQL, and the append-only log."""

from __future__ import annotations

import pytest

from pillarpayout_ws.exceptions import StorageError
from pillarpayout_ws.storage import Storage
from pillarpayout_ws.storage.moderation import (
    Actor,
    ModerationRefused,
    delete_chat,
    moderate_user,
)

from .helpers import make_users


async def test_schema_version_7_adds_roles_and_moderation_to_an_older_database(
    storage: Storage,
) -> None:
    (user,) = await make_users(storage, 1)
    await storage.db.save_chat([(user.id, None, "old line")])
    for statement in (
        "DROP TABLE moderation_log",
        "ALTER TABLE users DROP COLUMN role, DROP COLUMN banned_at, DROP COLUMN ban_reason, "
        "DROP COLUMN muted_until, DROP COLUMN mute_reason",
        "ALTER TABLE chat_messages DROP COLUMN deleted_at",
        "DELETE FROM schema_version WHERE version = 8",
    ):
        await storage.db.execute(statement)
    await storage.db.apply_schema()
    again = await storage.db.user_by_id(user.id)
    assert again is not None
    assert (again.role, again.banned, again.muted_until) == ("player", False, None)
    assert [line[3] for line in await storage.db.recent_chat(10)] == ["old line"]
    with pytest.raises(StorageError, match="users_role_check"):
        await storage.db.execute("UPDATE users SET role = 'king'")
    outcome = await moderate_user(storage.db, Actor("cli:op"), "ban", user.username)
    assert outcome.banned
    with pytest.raises(StorageError, match="append-only"):
        await storage.db.execute("DELETE FROM moderation_log")


async def test_the_rules_are_checked_in_postgresql(storage: Storage) -> None:
    admin, mod, player = await make_users(storage, 3)
    cli = Actor("cli:op")
    await moderate_user(storage.db, cli, "role", admin.username, role="admin")
    await moderate_user(storage.db, cli, "role", mod.username, role="moderator")
    as_mod = Actor(mod.username, mod.id)
    for target in (admin.username, mod.username):
        with pytest.raises(ModerationRefused) as refused:
            await moderate_user(storage.db, as_mod, "ban", target)
        assert refused.value.code == "forbidden"
    with pytest.raises(ModerationRefused) as refused:
        await moderate_user(storage.db, Actor(player.username, player.id), "ban", mod.username)
    assert refused.value.code == "forbidden"
    with pytest.raises(ModerationRefused) as refused:
        await moderate_user(storage.db, as_mod, "role", player.username, role="admin")
    assert refused.value.code == "forbidden"  # roles only from the command line
    outcome = await moderate_user(storage.db, as_mod, "mute", player.username, minutes=1)
    assert outcome.muted_until is not None
    await storage.db.save_chat([(admin.id, None, "admin says"), (mod.id, None, "mod says")])
    ids = [r["id"] for r in await storage.db.fetch("SELECT id FROM chat_messages ORDER BY id")]
    with pytest.raises(ModerationRefused) as refused:
        await delete_chat(storage.db, as_mod, ids[0])
    assert refused.value.code == "forbidden"
    assert (await delete_chat(storage.db, as_mod, ids[1])).chat_id == ids[1]  # its own line
    for chat_id in (ids[1], 0, -1, 2**63, 2**70):
        with pytest.raises(ModerationRefused) as refused:
            await delete_chat(storage.db, as_mod, chat_id)
        assert refused.value.code == "unknown_chat"
    rows = await storage.db.fetch("SELECT actor, action FROM moderation_log ORDER BY id")
    assert [tuple(r) for r in rows] == [
        ("cli:op", "role"),
        ("cli:op", "role"),
        (mod.username, "mute"),
        (mod.username, "delete_chat"),
    ]
