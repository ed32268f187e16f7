"""The chat room (server/chat.py): broadcast, stored, rate limited, buckets forgotten."""

from __future__ import annotations

from typing import Any, cast

import pytest

from pillarpayout_ws.server.app import App
from pillarpayout_ws.server.chat import (
    CHAT_BURST,
    ROOM_DELIVERIES_BURST,
    ROOM_DELIVERIES_RATE,
    ChatRoom,
)
from pillarpayout_ws.server.clock import ManualClock
from pillarpayout_ws.server.fanout import Hub
from pillarpayout_ws.storage import Storage

from ..storage.helpers import make_users
from .conftest import GameServer, fast_config, start_game

# Also run against Debian's PostgreSQL and Redis (python -m tests.external, in make test).
pytestmark = pytest.mark.external


async def test_chat_is_broadcast_stored_and_rate_limited(game_server: GameServer) -> None:
    alice, _ = await game_server.register("alice")
    spectator = await game_server.connect()
    await alice.send(type="chat", text="  hello pillar  ")
    line = await spectator.next("chat")
    assert (line["username"], line["text"]) == ("alice", "hello pillar")
    for i in range(5):
        await alice.send(type="chat", text=f"line {i}", ref=f"c{i}")
    limited = await alice.next("error")  # the burst is 5: the first line used one
    assert (limited["code"], limited["ref"]) == ("rate_limited", "c4")
    app = game_server.app
    await app.chat.save()
    rows = await app.storage.db.fetch("SELECT message FROM chat_messages ORDER BY id")
    assert rows[0]["message"] == "hello pillar"
    newcomer = await game_server.connect()
    hello = await newcomer.next("hello")
    assert hello["chat"][0]["text"] == "hello pillar"
    for player in (alice, spectator, newcomer):
        await player.close()


async def test_a_bucket_is_forgotten_once_it_has_refilled(storage: Storage) -> None:
    """One bucket per user who chatted lately, not per user who ever chatted."""
    clock = ManualClock()
    room = ChatRoom(storage.db, Hub(), clock)
    first, *_ = ids = [user.id for user in await make_users(storage, 3)]
    for user in ids:
        assert room.say(user, f"user{user}", "hi", round_id=None) is None
    assert room.buckets == 3
    for _ in range(int(CHAT_BURST) - 1):
        assert room.say(first, "first", "again", round_id=None) is None
    assert room.say(first, "first", "one too many", round_id=None) is not None
    clock.advance(1.0)  # the others are full again; the first has one token back
    await room.save()
    assert room.buckets == 1
    assert room.unsaved == 0
    clock.advance(60)
    await room.save()
    assert room.buckets == 0
    assert [line.text for line in room.recent()][:3] == ["hi", "hi", "hi"]


async def test_the_last_lines_survive_a_restart(storage_for_game: Storage) -> None:
    app = await start_game(storage_for_game, clock=ManualClock(), stop_timeout_s=0)
    try:
        alice, _ = await GameServer(app).register("alice")
        for text in ("first", "second"):
            await alice.send(type="chat", text=text)
            await alice.next("chat", text=text)
        await alice.close()
    finally:
        await app.stop()  # saves the chat on the way out
    again = App(fast_config(), storage_for_game, clock=ManualClock(), stop_timeout_s=0)
    await again.start()
    try:
        newcomer = await GameServer(again).connect()
        hello = await newcomer.next("hello")
        assert [(c["username"], c["text"]) for c in hello["chat"]] == [
            ("alice", "first"),
            ("alice", "second"),
        ]
        await newcomer.close()
    finally:
        await again.stop()


async def test_the_room_as_a_whole_is_limited_by_what_its_lines_cost(storage: Storage) -> None:
    """Many accounts, each within its own rate, must not spend the fan-out on
    chat: a line costs a write per connected socket, and the room gets
    ROOM_DELIVERIES_RATE writes a second (burst ROOM_DELIVERIES_BURST)."""
    clock = ManualClock()
    hub = Hub()
    room = ChatRoom(storage.db, hub, clock)
    hub.clients.update(cast(Any, object()) for _ in range(10_000))  # as if connected
    users = [user.id for user in await make_users(storage, 20)]
    at_once = int(ROOM_DELIVERIES_BURST // 10_000)
    said = [room.say(user, f"user{user}", "hi", round_id=None) for user in users]
    assert said[:at_once] == [None] * at_once
    assert set(said[at_once:]) == {"the chat is busy: try again in a moment"}
    clock.advance(1.0)
    per_second = int(ROOM_DELIVERIES_RATE // 10_000)
    said = [room.say(user, f"user{user}", "again", round_id=None) for user in users]
    assert said.count(None) == per_second
