"""``hello`` (server/hello.py): what a newcomer is told, and when."""

from __future__ import annotations

import asyncio
import http.client
from typing import Any

import orjson
import pytest

from pillarpayout_ws.protocol.frames import HELLO_LIMIT
from pillarpayout_ws.server.runner import BetCommand

from ..storage.helpers import make_users
from .conftest import ManualGame

# Also run against Debian's PostgreSQL and Redis (python -m tests.external, in make test).
pytestmark = pytest.mark.external


async def test_hello_draws_the_game_as_it_stands(manual_game: ManualGame) -> None:
    alice, _ = await manual_game.register("alice")
    await alice.send(type="bet", amount=1000, ref="b")
    await alice.next("bet_accepted", ref="b")
    await alice.send(type="chat", text="good luck")
    await alice.next("chat")
    await manual_game.to_phase("running")
    await manual_game.advance(1000)
    newcomer = await manual_game.connect()
    hello = await newcomer.next("hello")
    assert hello["server"].startswith("pillarpayout/")
    assert (hello["phase"], hello["round_id"]) == ("running", manual_game.app.runner.round_id)
    assert hello["elapsed_ms"] == 1000 and hello["m"] == 1.06  # floor(100 * e^0.06) / 100
    assert hello["crash_point"] is None  # secret until the crash
    config = manual_game.app.runner.game.config  # the bet controls' bounds
    assert hello["bet_limits"] == {
        "min_bet": config.min_bet,
        "max_bet": config.max_bet,
        "max_auto_cashout": config.max_auto_cashout / 100,
    }
    assert [(b["username"], b["amount"], b["status"]) for b in hello["bets"]] == [
        ("alice", 1000, "open")
    ]
    assert [(c["username"], c["text"]) for c in hello["chat"]] == [("alice", "good luck")]
    await manual_game.to_phase("crashed")
    late = await manual_game.connect()
    crashed = await late.next("hello")
    assert crashed["crash_point"] is not None
    assert crashed["history"][-1]["round_id"] == hello["round_id"]
    assert [b["status"] for b in crashed["bets"]] == ["lost"]
    for player in (alice, newcomer, late):
        await player.close()


async def test_hello_fits_in_8_kib_and_the_rest_is_on_the_api(manual_game: ManualGame) -> None:
    """A crowded round and a chatty room: hello still fits; /api/chat has the rest."""
    app = manual_game.app
    users = await make_users(app.storage, 60)
    for user in users:
        await app.runner.load_account(user.id, user.username, user.balance)
        app.runner.submit(BetCommand(user.id, 100 + user.id, None, None, app.runner.now_ms()))
        app.chat.say(user.id, user.username, "ж" * 280, app.runner.round_id)  # 560 bytes each
    spectator = await manual_game.connect()
    hello = await spectator.next("hello")
    size = len(orjson.dumps(hello))
    assert size <= HELLO_LIMIT
    assert len(hello["bets"]) == 20 and hello["bets_more"] == 40
    assert 0 < len(hello["chat"]) < 50
    status, body = await asyncio.to_thread(get_json, app.port, "/api/chat")
    assert status == 200 and len(body["chat"]) == 50
    assert body["chat"][-len(hello["chat"]) :] == hello["chat"]  # the newest lines, in order
    status, body = await asyncio.to_thread(get_json, app.port, "/api/chat?limit=51")
    assert (status, body) == (400, {"error": "limit is 1 to 50"})
    await spectator.close()


def get_json(port: int, path: str) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, orjson.loads(resp.read())
    finally:
        conn.close()
