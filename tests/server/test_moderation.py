"""Roles and moderation (server/moderation.py, storage/moderation.py) over real sockets
and real storage: who may act on whom, mutes, bans, deleted chat lines, the log."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from typing import Any

import orjson
import pytest

from pillarpayout_ws.exceptions import StorageError
from pillarpayout_ws.server.app import App
from pillarpayout_ws.server.clock import ManualClock
from pillarpayout_ws.server.moderation import BANNED_CLOSE, moderate
from pillarpayout_ws.storage import Storage
from pillarpayout_ws.storage.moderation import ModerationRefused

from ..conftest import another_process
from .conftest import GameServer, ManualGame, Player, fast_config, start_game


async def make_role(game: GameServer, username: str, role: str) -> None:
    """``pillarpayout role USERNAME ROLE`` as the command line does it, through the server."""
    other = await another_process(game.app.storage)
    try:
        outcome, via = await moderate(other, "role", username, actor="cli:test", role=role)
    finally:
        await other.close()
    assert (outcome.role, via) == (role, "through the running server")


async def error_for(player: Player, ref: str, **frame: Any) -> dict[str, Any]:
    await player.send(**frame, ref=ref)
    answer = await player.answer(ref)
    assert answer["type"] == "error", answer
    return answer


async def log_rows(game: GameServer) -> list[dict[str, Any]]:
    rows = await game.app.storage.db.fetch(
        "SELECT actor, action, target, reason, until, chat_id, role FROM moderation_log ORDER BY id"
    )
    return [dict(r) for r in rows]


async def test_a_role_reaches_live_connections_and_the_session(manual_game: ManualGame) -> None:
    alice, session = await manual_game.register("alice")
    assert session["user"]["role"] == "player"
    await make_role(manual_game, "alice", "moderator")
    assert await alice.next("role") == {"type": "role", "role": "moderator"}
    again = await manual_game.connect()
    await again.send(type="resume", token=session["token"])
    assert (await again.next("session"))["user"]["role"] == "moderator"
    assert [
        (r["actor"], r["action"], r["target"], r["role"]) for r in await log_rows(manual_game)
    ] == [("cli:test", "role", "alice", "moderator")]
    for player in (alice, again):
        await player.close()


async def test_players_may_not_moderate(manual_game: ManualGame) -> None:
    bob, _ = await manual_game.register("bob")
    carol, _ = await manual_game.register("carol")
    frames: list[dict[str, Any]] = [
        {"type": "mute", "username": "carol", "minutes": 5},
        {"type": "unmute", "username": "carol"},
        {"type": "ban", "username": "carol"},
        {"type": "unban", "username": "carol"},
        {"type": "delete_chat", "id": 1},
    ]
    for i, frame in enumerate(frames):
        assert (await error_for(bob, f"f{i}", **frame))["code"] == "forbidden"
    spectator = await manual_game.connect()
    await spectator.next("hello")
    assert (await error_for(spectator, "s", type="ban", username="bob"))["code"] == (
        "auth_required"
    )
    assert await log_rows(manual_game) == []
    await carol.send(type="chat", text="still here")
    await carol.next("chat")
    for player in (bob, carol, spectator):
        await player.close()


async def test_mute_refuses_chat_with_the_time_left_until_unmute(manual_game: ManualGame) -> None:
    mod, _ = await manual_game.register("mod")
    bob, _ = await manual_game.register("bob")
    await make_role(manual_game, "mod", "moderator")
    await mod.next("role")
    for i, minutes in enumerate([0, -1, 43_201, 2**62, 1e30, 2.5, "10", None, True]):
        error = await error_for(mod, f"m{i}", type="mute", username="bob", minutes=minutes)
        assert error["code"] == "invalid_minutes"
    error = await error_for(mod, "nobody", type="mute", username="nobody", minutes=5)
    assert error["code"] == "unknown_user"

    before = time.time()
    await mod.send(type="mute", username="BOB", minutes=10, reason="spam", ref="mute")
    done = await mod.answer("mute")
    assert (done["type"], done["action"], done["username"]) == ("moderated", "mute", "bob")
    assert before + 599 < done["until"] < time.time() + 601
    told = await bob.next("muted")
    assert (told["until"], told["reason"]) == (done["until"], "spam")
    error = await error_for(bob, "c", type="chat", text="hello?")
    assert error["code"] == "muted" and "10 more minute" in error["message"]

    await mod.send(type="unmute", username="bob", ref="unmute")
    assert (await mod.answer("unmute"))["action"] == "unmute"
    assert await bob.next("muted") == {"type": "muted", "until": None, "reason": ""}
    await bob.send(type="chat", text="thanks")
    assert (await bob.next("chat"))["text"] == "thanks"
    rows = await log_rows(manual_game)
    assert [(r["actor"], r["action"], r["target"], r["reason"]) for r in rows[1:]] == [
        ("mod", "mute", "bob", "spam"),
        ("mod", "unmute", "bob", ""),
    ]
    assert rows[1]["until"] is not None
    for player in (mod, bob):
        await player.close()


async def test_a_ban_closes_every_socket_and_refuses_login_and_resume(
    manual_game: ManualGame,
) -> None:
    mod, _ = await manual_game.register("mod")
    bob, session = await manual_game.register("bob")
    await make_role(manual_game, "mod", "moderator")
    await mod.next("role")
    second = await manual_game.resume(session["token"])  # bob's already-open second socket
    await mod.send(type="ban", username="bob", reason="cheating", ref="ban")
    assert (await mod.answer("ban"))["action"] == "ban"
    for socket in (bob, second):
        await socket.closed
        assert socket.ws.close_code == BANNED_CLOSE == 4003

    again = await manual_game.connect()
    await again.next("hello")
    error = await error_for(again, "r", type="resume", token=session["token"])
    assert error["code"] == "banned"
    error = await error_for(
        again, "l", type="login", username="bob", password="correct horse battery"
    )
    assert error["code"] == "banned"
    wrong = await error_for(again, "w", type="login", username="bob", password="wrong password")
    assert wrong["code"] == "invalid_credentials"  # a ban says nothing without the password

    await mod.send(type="unban", username="bob", ref="unban")
    assert (await mod.answer("unban"))["action"] == "unban"
    await again.send(type="resume", token=session["token"])
    assert (await again.next("session"))["user"]["username"] == "bob"
    for player in (mod, again):
        await player.close()


async def test_who_may_act_on_whom(manual_game: ManualGame) -> None:
    """Moderators act on players; admins on players and moderators; nobody on an
    admin or on themselves over the wire."""
    admin, _ = await manual_game.register("admin")
    mod, _ = await manual_game.register("mod")
    mod2, _ = await manual_game.register("mod2")
    for name, role in (("admin", "admin"), ("mod", "moderator"), ("mod2", "moderator")):
        await make_role(manual_game, name, role)
    for actor, target in ((mod, "admin"), (mod, "mod2"), (mod, "mod"), (admin, "admin")):
        for kind in ("ban", "unban", "unmute"):
            error = await error_for(actor, f"{kind}-{target}", type=kind, username=target)
            assert error["code"] == "forbidden"
        error = await error_for(actor, f"m-{target}", type="mute", username=target, minutes=1)
        assert error["code"] == "forbidden"
    await admin.send(type="mute", username="mod2", minutes=1, ref="ok")
    assert (await admin.answer("ok"))["type"] == "moderated"
    assert [r["action"] for r in await log_rows(manual_game)] == ["role"] * 3 + ["mute"]
    for player in (admin, mod, mod2):
        await player.close()


async def test_delete_chat_broadcasts_and_keeps_the_line_marked(manual_game: ManualGame) -> None:
    app = manual_game.app
    mod, _ = await manual_game.register("mod")
    bob, _ = await manual_game.register("bob")
    await make_role(manual_game, "mod", "moderator")
    spectator = await manual_game.connect()
    await spectator.next("hello")
    await bob.send(type="chat", text="buy my coins")
    line = await spectator.next("chat")
    await bob.send(type="chat", text="gl all")
    kept = await spectator.next("chat")
    assert isinstance(line["id"], int) and kept["id"] == line["id"] + 1

    # At once, before the line is stored: the delete stores it first.
    await mod.send(type="delete_chat", id=line["id"], reason="scam", ref="d")
    assert (await spectator.next("chat_deleted")) == {"type": "chat_deleted", "id": line["id"]}
    done = await mod.answer("d")
    assert (done["action"], done["id"], done["username"]) == ("delete_chat", line["id"], "bob")

    newcomer = await manual_game.connect()
    hello = await newcomer.next("hello")
    assert [(c["id"], c["text"]) for c in hello["chat"]] == [(kept["id"], "gl all")]
    url = f"http://127.0.0.1:{app.port}/api/chat"
    body = await asyncio.to_thread(lambda: orjson.loads(urllib.request.urlopen(url).read()))
    assert [c["id"] for c in body["chat"]] == [kept["id"]]
    await app.chat.save()
    rows = await app.storage.db.fetch(
        "SELECT id, message, deleted_at IS NOT NULL AS deleted FROM chat_messages ORDER BY id"
    )
    assert [tuple(r) for r in rows] == [
        (line["id"], "buy my coins", True),
        (kept["id"], "gl all", False),
    ]
    # What a restarted server starts from leaves it out too.
    assert [r[0] for r in await app.storage.db.recent_chat(50)] == [kept["id"]]
    for ref, chat_id in (("again", line["id"]), ("none", 10**12), ("zero", 0), ("neg", -3)):
        error = await error_for(mod, ref, type="delete_chat", id=chat_id)
        assert error["code"] == "unknown_chat"
    log = await log_rows(manual_game)
    assert (log[-1]["action"], log[-1]["chat_id"], log[-1]["reason"]) == (
        "delete_chat",
        line["id"],
        "scam",
    )
    for player in (mod, bob, spectator, newcomer):
        await player.close()


async def test_bans_and_mutes_survive_a_restart(storage_for_game: Storage) -> None:
    app = await start_game(storage_for_game, clock=ManualClock(), stop_timeout_s=0)
    try:
        game = GameServer(app)
        mod, _ = await game.register("mod")
        _bob, bob_session = await game.register("bob")
        _carol, carol_session = await game.register("carol")
        await make_role(game, "mod", "moderator")
        await mod.send(type="ban", username="bob", ref="b")
        await mod.answer("b")
        await mod.send(type="mute", username="carol", minutes=60, ref="m")
        await mod.answer("m")
        await app.chat.save()
    finally:
        await app.stop()
    app = App(fast_config(), storage_for_game, clock=ManualClock(), stop_timeout_s=0)
    await app.start()
    try:
        game = GameServer(app)
        player = await game.connect()
        await player.next("hello")
        error = await error_for(player, "r", type="resume", token=bob_session["token"])
        assert error["code"] == "banned"
        await player.send(type="resume", token=carol_session["token"])
        await player.next("session")
        error = await error_for(player, "c", type="chat", text="can I talk?")
        assert error["code"] == "muted" and "60 more minute" in error["message"]
        mod2 = await game.connect()
        await mod2.send(type="login", username="mod", password="correct horse battery")
        assert (await mod2.next("session"))["user"]["role"] == "moderator"
        for p in (player, mod2):
            await p.close()
    finally:
        await app.stop()


async def test_the_log_is_append_only(manual_game: ManualGame) -> None:
    _alice, _ = await manual_game.register("alice")
    await make_role(manual_game, "alice", "moderator")
    db = manual_game.app.storage.db
    for statement in (
        "UPDATE moderation_log SET reason = 'rewritten'",
        "DELETE FROM moderation_log",
        "TRUNCATE moderation_log",
    ):
        with pytest.raises(StorageError, match="append-only"):
            await db.execute(statement)
    assert len(await log_rows(manual_game)) == 1
    await _alice.close()


async def test_a_moderation_flood_is_rate_limited(manual_game: ManualGame) -> None:
    mod, _ = await manual_game.register("mod")
    await make_role(manual_game, "mod", "moderator")
    for i in range(80):
        await mod.send(type="mute", username="nobody", minutes=1, ref=f"f{i}")
    errors = [await mod.next("error") for _ in range(80)]  # one answer a frame
    codes = [e["code"] for e in errors]
    assert set(codes) == {"rate_limited", "unknown_user"}
    # About the burst passes (40 frames, the register spent one), then the frame
    # budget refuses without a look at storage.
    assert codes.count("unknown_user") >= 30 and codes.count("rate_limited") >= 10
    assert {e["ref"] for e in errors if e["code"] == "rate_limited"} == {None}
    assert [r["action"] for r in await log_rows(manual_game)] == ["role"]
    await mod.close()


async def test_from_the_command_line_without_a_server(storage: Storage) -> None:
    from ..storage.helpers import make_users

    (user,) = await make_users(storage, 1)
    outcome, via = await moderate(storage, "mute", user.username, actor="cli:op", minutes=5)
    assert via == "in PostgreSQL (no server running)"
    assert outcome.muted_until is not None and outcome.muted_until > time.time() + 290
    outcome, _ = await moderate(storage, "ban", user.username, actor="cli:op", reason="x")
    assert outcome.banned
    with pytest.raises(ModerationRefused) as refused:
        await moderate(storage, "ban", "nobody", actor="cli:op")
    assert refused.value.code == "unknown_user"
    rows = await storage.db.fetch("SELECT actor, action FROM moderation_log ORDER BY id")
    assert [tuple(r) for r in rows] == [("cli:op", "mute"), ("cli:op", "ban")]


async def test_the_commands_through_a_running_server(manual_game: ManualGame) -> None:
    """`pillarpayout role/mute/ban/unban` while a server runs: through it, felt at once."""
    from ..test_cli import run_cli_async, storage_flags

    flags = storage_flags(manual_game.app.storage)
    bob, session = await manual_game.register("bob")
    code, out, err = await run_cli_async("role", *flags, "bob", "admin")
    assert code == 0, err
    assert out.endswith("bob is now admin (user 1) through the running server\n")
    assert await bob.next("role") == {"type": "role", "role": "admin"}
    code, out, err = await run_cli_async("mute", *flags, "bob", "3", "--reason", "calm down")
    assert code == 0 and "bob is muted for 3 minute(s)" in out, err
    assert (await error_for(bob, "c", type="chat", text="hi"))["code"] == "muted"
    code, out, err = await run_cli_async("ban", *flags, "bob", "--reason", "x")
    assert code == 0 and "through the running server" in out, err
    await bob.closed
    assert bob.ws.close_code == 4003
    code, _, err = await run_cli_async("ban", *flags, "nobody")
    assert code == 2 and "no user named 'nobody'" in err
    code, _, err = await run_cli_async("unban", *flags, "bob")
    assert code == 0, err
    again = await manual_game.resume(session["token"])
    actions = [(r["actor"].startswith("cli:"), r["action"]) for r in await log_rows(manual_game)]
    assert actions == [(True, a) for a in ("role", "mute", "ban", "unban")]
    await again.close()


async def test_a_late_or_malformed_request_is_never_applied(manual_game: ManualGame) -> None:
    import redis.asyncio as aioredis

    from pillarpayout_ws.server.moderation import ModerationDesk
    from pillarpayout_ws.storage.live import MODERATION_DESK

    app = manual_game.app
    bob, _ = await manual_game.register("bob")
    late = {
        "key": "late",
        "actor": "cli:x",
        "action": "ban",
        "username": "bob",
        "reason": "",
        "minutes": None,
        "role": None,
        "deadline": time.time() - 1,
    }
    client = aioredis.Redis.from_url(app.storage.live.url)
    try:
        for request in (
            late,
            {"key": "junk"},
            {**late, "deadline": time.time() + 10, "minutes": 5},
        ):
            await client.rpush(MODERATION_DESK.requests, orjson.dumps(request))
        await ModerationDesk(app.storage, app.moderation).take()  # or the server's own desk did
        assert await client.llen(MODERATION_DESK.requests) == 0
        assert (
            await client.exists(
                MODERATION_DESK.reply_key("late"), MODERATION_DESK.reply_key("junk")
            )
            == 0
        )
    finally:
        await client.aclose()
    assert await log_rows(manual_game) == []
    await bob.send(type="ping", ref="alive")
    await bob.answer("alive")  # still logged in, and the server still runs
    assert not app._stopping.is_set()
    await bob.close()
