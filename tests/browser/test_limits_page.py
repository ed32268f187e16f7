"""The page's Limits panel (web/limits.js), in chromium against a real server."""

from __future__ import annotations

from playwright.async_api import expect

from .conftest import Browsing
from .test_page import register


async def test_the_limits_panel_sets_tightens_and_shows_a_pending_raise(
    browsing: Browsing,
) -> None:
    tab = await browsing.open()
    page = tab.page
    panel = page.locator("#limits-panel")
    await expect(panel).to_be_hidden()
    await register(page, "lima")
    await expect(panel).to_be_visible()
    await page.fill("#limit-daily_loss", "50")
    await page.click("#limits-form button[type=submit]")
    await expect(page.locator("#limit-daily_loss-shown")).to_have_text("used 0.00")
    await expect(page.locator("#limit-daily_loss")).to_have_value("50.00")
    await page.fill("#limit-daily_loss", "80.00")
    await page.click("#limits-form button[type=submit]")
    await expect(page.locator("#limit-daily_loss-shown")).to_contain_text("80.00 from")
    await expect(page.locator("#limit-daily_loss")).to_have_value("50.00")  # still in force
    await page.fill("#limit-weekly_wager", "abc")
    await page.click("#limits-form button[type=submit]")
    await expect(page.locator("#limits-error")).to_contain_text("an amount like 50.00")
    await tab.shot("limits-panel")
    assert tab.errors == []
