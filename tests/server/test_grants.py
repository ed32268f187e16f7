"""Operator grants (server/grants.py): straight to PostgreSQL, or through the running game."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest
import redis.asyncio as aioredis

from pillarpayout_ws.exceptions import StorageError, UnknownUser
from pillarpayout_ws.server.grants import GrantDesk, grant
from pillarpayout_ws.server.runner import GrantCommand, LoadAccount
from pillarpayout_ws.storage import Storage
from pillarpayout_ws.storage.audit import audit
from pillarpayout_ws.storage.live import GRANT_DESK

from ..conftest import another_process
from ..storage.helpers import make_users
from .conftest import ManualGame

# Also run against Debian's PostgreSQL and Redis (python -m tests.external, in make test).
pytestmark = pytest.mark.external


async def test_without_a_server_a_grant_is_one_transaction(storage: Storage) -> None:
    (user,) = await make_users(storage, 1, balance=0)
    user_id, balance, via = await grant(storage, user.username, 2500, key="k1")
    assert (user_id, balance, via) == (user.id, 2500, "in PostgreSQL (no server running)")
    with pytest.raises(UnknownUser):
        await grant(storage, "nobody", 100, key="k2")
    assert (await audit(storage.db, storage.live)).clean


async def test_a_running_server_applies_the_grant_through_the_game(
    manual_game: ManualGame,
) -> None:
    storage = await another_process(manual_game.app.storage)  # as `pillarpayout grant` is
    alice, session = await manual_game.register("alice")
    await alice.send(type="bet", amount=1000, ref="b")
    await alice.next("bet_accepted", ref="b")
    user_id, balance, via = await grant(storage, "alice", 2500, key="k1")
    # The game's balance, bet included, not PostgreSQL's (which has not seen the bet).
    assert (user_id, balance, via) == (session["user"]["id"], 101_500, "through the running server")
    frame = await alice.next("balance")
    assert (frame["amount"], frame["balance"], frame["reason"]) == (2500, 101_500, "grant")
    with pytest.raises(UnknownUser):
        await grant(storage, "nobody", 100, key="k2")
    await storage.close()
    await alice.close()


async def test_a_request_past_its_deadline_is_never_applied(manual_game: ManualGame) -> None:
    app = manual_game.app
    alice, session = await manual_game.register("alice")
    stale = {"key": "late", "username": "alice", "amount": 100, "deadline": time.time() - 1}
    client = aioredis.Redis.from_url(app.storage.live.url)
    try:
        await client.rpush(GRANT_DESK.requests, orjson.dumps(stale))
        await GrantDesk(app.storage, app.runner).take()  # or the server's own desk took it
        assert await client.llen(GRANT_DESK.requests) == 0
        assert await client.exists(GRANT_DESK.reply_key("late")) == 0
    finally:
        await client.aclose()
    assert app.runner.game.balance_of(session["user"]["id"]) == 100_000
    await alice.close()


async def test_a_grant_that_reaches_the_loop_after_its_deadline_is_refused(
    manual_game: ManualGame,
) -> None:
    """Taken in time by the desk but late to the game loop (a slow PostgreSQL
    lookup before it, say): refused there, never applied, so its command line's
    "nothing was granted" stays true."""
    app = manual_game.app
    alice, session = await manual_game.register("alice")
    user_id = session["user"]["id"]
    done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    account = LoadAccount(user_id, "alice", 0, done)
    app.runner.submit(GrantCommand(account, 500, "late-in-loop", time.time() - 0.001))
    with pytest.raises(StorageError, match="after its deadline"):
        await done
    assert app.runner.game.balance_of(user_id) == 100_000
    await alice.close()


async def test_a_malformed_request_is_dropped_and_the_next_one_applied(
    manual_game: ManualGame, caplog: pytest.LogCaptureFixture
) -> None:
    """Anything in the queue that our command line did not write (no key, no
    deadline, an amount that is not a number) is logged and dropped: the desk's
    task would otherwise die and take the server with it."""
    app = manual_game.app
    alice, session = await manual_game.register("alice")
    deadline = time.time() + 60
    junk = [
        {"username": "alice", "amount": 100},
        {"key": "no-deadline", "username": "alice", "amount": 100},
        {"key": "nan", "username": "alice", "amount": "lots", "deadline": deadline},
    ]
    good = {"key": "good", "username": "alice", "amount": 700, "deadline": deadline}
    client = aioredis.Redis.from_url(app.storage.live.url)
    try:
        for request in [*junk, good]:
            await client.rpush(GRANT_DESK.requests, orjson.dumps(request))
        # The server's desk, waiting in Redis, takes them one after another: the
        # good one is answered after every piece of junk was dropped.
        answer = await client.blpop([GRANT_DESK.reply_key("good")], timeout=10)
        assert answer is not None and orjson.loads(answer[1])["balance"] == 100_700
    finally:
        await client.aclose()
    assert app.runner.game.balance_of(session["user"]["id"]) == 100_700
    dropped = [r for r in caplog.records if "could not be handled" in r.getMessage()]
    assert len(dropped) == len(junk)
    await alice.close()
