"""Issue 20, bet controls: cancel a bet during betting, ½/2x/Min/Max by the
amount, the last amount and auto cash-out kept across reloads, and Space to
cash out."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from .conftest import Browsing
from .test_page import multiplier_reaches, next_betting, phase, register

# A long betting window: these tests act in it, and the machine may be busy.
LONG_BETTING = pytest.mark.parametrize("site_flags", [("--betting-ms", "20000")], indirect=True)


@LONG_BETTING
async def test_a_bet_is_cancelled_during_betting_and_refunded(browsing: Browsing) -> None:
    tab = await browsing.open()
    page = tab.page
    await register(page, "cancel_a")
    cancel = page.locator("#cancel-0")
    await expect(cancel).to_be_hidden()
    await next_betting(page)
    await page.fill("#amount-0", "25.00")
    await page.click("#bet-0")
    await expect(page.locator("#balance")).to_have_text("975.00")
    mine = page.locator("#bets li.me")
    await expect(mine).to_have_count(1)
    await expect(cancel).to_be_visible()
    await expect(page.locator("#cancel-1")).to_be_hidden()  # no bet in slot 1
    await cancel.click()
    await expect(page.locator("#bet-status-0")).to_contain_text("Bet of 25.00 cancelled")
    await expect(page.locator("#balance")).to_have_text("1,000.00")
    await expect(mine).to_have_count(0)
    await expect(cancel).to_be_hidden()
    # The slot takes no second bet this round (protocol.md, cancel_bet); slot 1 does.
    await expect(page.locator("#bet-0")).to_be_disabled()
    await expect(page.locator("#bet-0")).to_have_text("Cancelled: next round")
    await expect(page.locator("#bet-1")).to_be_enabled()
    # Once the round runs there is nothing to cancel: the button stays hidden.
    await page.click("#bet-1")
    await expect(page.locator("#cancel-1")).to_be_visible()
    await phase(page, "running")
    await expect(page.locator("#cancel-1")).to_be_hidden()
    assert tab.errors == []


@LONG_BETTING
async def test_amount_buttons_and_the_last_bet_kept_across_a_reload(browsing: Browsing) -> None:
    tab = await browsing.open()
    page = tab.page
    await register(page, "amounts_a")
    amount = page.locator("#amount-0")
    # Min is the server's smallest bet (hello.bet_limits: 0.10); Max the largest
    # the balance allows (1,000.00, below the server's 10,000.00).
    await page.click("#amount-min-0")
    await expect(amount).to_have_value("0.10")
    await page.click("#amount-double-0")
    await expect(amount).to_have_value("0.20")
    await page.click("#amount-half-0")
    await page.click("#amount-half-0")
    await expect(amount).to_have_value("0.10")  # never below the minimum
    await page.click("#amount-max-0")
    await expect(amount).to_have_value("1,000.00")
    await page.click("#amount-half-0")
    await expect(amount).to_have_value("500.00")
    await page.click("#amount-double-0")
    await page.click("#amount-double-0")
    await expect(amount).to_have_value("1,000.00")  # never above the balance

    await next_betting(page)
    await page.fill("#amount-0", "2.50")
    await page.fill("#auto-0", "1.75")
    await page.fill("#amount-1", "3.00")
    await page.click("#bet-0")
    await page.click("#bet-1")
    await expect(page.locator("#balance")).to_have_text("994.50")
    await page.reload()
    await expect(page.locator("#username")).to_have_text("amounts_a")
    await expect(amount).to_have_value("2.50")
    await expect(page.locator("#auto-0")).to_have_value("1.75")
    await expect(page.locator("#amount-1")).to_have_value("3.00")
    await expect(page.locator("#auto-1")).to_have_value("")
    assert tab.errors == []


async def test_space_cashes_out_the_first_open_bet_not_while_typing(browsing: Browsing) -> None:
    tab = await browsing.open()
    page = tab.page
    await register(page, "space_a")
    await next_betting(page)
    await page.fill("#amount-0", "1.00")
    await page.fill("#amount-1", "2.00")
    await page.click("#bet-0")
    await page.click("#bet-1")
    await expect(page.locator("#balance")).to_have_text("997.00")
    await phase(page, "running")
    await multiplier_reaches(page, 105)
    first, second = page.locator("#cashout-0"), page.locator("#cashout-1")
    await expect(first).to_contain_text("(Space)")
    await expect(second).not_to_contain_text("(Space)")
    # Typing a space in the chat sends no cash-out.
    await page.click("#chat-text")
    await page.keyboard.press("Space")
    await expect(page.locator("#chat-text")).to_have_value(" ")
    await expect(page.locator("#bet-status-0")).to_contain_text("placed")
    # Elsewhere it cashes out bet 1, then bet 2.
    await page.evaluate("document.activeElement.blur()")
    await page.keyboard.press("Space")
    await expect(page.locator("#bet-status-0")).to_contain_text("Cashed out at")
    await expect(second).to_contain_text("(Space)")
    await page.keyboard.press("Space")
    await expect(page.locator("#bet-status-1")).to_contain_text("Cashed out at")
    assert tab.errors == []
