"""Accounts (server/auth.py) over real sockets: register, login, resume, logout and
expiry, and what they cost an attacker."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from argon2 import PasswordHasher
from websockets.asyncio.client import connect

from pillarpayout_ws.server.app import App
from pillarpayout_ws.server.auth import (
    FAILURES_PER_ACCOUNT,
    FAILURES_PER_IP,
    FAILURES_PER_PAIR,
    HASH_SLOTS,
    LOGIN_RESERVED,
    REGISTER_ATTEMPTS_PER_IP,
    REGISTER_PER_IP,
    SLOWDOWN_S,
    SlidingWindow,
)
from pillarpayout_ws.storage import Storage

from .conftest import GameServer, ManualGame, Player, start_game

PASSWORD = "correct horse battery"


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
    assert resumed["user"] == {
        "id": session["user"]["id"],
        "username": "alice",
        "balance": 100_000,
        "role": "player",
    }
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


@pytest.fixture
async def limited_server(storage_for_game: Storage) -> AsyncIterator[GameServer]:
    """A game whose per-address limits apply to loopback (no --exempt-loopback), with
    a cheap argon2 (the work is not what these tests measure)."""
    app = await start_game(storage_for_game, exempt_loopback=False)
    app.accounts._hasher = PasswordHasher(1, 1024, 1)
    try:
        yield GameServer(app)
    finally:
        await app.stop()


async def register(player: Player, name: str, ref: str) -> dict[str, Any]:
    await player.send(
        type="register", username=name, email=f"{name}@example.com", password=PASSWORD, ref=ref
    )
    return await answered(player, ref)


async def answered(player: Player, ref: str) -> dict[str, Any]:
    """The answer to a register, login or resume: its session, or its error."""
    return await player.next_where(lambda f: f["type"] == "session" or f.get("ref") == ref)


async def test_a_new_account_says_what_it_was_granted(game_server: GameServer) -> None:
    player = await game_server.connect()
    await player.next("hello")
    session = await register(player, "ada", "r")
    assert session["type"] == "session"
    balance = await player.next("balance")
    assert (balance["balance"], balance["amount"], balance["reason"]) == (100_000, 100_000, "grant")
    await player.close()


async def test_registrations_per_address_are_limited(limited_server: GameServer) -> None:
    player = await limited_server.connect()
    await player.next("hello")
    answers = [
        (await register(player, f"user{i}", f"r{i}"))["type"] for i in range(REGISTER_PER_IP)
    ]
    assert answers == ["session"] * REGISTER_PER_IP
    refused = await register(player, "one-more", "late")
    assert (refused["type"], refused["code"]) == ("error", "rate_limited")
    rows = await limited_server.app.storage.db.fetch(
        "SELECT 1 FROM users WHERE username = 'one-more'"
    )
    assert rows == []
    await player.close()


async def test_a_registration_flood_cannot_starve_logins(
    game_server: GameServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Registrations hold at most part of the hashing queue: the next one gets
    `busy` at once, and a login still gets a slot."""
    db = game_server.app.storage.db
    await game_server.register("alice")  # before the flood
    held = HASH_SLOTS - LOGIN_RESERVED
    flooded, login_in, go_on = asyncio.Event(), asyncio.Event(), asyncio.Event()
    inside = 0
    user_by_name = db.user_by_name

    async def held_lookup(username: str) -> Any:
        # Each holds its hashing slot from here on, until its hash is done.
        nonlocal inside
        inside += 1
        if inside == held:
            flooded.set()
        elif inside == held + 1:
            login_in.set()
        await go_on.wait()
        return await user_by_name(username)

    monkeypatch.setattr(db, "user_by_name", held_lookup)
    flood = [await game_server.connect() for _ in range(held + 1)]
    for i, player in enumerate(flood[:held]):
        await player.send(
            type="register", username=f"flood{i}", email=f"f{i}@x.io", password=PASSWORD, ref="r"
        )
    await asyncio.wait_for(flooded.wait(), 30)
    busy = await register(flood[held], "one-more", "late")
    assert (busy["type"], busy["code"]) == ("error", "busy")
    login = await game_server.connect()
    await login.send(type="login", username="alice", password=PASSWORD, ref="in")
    await asyncio.wait_for(login_in.wait(), 30)  # it got a slot beside the flood's
    go_on.set()
    assert (await answered(login, "in"))["type"] == "session"
    assert [(await answered(p, "r"))["type"] for p in flood[:held]] == ["session"] * held
    for player in (*flood, login):
        await player.close()


async def test_failures_from_one_address_lock_only_that_address(
    game_server: GameServer,
) -> None:
    """Five wrong passwords from one address lock that address out of the account;
    the owner, elsewhere, logs in."""
    await game_server.register("alice")
    attacker = Player(await connect(game_server.url, local_addr=("127.0.0.2", 0)))
    for i in range(FAILURES_PER_PAIR):
        await attacker.send(type="login", username="alice", password="nope nope", ref=f"f{i}")
        assert (await attacker.next("error", ref=f"f{i}"))["code"] == "invalid_credentials"
    await attacker.send(type="login", username="alice", password=PASSWORD, ref="ok")
    assert (await attacker.next("error", ref="ok"))["code"] == "rate_limited"
    owner = await game_server.connect()
    await owner.send(type="login", username="alice", password=PASSWORD, ref="me")
    assert (await answered(owner, "me"))["type"] == "session"
    for player in (attacker, owner):
        await player.close()


async def test_failures_from_many_addresses_slow_the_account_never_lock_it(
    game_server: GameServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    accounts = game_server.app.accounts
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    monkeypatch.setattr(accounts, "_sleep", sleep)
    await game_server.register("alice")
    for i in range(FAILURES_PER_ACCOUNT + 2):
        spread = Player(await connect(game_server.url, local_addr=(f"127.0.1.{i + 1}", 0)))
        await spread.send(type="login", username="alice", password="nope nope", ref="f")
        assert (await spread.next("error", ref="f"))["code"] == "invalid_credentials"
        await spread.close()
    assert delays == [SLOWDOWN_S, 2 * SLOWDOWN_S]
    owner = await game_server.connect()
    await owner.send(type="login", username="alice", password=PASSWORD, ref="me")
    assert (await answered(owner, "me"))["type"] == "session"
    assert delays[-1] == 3 * SLOWDOWN_S  # slowed too, but let in
    await owner.close()


async def test_a_resume_racing_logout_all_stays_out(
    game_server: GameServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The resume read a live session; logout_all revokes it before the resume
    finishes: it must not end logged in."""
    db = game_server.app.storage.db
    alice, session = await game_server.register("alice")
    read, go_on = asyncio.Event(), asyncio.Event()
    session_user = db.session_user

    async def slow_session_user(digest: str) -> Any:
        row = await session_user(digest)
        read.set()
        await go_on.wait()
        return row

    monkeypatch.setattr(db, "session_user", slow_session_user)
    racer = await game_server.connect()
    await racer.send(type="resume", token=session["token"], ref="race")
    await read.wait()  # PostgreSQL has said "live"
    await alice.send(type="logout_all")
    await alice.next("logged_out")
    go_on.set()
    answer = await answered(racer, "race")
    assert (answer["type"], answer["code"]) == ("error", "invalid_session")
    await racer.send(type="bet", amount=100, ref="b")
    assert (await racer.next("error", ref="b"))["code"] == "auth_required"
    for player in (alice, racer):
        await player.close()


async def test_emails_are_unique_whatever_their_case(game_server: GameServer) -> None:
    alice, _ = await game_server.register("alice")
    await alice.send(
        type="register", username="alicia", email="ALICE@Example.COM", password=PASSWORD, ref="r"
    )
    assert (await alice.next("error", ref="r"))["code"] == "email_taken"
    await alice.close()


def count_hashes(app: App, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """From now on a (cheap) password hash of ``app``'s appends to the list returned."""
    hashed: list[str] = []
    real = PasswordHasher(1, 1024, 1)

    class Counting(PasswordHasher):
        def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
            hashed.append("x")
            return real.hash(password)

    monkeypatch.setattr(app.accounts, "_hasher", Counting())
    return hashed


async def test_a_taken_username_costs_the_same_work_as_a_new_one(
    game_server: GameServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`username_taken` must not answer faster than a new account (an enumeration
    oracle by timing): both hash the password once."""
    hashed = count_hashes(game_server.app, monkeypatch)
    player = await game_server.connect()
    await player.next("hello")
    assert (await register(player, "taken", "a"))["type"] == "session"
    assert len(hashed) == 1
    refused = await register(player, "TAKEN", "b")
    assert (refused["type"], refused["code"]) == ("error", "username_taken")
    assert len(hashed) == 2
    await player.close()


async def test_registering_taken_names_is_limited_before_the_hash(
    limited_server: GameServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refused registration costs a password hash too (so that its time does not
    tell a taken name): an address gets REGISTER_ATTEMPTS_PER_IP an hour, then
    `rate_limited` before any hashing. Before, only accounts made were counted:
    a loop of `register` with a taken name held the hashing slots forever."""
    hashed = count_hashes(limited_server.app, monkeypatch)
    player = await limited_server.connect()
    await player.next("hello")
    assert (await register(player, "taken", "first"))["type"] == "session"
    for i in range(REGISTER_ATTEMPTS_PER_IP - 1):
        assert (await register(player, "taken", f"again{i}"))["code"] == "username_taken"
    refused = await register(player, "taken", "late")
    assert (refused["type"], refused["code"]) == ("error", "rate_limited")
    assert len(hashed) == REGISTER_ATTEMPTS_PER_IP
    await player.close()


def test_failure_records_of_keys_never_seen_again_are_swept() -> None:
    """A failed login of a name nobody tries again left its record for the life of
    the process (a new name each time: memory without end)."""
    window = SlidingWindow(5, 300.0)
    for i in range(10_000):
        window.add(f"name{i}", float(i) / 100)  # 100 s of failures, each a new name
    assert len(window._events) == 10_000  # all in the window still
    window.add("late", 1000.0)  # long after every one of them
    assert list(window._events) == ["late"]


async def test_resumes_of_made_up_tokens_count_as_failures_of_the_address(
    limited_server: GameServer,
) -> None:
    """Each `resume` asks PostgreSQL; one address sending made-up tokens is
    refused after FAILURES_PER_IP of them, before any query, as for failed
    logins (and its logins with them)."""
    players = [await limited_server.connect() for _ in range(2)]
    for player in players:
        await player.next("hello")
    for i in range(FAILURES_PER_IP):
        player = players[i % 2]
        await player.send(type="resume", token=f"made-up-{i}", ref=f"r{i}")
        assert (await answered(player, f"r{i}"))["code"] == "invalid_session"
    await players[0].send(type="resume", token="made-up-last", ref="last")
    refused = await answered(players[0], "last")
    assert (refused["code"], refused["message"]) == (
        "rate_limited",
        "too many failed logins; try again later",
    )
    await players[1].send(type="login", username="anyone", password=PASSWORD, ref="in")
    assert (await answered(players[1], "in"))["code"] == "rate_limited"
    for player in players:
        await player.close()


async def test_failed_logins_made_at_once_are_counted_before_they_fail(
    limited_server: GameServer,
) -> None:
    """Wrong passwords sent at once from eight sockets: each passed the check
    before any had failed, so an (account, address) pair got eight guesses where
    FAILURES_PER_PAIR allows five. An attempt now counts as a failure from the
    moment it is let in until its password proves right."""
    await limited_server.register("alice")
    players = [await limited_server.connect() for _ in range(8)]
    for player in players:
        await player.next("hello")
    for i, player in enumerate(players):
        await player.send(type="login", username="alice", password="wrong" * 3, ref=f"l{i}")
    codes = [(await answered(player, f"l{i}"))["code"] for i, player in enumerate(players)]
    assert sorted(codes) == ["invalid_credentials"] * FAILURES_PER_PAIR + ["rate_limited"] * (
        8 - FAILURES_PER_PAIR
    )
    for player in players:
        await player.close()


async def test_a_session_that_runs_out_on_an_open_socket_ends_there(
    manual_game: ManualGame,
) -> None:
    """A socket stays open longer than its session lasts: its next action is
    refused (`invalid_session`) and it watches as a spectator from then on, as a
    `resume` of its token would be refused. Before, it played on for good."""
    manual_game.app.accounts.session_ttl_s = 60
    alice, _ = await manual_game.register("alice")
    await alice.send(type="ping", ref="p")
    await alice.next("pong", ref="p")
    manual_game.clock.advance(61)
    assert await alice.refused("late", type="bet", amount=100) == "invalid_session"
    assert await alice.refused("after", type="bet", amount=100) == "auth_required"
    await alice.close()
