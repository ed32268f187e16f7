"""``hello`` (server/hello.py): what a newcomer is told, and when."""

from __future__ import annotations

from .conftest import ManualGame


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
