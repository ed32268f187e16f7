"""Issue 7, item 10: accounts and sessions.

Extends tests/server/test_accounts.py (which covers register, login, resume,
expiry, the per-account limit and logout on one token):

- tokens and passwords exist nowhere in PostgreSQL, Redis or the logs, and a
  stored token hash is no key to anything;
- stored password hashes are argon2id at or above OWASP's parameters, and a
  weaker stored hash is upgraded at the next successful login;
- an unknown user and a wrong password get the same answer after the same
  work (one verification of a hash with the same parameters) and the same
  lockout;
- logout revokes its session and closes the other sockets on it; logout_all
  revokes every session of the user and closes every socket of theirs, and no
  one else's; a resume racing either is refused;
- spectators cannot act, and their attempts change nothing;
- the origin allowlist of a real ``pillarpayout serve`` is exact;
- SQL injection through every text field stores text, and changes nothing else.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from pathlib import Path
from typing import Any, Literal

import pytest
import redis.asyncio as aioredis
from argon2 import Parameters, PasswordHasher, Type, extract_parameters
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin

from ..serving import ServeProcess
from .conftest import Client, Rig, RigFactory, chain_where

PASSWORD = "correct horse battery"  # what Rig.register uses
# OWASP Password Storage Cheat Sheet, argon2id: m >= 19 MiB, t >= 2, p >= 1.
OWASP_MIN_MEMORY_KIB = 19_456
OWASP_MIN_TIME = 2


@pytest.fixture
async def rig(make_rig: RigFactory) -> Rig:
    top, _ = chain_where(lambda points: all(150 <= p <= 400 for p in points), rounds=4)
    # A long betting window (10 s of real time, never waited for): bets are
    # taken at any moment of a test, and a stop voids the round.
    return await make_rig(top, betting_ms=100_000)


async def error(player: Client, ref: str, **frame: object) -> dict[str, Any]:
    await player.send(**frame, ref=ref)
    answer = await player.answer(ref)
    assert answer["type"] == "error", answer
    return answer


async def text_columns(rig: Rig) -> list[tuple[str, str]]:
    rows = await rig.fetch(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() "
        "AND data_type IN ('text', 'character varying', 'character')"
    )
    return [(r["table_name"], r["column_name"]) for r in rows]


async def stored_anywhere(rig: Rig, needle: str) -> list[str]:
    """Every PostgreSQL column and Redis key whose contents hold ``needle``."""
    found = []
    for table, column in await text_columns(rig):
        rows = await rig.fetch(
            f'SELECT count(*) AS n FROM "{table}" WHERE strpos("{column}", $1) > 0', needle
        )
        if rows[0]["n"]:
            found.append(f"{table}.{column}")
    client = aioredis.Redis.from_url(rig.storage.live.url)
    try:
        async for key in client.scan_iter():
            kind = await client.type(key)
            kind = kind.decode() if isinstance(kind, bytes) else kind
            values: list[Any] = [key]
            if kind == "string":
                values.append(await client.get(key))
            elif kind == "list":
                values += await client.lrange(key, 0, -1)
            elif kind == "hash":
                values += [b for kv in (await client.hgetall(key)).items() for b in kv]
            elif kind == "zset":
                values += await client.zrange(key, 0, -1)
            if any(needle.encode() in bytes(value) for value in values):
                found.append(f"redis:{key.decode()}")
    finally:
        await client.aclose()
    return found


async def test_tokens_and_passwords_are_stored_only_as_hashes(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="pillarpayout")
    alice, session = await rig.register("alice")
    first = session["token"]
    second_socket = await rig.connect()
    await second_socket.send(type="login", username="alice", password=PASSWORD)
    second = (await second_socket.next("session"))["token"]
    await rig.login(first)  # a resume
    # Money and chat moved too, so Redis holds every kind of key it uses.
    await alice.send(type="bet", amount=100, ref="b")
    await alice.next("bet_accepted")
    await alice.send(type="chat", text="hi")
    await alice.next("chat")
    await rig.app.chat.save()

    assert first != second
    for secret in (first, second, PASSWORD):
        assert await stored_anywhere(rig, secret) == []
        assert secret not in caplog.text
    sessions = await rig.fetch("SELECT token_sha256 FROM sessions")
    assert sorted(r["token_sha256"] for r in sessions) == sorted(
        hashlib.sha256(t.encode()).hexdigest() for t in (first, second)
    )
    # What the database holds is no key: its hash, presented as a token, is refused.
    stranger = await rig.connect()
    for ref, token in (
        ("h1", sessions[0]["token_sha256"]),
        ("h2", first[:-1]),
        ("h3", first + "A"),
    ):
        assert (await error(stranger, ref, type="resume", token=token))["code"] == "invalid_session"


def assert_owasp(stored: str) -> Parameters:
    params = extract_parameters(stored)
    assert stored.startswith("$argon2id$")
    assert params.type is Type.ID
    assert params.memory_cost >= OWASP_MIN_MEMORY_KIB
    assert params.time_cost >= OWASP_MIN_TIME
    assert params.parallelism >= 1
    assert params.salt_len >= 16 and params.hash_len >= 32
    return params


async def password_hash(rig: Rig, username: str) -> str:
    rows = await rig.fetch("SELECT password_hash FROM users WHERE username = $1", username)
    return str(rows[0]["password_hash"])


async def test_password_hashes_are_argon2id_with_owasp_parameters(rig: Rig) -> None:
    await rig.register("alice")
    await rig.register("bob")  # the same password
    alice, bob = await password_hash(rig, "alice"), await password_hash(rig, "bob")
    assert assert_owasp(alice) == assert_owasp(bob)
    assert alice != bob  # salted

    # A hash from weaker times (argon2i, 8 MiB, t=1) is upgraded at the next
    # successful login, and only then.
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1, type=Type.I).hash(PASSWORD)
    await rig.storage.db.execute(
        "UPDATE users SET password_hash = $1 WHERE username = 'alice'", weak
    )
    player = await rig.connect()
    assert (await error(player, "w", type="login", username="alice", password="wrong!!!"))[
        "code"
    ] == "invalid_credentials"
    assert await password_hash(rig, "alice") == weak
    await player.send(type="login", username="alice", password=PASSWORD)
    await player.next("session")
    upgraded = await password_hash(rig, "alice")
    assert upgraded != weak
    assert assert_owasp(upgraded) == assert_owasp(bob)
    await player.send(type="login", username="alice", password=PASSWORD)  # and it still works
    await player.next("session")


class RecordingHasher(PasswordHasher):
    """argon2-cffi's defaults, noting the parameters of every hash it verifies."""

    verified: list[Parameters]

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        self.verified.append(extract_parameters(hash if isinstance(hash, str) else hash.decode()))
        return super().verify(hash, password)


async def test_unknown_user_and_wrong_password_look_the_same(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    hasher = RecordingHasher()
    hasher.verified = []
    defaults = extract_parameters(PasswordHasher().hash("x"))
    monkeypatch.setattr(rig.app.accounts, "_hasher", hasher)
    await rig.register("alice")
    player = await rig.connect()
    answers: dict[str, list[dict[str, Any]]] = {"alice": [], "nobody": []}
    for attempt in range(6):
        for name in answers:
            hasher.verified.clear()
            answer = await error(
                player, f"{name}-{attempt}", type="login", username=name, password="wrong horse"
            )
            answers[name].append({**answer, "ref": None})
            # The same work: one verification, of a hash with the same parameters.
            assert hasher.verified == ([] if attempt == 5 else [defaults])
    assert answers["alice"] == answers["nobody"]
    codes = [a["code"] for a in answers["alice"]]
    assert codes == ["invalid_credentials"] * 5 + ["rate_limited"]


async def test_logout_ends_its_session_and_logout_all_every_one(rig: Rig) -> None:
    alice, session = await rig.register("alice")
    same_session = await rig.login(session["token"])
    own_session = await rig.connect()
    await own_session.send(type="login", username="alice", password=PASSWORD)
    phone = await own_session.next("session")
    bob, _ = await rig.register("bob")
    spectator = await rig.connect()

    await alice.send(type="logout")
    await alice.next("logged_out")
    await same_session.closed
    assert same_session.ws.close_code == 4002
    # Another session of the user (another device) stays logged in...
    await own_session.send(type="bet", amount=100, ref="still-in")
    assert (await own_session.answer("still-in"))["type"] in ("bet_accepted", "error")
    assert (await error(alice, "y", type="resume", token=session["token"]))[
        "code"
    ] == "invalid_session"
    # ... until logout_all, which ends every session of the user.
    third = await rig.login(phone["token"])
    await own_session.send(type="logout_all")
    await own_session.next("logged_out")
    await third.closed
    assert third.ws.close_code == 4002
    assert (await error(own_session, "z", type="resume", token=phone["token"]))[
        "code"
    ] == "invalid_session"
    # Everyone else carries on.
    for player in (bob, spectator, alice, own_session):
        await player.send(type="ping", ref="still")
        await player.next("pong", ref="still")
    assert not bob.closed.done() and not spectator.closed.done()
    # The sockets that logged out watch.
    assert (await error(alice, "x", type="bet", amount=100))["code"] == "auth_required"
    revoked = await rig.fetch(
        "SELECT count(*) FILTER (WHERE revoked_at IS NULL) AS live FROM sessions s "
        "JOIN users u ON u.id = s.user_id WHERE u.username = 'alice'"
    )
    assert revoked[0]["live"] == 0


async def test_expired_and_revoked_tokens_are_refused(rig: Rig) -> None:
    _, fresh = await rig.register("alice")
    _, old = await rig.register("bob")
    _, gone = await rig.register("carol")
    digest = {
        name: hashlib.sha256(session["token"].encode()).hexdigest()
        for name, session in (("fresh", fresh), ("old", old), ("gone", gone))
    }
    db = rig.storage.db
    await db.execute(
        "UPDATE sessions SET expires_at = now() + interval '1 hour' WHERE token_sha256 = $1",
        digest["fresh"],
    )
    await db.execute(
        "UPDATE sessions SET expires_at = now() - interval '1 second' WHERE token_sha256 = $1",
        digest["old"],
    )
    await db.execute(
        "UPDATE sessions SET revoked_at = now() WHERE token_sha256 = $1", digest["gone"]
    )
    player = await rig.connect()
    await player.send(type="resume", token=fresh["token"])
    await player.next("session")
    for name, session in (("old", old), ("gone", gone)):
        answer = await error(player, name, type="resume", token=session["token"])
        assert answer["code"] == "invalid_session"
    # Refused resumes do not log the connection out of the session it has.
    await player.send(type="bet", amount=100, ref="still-alice")
    assert (await player.answer("still-alice"))["type"] == "bet_accepted"


async def test_spectators_cannot_act_and_change_nothing(rig: Rig) -> None:
    watcher = await rig.connect()
    spectator = await rig.connect()
    await spectator.next("hello")
    frames: list[dict[str, object]] = [
        {"type": "bet", "amount": 100, "auto_cashout": 2.0},
        {"type": "cashout"},
        {"type": "chat", "text": "free money"},
        {"type": "logout"},
    ]
    attempts: list[dict[str, object]] = [*frames, {"type": "resume", "token": "nope"}, *frames]
    for i, frame in enumerate(attempts):
        code = (await error(spectator, f"s{i}", **frame))["code"]
        assert code == ("invalid_session" if frame["type"] == "resume" else "auth_required")
    # Nothing reached the game, the chat or the write-ahead.
    await spectator.send(type="ping", ref="end")
    await spectator.next("pong", ref="end")
    assert rig.app.chat.unsaved == 0 and rig.app.chat.recent() == []
    assert rig.app.runner.game.snapshot().bets == ()
    client = aioredis.Redis.from_url(rig.storage.live.url)
    try:
        wal = [
            r for key in await client.keys("pp:round:*") for r in await client.lrange(key, 0, -1)
        ]
        assert not any(b"BetPlaced" in r for r in wal)
    finally:
        await client.aclose()
    assert not any(f["type"] in ("chat", "bets") for f in watcher.frames)


async def test_the_origin_allowlist_of_a_real_server(tmp_path: Path) -> None:
    serve = ServeProcess(
        tmp_path / "data",
        "--allowed-origin",
        "https://play.example",
        "--allowed-origin",
        "https://www.play.example",
        "--chain-length",
        "100",
    )
    try:
        await asyncio.to_thread(serve.wait_healthy)
        url = f"ws://127.0.0.1:{serve.port}/ws"
        refused = [
            "https://evil.example",
            "http://play.example",  # another scheme
            "https://play.example:8443",  # another port
            "https://play.example.evil.example",
            "https://evil.example/https://play.example",
            "https://PLAY.example",  # browsers send origins in lower case: exact match
            "null",  # sandboxed frames, file: pages
        ]
        for origin in refused:
            with pytest.raises(InvalidStatus) as refusal:
                await connect(url, origin=Origin(origin))
            assert refusal.value.response.status_code == 403, origin
        for allowed in (Origin("https://play.example"), Origin("https://www.play.example"), None):
            async with connect(url, origin=allowed) as ws:
                assert b'"type":"hello"' in (await ws.recv(decode=False))
        assert await asyncio.to_thread(serve.terminate) == 0
    finally:
        if serve.proc.poll() is None:
            serve.kill9()


INJECTIONS = [
    "' OR '1'='1",
    "'; DROP TABLE users; --",
    '"; DELETE FROM ledger; --',
    "'); UPDATE users SET balance = 999999999; --",
    "$1$2$$; TRUNCATE sessions; $$",
    "\\'; SELECT pg_sleep(30); --",
    "%s%s%s' UNION SELECT password_hash FROM users --",
    "alice'--",
    "\u02bc OR 1=1 --",  # a modifier apostrophe, for quote-normalising layers
]


@pytest.fixture
async def cheap_hashing(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> Rig:
    # The hashing cost has its own test; here it would only slow each login.
    monkeypatch.setattr(rig.app.accounts, "_hasher", PasswordHasher(1, 1024, 1))
    return rig


async def table_counts(rig: Rig) -> dict[str, int]:
    tables = {table for table, _ in await text_columns(rig)}
    counts = {}
    for table in sorted(tables):
        rows = await rig.fetch(f'SELECT count(*) AS n FROM "{table}"')
        counts[table] = rows[0]["n"]
    return counts


async def test_sql_injection_through_every_text_field_changes_nothing(
    cheap_hashing: Rig,
) -> None:
    rig = cheap_hashing
    _, victim_session = await rig.register("victim")
    victim_id = victim_session["user"]["id"]
    before = await table_counts(rig)
    users_before = await rig.fetch("SELECT * FROM users ORDER BY id")

    # Fields that only look things up: login's username and password, resume's
    # token, every frame's ref. Each is refused, and nothing changes.
    probe = await rig.connect()
    for i, payload in enumerate(INJECTIONS):
        for frame in (
            {"type": "login", "username": payload[:32], "password": payload},
            {"type": "login", "username": "victim", "password": payload},
            {"type": "resume", "token": payload},
        ):
            answer = await error(probe, f"i{i}", **frame)
            assert answer["code"] in ("invalid_credentials", "invalid_session", "rate_limited")
        await probe.send(type="ping", ref=payload[:64])
        assert (await probe.next("pong"))["ref"] == payload[:64]
    assert await table_counts(rig) == before
    assert await rig.fetch("SELECT * FROM users ORDER BY id") == users_before

    # Fields that are stored: register's email and password, chat text, bet ref.
    # Each is stored as the very text sent, and nothing else moves.
    registered = []
    for i, payload in enumerate(INJECTIONS):
        email = payload.replace(" ", "/**/") + f"@inj{i}.example"
        player = await rig.connect()
        await player.send(
            type="register", username=f"inj{i}", email=email, password=payload + "-long", ref="r"
        )
        session = await player.next_where(lambda f: f["type"] in ("session", "error"))
        assert session["type"] == "session", session
        registered.append((session["user"]["id"], email, payload))
        await player.send(type="chat", text=payload, ref="c")
        await player.next("chat", text=payload)
        await player.send(type="bet", amount=100, ref=payload[:64])
        assert (await player.answer(payload[:64]))["type"] == "bet_accepted"
        login = await rig.connect()
        await login.send(type="login", username=f"inj{i}", password=payload + "-long")
        await login.next("session")
    # A username with SQL in it never gets that far.
    registrar = await rig.connect()
    for i, payload in enumerate(INJECTIONS):
        answer = await error(
            registrar,
            f"u{i}",
            type="register",
            username=payload,
            email="x@y.example",
            password="p" * 8,
        )
        assert answer["code"] == "invalid_username"

    await rig.app.chat.save()
    await rig.stop()  # flushes the round (void: refunds every bet)
    for user_id, email, payload in registered:
        (user,) = await rig.fetch("SELECT email, balance FROM users WHERE id = $1", user_id)
        assert (user["email"], user["balance"]) == (email, 100_000)
        (bet,) = await rig.fetch("SELECT ref FROM bets WHERE user_id = $1", user_id)
        assert bet["ref"] == payload[:64]
        (line,) = await rig.fetch("SELECT message FROM chat_messages WHERE user_id = $1", user_id)
        assert line["message"] == payload
    # The players' totals may or may not have been summed before the stop: now they are.
    while await rig.app.storage.db.summarise_bets():
        pass
    after = await table_counts(rig)
    n = len(INJECTIONS)
    # Per new user: a user row, 2 sessions (register, login), a grant + a bet +
    # its refund in the ledger, a bet, a chat line, its totals for the day,
    # the week and all time; plus the round.
    expected = {
        **before,
        "users": before["users"] + n,
        "sessions": before["sessions"] + 2 * n,
        "ledger": before["ledger"] + 3 * n,
        "bets": before["bets"] + n,
        "chat_messages": before["chat_messages"] + n,
        "player_stats": before["player_stats"] + 3 * n,
        "rounds": before["rounds"] + 1,
    }
    assert after == expected
    assert await rig.balance(victim_id) == 100_000
    await rig.assert_audit_clean()
