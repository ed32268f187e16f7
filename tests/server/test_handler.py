"""One connection (server/handler.py): who may do what, bad frames, a bug in one frame."""

from __future__ import annotations

import pytest
from websockets.asyncio.client import connect

from .conftest import GameServer, ManualGame, Player

# Also run against Debian's PostgreSQL and Redis (python -m tests.external, in make test).
pytestmark = pytest.mark.external


async def test_spectators_cannot_act(manual_game: ManualGame) -> None:
    spectator = await manual_game.connect()
    await spectator.next("hello")
    frames: list[dict[str, object]] = [
        {"type": "bet", "amount": 100},
        {"type": "cashout"},
        {"type": "chat", "text": "hi"},
        {"type": "logout"},
        {"type": "set_limits", "limits": {"daily_loss": 100}},
        {"type": "limits"},
    ]
    for i, frame in enumerate(frames):
        await spectator.send(**frame, ref=f"s{i}")
        assert (await spectator.next("error", ref=f"s{i}"))["code"] == "auth_required"
    await spectator.send(type="ping", ref="p")
    assert (await spectator.next("pong"))["ref"] == "p"
    await spectator.close()


async def test_a_connection_keeps_nothing_of_its_handshake_headers(
    manual_game: ManualGame,
) -> None:
    """websockets keeps the opening handshake's request and response for the
    connection's life; the handler drops their headers once it has read the
    client's address from them, and the connection goes on as before."""
    spectator = Player(await connect(manual_game.url, additional_headers={"X-Pad": "x" * 3000}))
    await spectator.next("hello")
    (client,) = manual_game.app.hub.clients
    request = client.connection.request
    assert request is not None and request.path == "/ws"
    assert len(request.headers) == 0 and client.connection.response is None
    await spectator.send(type="ping", ref="p")
    assert (await spectator.next("pong"))["ref"] == "p"
    await manual_game.to_phase("running")
    await manual_game.advance(100)  # a tick_ms
    await spectator.next("tick")
    await spectator.close()


async def test_malformed_frames_keep_the_connection(manual_game: ManualGame) -> None:
    spectator = await manual_game.connect()
    await spectator.next("hello")
    for raw in ["{", "[1]", '{"type": 5}', '{"type": "dance"}', '{"type":"bet","amount":NaN}']:
        await spectator.ws.send(raw)
        error = await spectator.next("error")
        assert error["code"] in ("bad_frame", "unknown_type")
    await spectator.ws.send(b"\x00\x01binary")
    assert (await spectator.next("error"))["code"] == "bad_frame"
    await spectator.send(type="ping", ref="still-here")
    await spectator.next("pong", ref="still-here")
    await spectator.close()


async def test_hello_comes_first_and_joins_the_fanout(manual_game: ManualGame) -> None:
    spectator = await manual_game.connect()
    hello = await spectator.next("hello")
    assert spectator.frames[0] is hello
    await manual_game.to_phase("running")
    assert (await spectator.next("running"))["round_id"] == hello["round_id"]
    await spectator.close()


async def test_a_bug_in_one_frame_reaches_only_that_client(
    game_server: GameServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, _ = await game_server.register("alice")
    bob: Player = (await game_server.register("bob"))[0]

    def broken(*args: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr("pillarpayout_ws.server.handler.ConnectionHandler.chat", broken)
    await alice.send(type="chat", text="hello", ref="c")
    assert (await alice.next("error", ref="c"))["code"] == "internal_error"
    # Both connections and the game loop carry on.
    await alice.send(type="ping", ref="p1")
    await alice.next("pong", ref="p1")
    await bob.send(type="ping", ref="p2")
    await bob.next("pong", ref="p2")
    await bob.next("tick", within=30)
    for player in (alice, bob):
        await player.close()
