"""Every game error code, over the wire, and the state it leaves unchanged."""

from __future__ import annotations

from .conftest import GameServer, Player


async def test_spectators_cannot_act(game_server: GameServer) -> None:
    spectator = await game_server.connect()
    await spectator.next("hello")
    frames: list[dict[str, object]] = [
        {"type": "bet", "amount": 100},
        {"type": "cashout"},
        {"type": "chat", "text": "hi"},
        {"type": "logout"},
    ]
    for i, frame in enumerate(frames):
        await spectator.send(**frame, ref=f"s{i}")
        assert (await spectator.next("error", ref=f"s{i}"))["code"] == "auth_required"
    await spectator.send(type="ping", ref="p")
    assert (await spectator.next("pong"))["ref"] == "p"
    await spectator.close()


async def test_bet_and_cashout_errors_through_a_round(game_server: GameServer) -> None:
    alice, _ = await game_server.register("alice")
    bob, _ = await game_server.register("bob")

    async def error(player: Player, ref: str, **frame: object) -> str:
        await player.send(**frame, ref=ref)
        return str((await player.next("error", ref=ref))["code"])

    betting = await alice.next("betting")
    round_id = betting["round_id"]
    assert await error(alice, "e1", type="bet", amount=5) == "invalid_amount"  # below the minimum
    assert await error(alice, "e2", type="bet", amount=200_000) == "insufficient_funds"
    assert await error(alice, "e3", type="bet", amount=100, auto_cashout=20000) == (
        "invalid_auto_cashout"
    )
    assert await error(alice, "e4", type="bet", amount="100") == "invalid_amount"
    assert await error(alice, "e5", type="bet", amount=100, auto_cashout=1.0) == (
        "invalid_auto_cashout"
    )
    await alice.send(type="bet", amount=1000, ref="ok")
    accepted = await alice.next("bet_accepted", ref="ok")
    assert accepted["balance"] == 99_000  # none of the refused bets moved money
    # The same ref again: the same answer, no second debit.
    await alice.send(type="bet", amount=1000, ref="ok")
    assert (await alice.next("bet_accepted", ref="ok"))["balance"] == 99_000
    assert await error(alice, "e6", type="bet", amount=1000) == "already_bet"
    assert await error(alice, "e7", type="cashout") == "round_not_running"

    await alice.next("running", round_id=round_id)
    assert await error(bob, "e8", type="bet", amount=1000) == "betting_closed"
    assert await error(bob, "e9", type="cashout") == "no_active_bet"

    await alice.next("crashed", round_id=round_id, within=20)
    assert await error(alice, "e10", type="cashout") in ("round_crashed", "no_active_bet")
    for player in (alice, bob):
        await player.close()


async def test_malformed_frames_keep_the_connection(game_server: GameServer) -> None:
    spectator = await game_server.connect()
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
