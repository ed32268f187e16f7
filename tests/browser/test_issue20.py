"""Issue 20: the page tells the truth after a reconnect, makes a lost connection
obvious, and lists the player's own bet at once."""

from __future__ import annotations

import asyncio
import re

import orjson
from playwright.async_api import WebSocketRoute, expect
from websockets.asyncio.client import connect

from .conftest import ROUND_MS, Browsing
from .test_page import next_betting, phase, register


class Gate:
    """The page's sockets go through a route that passes every frame on while
    open, and refuses (closes) the page's connections while shut."""

    def __init__(self) -> None:
        self.shut = False
        self.routes: list[WebSocketRoute] = []

    async def __call__(self, ws: WebSocketRoute) -> None:
        if self.shut:
            await ws.close()
            return
        ws.connect_to_server()
        self.routes.append(ws)

    async def cut(self) -> None:
        self.shut = True
        for ws in self.routes:
            await ws.close()


async def cashed_out_on_server(ws_url: str, username: str) -> None:
    """Wait for the server's `bets` frames to say the player's bet cashed out."""
    async with asyncio.timeout(ROUND_MS / 1000), connect(ws_url) as ws:
        while True:
            frame = orjson.loads(await ws.recv())
            if frame["type"] not in ("bets", "hello"):
                continue
            for bet in frame["bets"]:
                if bet["username"] == username and bet["status"] == "cashed_out":
                    return


async def test_an_auto_cash_out_while_offline_shows_after_the_reconnect(
    browsing: Browsing,
) -> None:
    tab = await browsing.open()
    page = tab.page
    gate = Gate()
    await page.route_web_socket(re.compile(r"/ws$"), gate)
    await page.reload()
    await register(page, "offline_a")
    await next_betting(page)
    await page.fill("#amount-0", "2.00")
    await page.fill("#auto-0", "1.10")
    await page.click("#bet-0")
    await expect(page.locator("#bet-status-0")).to_contain_text("auto cash-out at 1.10x")
    await gate.cut()
    await expect(page.locator("#conn")).to_have_attribute("data-state", "down")
    await cashed_out_on_server(browsing.site.ws_url, "offline_a")
    gate.shut = False
    await expect(page.locator("#conn")).to_have_attribute("data-state", "live", timeout=60_000)
    status = page.locator("#bet-status-0")
    await expect(status).to_contain_text("Cashed out at 1.10x: won 2.20 (+0.20)")
    await expect(status).not_to_contain_text("placed")
    await expect(page.locator("#balance")).to_have_text("1,000.20")

    # A reload during the next round's betting with a bet placed: open, armed.
    await next_betting(page)
    await page.fill("#amount-0", "1.00")
    await page.fill("#auto-0", "1.10")
    await page.click("#bet-0")
    await expect(status).to_contain_text("Bet of 1.00 placed")
    await page.reload()
    await expect(status).to_contain_text("Bet of 1.00 placed")
    await expect(status).to_contain_text("auto cash-out armed at 1.10x")
    await phase(page, "crashed")
    await expect(status).to_contain_text("Auto cash-out at 1.10x: won 1.10 (+0.10)")


async def test_a_lost_connection_is_obvious_and_clears_on_hello(browsing: Browsing) -> None:
    tab = await browsing.open()
    page = tab.page
    await register(page, "dropped_b")
    await next_betting(page)
    await page.fill("#amount-0", "2.00")
    await page.click("#bet-0")
    await phase(page, "running")
    await expect(page.locator("#cashout-0")).to_have_text(re.compile(r"^Cash out bet 1: "))
    banner = page.locator("#conn-lost")
    await expect(banner).to_be_hidden()
    browsing.site.kill()
    await expect(banner).to_be_visible()
    await expect(banner).to_have_text("Connection lost — reconnecting…")
    await expect(page.locator("#phase")).to_have_text(re.compile(r"connection lost", re.I))
    cashout = page.locator("#cashout-0")
    await expect(cashout).to_be_disabled()
    await expect(cashout).to_have_text("Cash out bet 1")
    await browsing.site.restart()
    await expect(page.locator("#conn")).to_have_attribute("data-state", "live", timeout=60_000)
    await expect(banner).to_be_hidden()
    await expect(page.locator("#phase")).not_to_have_text(re.compile(r"connection lost", re.I))


async def test_the_own_bet_is_listed_alike_on_a_connected_and_a_new_page(
    browsing: Browsing,
) -> None:
    tab = await browsing.open()
    page = tab.page
    other = await browsing.open()
    await register(page, "lister_c")
    await next_betting(page)
    await page.fill("#amount-0", "3.00")
    await page.click("#bet-0")
    await expect(page.locator("#bet-status-0")).to_contain_text("Bet of 3.00 placed")
    # The status line and the list change in the same handler of bet_accepted,
    # which always comes during betting, before any bets frame of the round (the
    # server sends those once it runs): read at once, however slow the machine.
    assert await page.locator("#bets li").count() == 1
    # A page loaded now lists it too (its hello has it).
    await other.page.reload()
    for shown in (page, other.page):
        row = shown.locator("#bets li")
        await expect(row).to_have_count(1)
        await expect(row).to_contain_text("lister_c")
        await expect(row).to_contain_text("3.00")
    await expect(page.locator("#bets li.me")).to_have_count(1)
    await phase(page, "running")
    for shown in (page, other.page):
        await expect(shown.locator("#bets li")).to_have_count(1)
    assert tab.errors == []
