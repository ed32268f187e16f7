"""register, login, resume, logout and expiry over real sockets."""

from __future__ import annotations

import hashlib

from .conftest import GameServer


async def test_register_login_resume(game_server: GameServer) -> None:
    alice, session = await game_server.register("alice")
    token = session["token"]
    assert len(token) >= 43  # 256 bits, base64url
    db = game_server.app.storage.db
    rows = await db.fetch("SELECT token_sha256 FROM sessions")
    assert [r["token_sha256"] for r in rows] == [hashlib.sha256(token.encode()).hexdigest()]
    stored = await db.fetch("SELECT password_hash FROM users WHERE username = 'alice'")
    assert stored[0]["password_hash"].startswith("$argon2id$v=19$m=65536,t=3,p=4$")

    other = await game_server.connect()
    await other.send(type="login", username="ALICE", password="correct horse battery")
    again = await other.next("session")
    assert again["user"]["id"] == session["user"]["id"]
    assert again["token"] != token

    third = await game_server.connect()
    await third.send(type="resume", token=token)
    resumed = await third.next("session")
    assert resumed["user"] == {"id": session["user"]["id"], "username": "alice", "balance": 100_000}
    for player in (alice, other, third):
        await player.close()


async def test_wrong_password_and_unknown_user_look_the_same(game_server: GameServer) -> None:
    alice, _ = await game_server.register("alice")
    await alice.send(type="login", username="alice", password="wrong password", ref="l1")
    wrong = await alice.next("error", ref="l1")
    await alice.send(type="login", username="nobody", password="wrong password", ref="l2")
    unknown = await alice.next("error", ref="l2")
    assert (wrong["code"], wrong["message"]) == (unknown["code"], unknown["message"])
    assert wrong["code"] == "invalid_credentials"
    await alice.close()


async def test_failed_logins_are_limited_per_account(game_server: GameServer) -> None:
    alice, _ = await game_server.register("alice")
    for i in range(5):
        await alice.send(type="login", username="alice", password="nope nope", ref=f"f{i}")
        assert (await alice.next("error", ref=f"f{i}"))["code"] == "invalid_credentials"
    # Even the right password is refused while the account is locked.
    await alice.send(type="login", username="alice", password="correct horse battery", ref="ok")
    assert (await alice.next("error", ref="ok"))["code"] == "rate_limited"
    await alice.close()


async def test_taken_names_and_emails(game_server: GameServer) -> None:
    alice, _ = await game_server.register("alice")
    await alice.send(
        type="register", username="Alice", email="x@example.com", password="long enough", ref="r1"
    )
    assert (await alice.next("error", ref="r1"))["code"] == "username_taken"
    await alice.send(
        type="register",
        username="alicia",
        email="alice@example.com",
        password="long enough",
        ref="r2",
    )
    assert (await alice.next("error", ref="r2"))["code"] == "email_taken"
    await alice.close()


async def test_logout_revokes_and_closes_the_other_sockets(game_server: GameServer) -> None:
    alice, session = await game_server.register("alice")
    second = await game_server.resume(session["token"])
    await alice.send(type="logout")
    await alice.next("logged_out")
    await second.closed
    assert second.ws.close_code == 4002
    # The socket that logged out is a spectator again; the token is dead.
    await alice.send(type="bet", amount=100, ref="x")
    assert (await alice.next("error", ref="x"))["code"] == "auth_required"
    await alice.send(type="resume", token=session["token"], ref="y")
    assert (await alice.next("error", ref="y"))["code"] == "invalid_session"
    await alice.close()


async def test_expired_session_is_refused(game_server: GameServer) -> None:
    alice, session = await game_server.register("alice")
    await game_server.app.storage.db.execute(
        "UPDATE sessions SET expires_at = now() - interval '1 second'"
    )
    other = await game_server.connect()
    await other.send(type="resume", token=session["token"], ref="r")
    assert (await other.next("error", ref="r"))["code"] == "invalid_session"
    for player in (alice, other):
        await player.close()
