"""Two bets a round from the page's two panels, and the header's presence line."""

from __future__ import annotations

import asyncio
import re

import orjson
import pytest
from playwright.async_api import WebSocketRoute, expect
from websockets.asyncio.client import connect

from .conftest import ROUND_MS, Browsing, Site
from .test_autobet import start_auto_bet, stopped
from .test_page import money, multiplier_reaches, next_betting, phase, register


async def has_slots(site: Site) -> bool:
    """A server with two bets a round refuses slot 7 as `invalid_slot`, from anyone;
    one without reads no slot and tells a spectator to log in first."""
    async with asyncio.timeout(30), connect(site.ws_url) as ws:
        await ws.send(
            orjson.dumps({"type": "bet", "amount": 100, "slot": 7, "ref": "probe"}).decode()
        )
        while True:
            frame = orjson.loads(await ws.recv())
            if frame["type"] == "error" and frame.get("ref") == "probe":
                return bool(frame["code"] == "invalid_slot")


async def test_a_bet_in_each_slot_in_one_round(browsing: Browsing) -> None:
    if not await has_slots(browsing.site):
        pytest.skip("the server has no bet slots yet (two bets a round is not merged)")
    tab = await browsing.open()
    page = tab.page
    await register(page, "twice_t")
    await next_betting(page)
    await page.fill("#amount-0", "1.00")
    await page.click("#bet-0")
    await page.fill("#amount-1", "2.00")
    await page.fill("#auto-1", "1.10")
    await page.click("#bet-1")
    await expect(page.locator("#bet-status-0")).to_contain_text("Bet of 1.00 placed")
    await expect(page.locator("#bet-status-1")).to_contain_text("Bet of 2.00 placed")
    await expect(page.locator("#bet-status-1")).to_contain_text("auto cash-out at 1.10x")
    await expect(page.locator("#balance")).to_have_text("997.00")
    await expect(page.locator("#bet-0")).to_be_disabled()
    await expect(page.locator("#bet-1")).to_be_disabled()

    await phase(page, "running")
    mine = page.locator("#bets li.me")
    await expect(mine).to_have_count(2)
    await expect(page.locator("#bets li.me[data-slot='0']")).to_contain_text("1.00")
    await expect(page.locator("#bets li.me[data-slot='1']")).to_contain_text("2.00")
    # Slot 1 cashes out by itself at 1.10x; slot 0 stays open until its button.
    auto = page.locator("#bet-status-1[data-payout]")
    await auto.wait_for(timeout=ROUND_MS)
    assert await auto.get_attribute("data-payout") == "220"
    await expect(page.locator("#cashout-0")).to_be_enabled()
    await expect(page.locator("#cashout-1")).to_be_disabled()
    await multiplier_reaches(page, 115)
    await expect(page.locator("#cashout-0")).to_have_text(re.compile(r"^Cash out bet 1: "))
    await page.click("#cashout-0")
    status = page.locator("#bet-status-0[data-payout]")
    await status.wait_for()
    payout = int(await status.get_attribute("data-payout") or "")
    assert payout >= 115
    await expect(page.locator("#balance")).to_have_text(money(100_000 - 300 + 220 + payout))
    await expect(page.locator("#bets li.me[data-status='cashed_out']")).to_have_count(2)

    bets = [(f["slot"], f["amount"], f["auto_cashout"]) for f in tab.sent_of("bet")]
    assert bets == [(0, 100, None), (1, 200, 1.1)]
    assert [f["slot"] for f in tab.sent_of("cashout")] == [0]
    accepted = {f["slot"]: f["amount"] for f in tab.received_of("bet_accepted")}
    assert accepted == {0: 100, 1: 200}
    await tab.shot("two-slots")
    assert tab.errors == []


async def test_the_header_shows_presence_when_the_server_sends_it(browsing: Browsing) -> None:
    tab = await browsing.open()
    page = tab.page
    await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    hello = tab.received_of("hello")[0]
    presence = page.locator("#presence")
    if "presence" in hello:
        # hello counts those here before this page; a presence frame follows
        # within a second with this page among the spectators.
        await expect(presence).to_have_text("0 playing · 1 watching")
    else:
        await expect(presence).to_be_hidden()  # a server without presence: nothing shown

    # A presence frame updates the line: the page's socket goes through a
    # route that passes the server's frames on, its own presence frames
    # excepted, and lets the test send one.
    routes: list[WebSocketRoute] = []

    def route(ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()

        def from_server(message: str | bytes) -> None:
            if orjson.loads(message).get("type") != "presence":
                ws.send(message)

        server.on_message(from_server)
        routes.append(ws)

    await page.route_web_socket(re.compile(r"/ws$"), route)
    await page.reload()
    await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    assert len(routes) == 1
    routes[0].send(orjson.dumps({"type": "presence", "players": 3, "spectators": 7}).decode())
    await expect(presence).to_have_text("3 playing · 7 watching")
    await expect(presence).to_have_attribute("data-players", "3")
    await register(page, "present_p")  # the page plays on through the route
    await phase(page, "running")
    assert tab.errors == []


async def test_two_auto_bets_never_bet_more_than_the_balance_together(browsing: Browsing) -> None:
    if not await has_slots(browsing.site):
        pytest.skip("the server has no bet slots yet (two bets a round is not merged)")
    tab = await browsing.open()
    page = tab.page
    await register(page, "both_b")
    await next_betting(page)
    # 600.00 each from 1000.00: the first fits, the second must not be sent,
    # whether or not the first one's answer has come back yet.
    await start_auto_bet(page, 0, base="600.00", cashout="50.00")
    await start_auto_bet(page, 1, base="600.00", cashout="50.00")
    await stopped(page, "balance", slot=1)
    await expect(page.locator("#ab-status-1")).to_contain_text("is more than your balance, 400.00")
    await expect(page.locator("#ab-status-0")).to_have_attribute("data-state", "running")
    await expect(page.locator("#balance")).to_have_text("400.00")
    assert [(f["slot"], f["amount"]) for f in tab.sent_of("bet")] == [(0, 60_000)]
    await page.click("#ab-stop-0")
    await stopped(page, "user", slot=0)
    assert tab.errors == []
