"""``/metrics`` (server/metrics.py): live gauges read at scrape time."""

from __future__ import annotations

import asyncio
import urllib.request

from .conftest import ManualGame


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = resp.read().decode()
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


async def test_gauges_follow_the_game_without_being_set(manual_game: ManualGame) -> None:
    port = manual_game.app.port
    before = await asyncio.to_thread(scrape, port)
    assert before["pillarpayout_connections"] == 0
    alice, _ = await manual_game.register("alice")
    spectator = await manual_game.connect()
    await spectator.next("hello")
    await alice.send(type="bet", amount=1000, ref="b")
    await alice.next("bet_accepted", ref="b")
    after = await asyncio.to_thread(scrape, port)
    assert after["pillarpayout_connections"] == 2
    assert (after["pillarpayout_players"], after["pillarpayout_spectators"]) == (1, 1)
    online = ("pillarpayout_online_players", "pillarpayout_online_spectators")
    assert tuple(after[name] for name in online) == (1, 1)
    assert after["pillarpayout_relay_spectators"] == 0
    assert after["pillarpayout_bets_total"] == 1
    assert after["pillarpayout_frame_deliveries"] > before["pillarpayout_frame_deliveries"]
    assert after['pillarpayout_answer_seconds_count{command="bet"}'] == 1
    for name in ("pillarpayout_flush_backlog_rounds", "pillarpayout_flush_held_rounds"):
        assert after[name] == 0
    await manual_game.to_phase("crashed")
    assert (await asyncio.to_thread(scrape, port))["pillarpayout_rounds_total"] == 1
    for player in (alice, spectator):
        await player.close()
