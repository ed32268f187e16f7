"""The stats panel (my bets, profiles opened from usernames) and the leaderboard,
read from the player API (/api/me/bets, /api/users/NAME, /api/leaderboard)."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request

import pytest
from playwright.async_api import Page, expect

from .conftest import ROUND_MS, Browsing, Site
from .test_page import money, next_betting, phase, register


async def has_player_api(site: Site) -> bool:
    def status() -> int:
        try:
            with urllib.request.urlopen(f"{site.url}api/leaderboard", timeout=10) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as error:
            return error.code

    return await asyncio.to_thread(status) != 404


async def need_player_api(site: Site) -> None:
    if not await has_player_api(site):
        pytest.skip("the player API (/api/me/bets, /api/users, /api/leaderboard) is not merged")


async def summed(page: Page, username: str) -> None:
    """Waits until the server has flushed and summed ``username``'s bets.

    The predicate is polled twice a second; each call starts a request when
    none is under way and answers with what the last one found (a predicate
    cannot await)."""
    await page.wait_for_function(
        """(name) => {
          const poll = (window.summedPoll ??= { found: false, asking: false });
          if (!poll.asking) {
            poll.asking = true;
            fetch("/api/leaderboard?by=wagered&period=day")
              .then((r) => (r.ok ? r.json() : { rows: [] }))
              .then((body) => { poll.found = body.rows.some((row) => row.username === name); })
              .finally(() => { poll.asking = false; });
          }
          return poll.found;
        }""",
        arg=username,
        polling=500,
        timeout=ROUND_MS,
    )


async def bet(page: Page, amount: str, auto: str) -> int:
    """A bet in slot 0 of this betting window, auto cashed out at ``auto``; returns the round."""
    await page.fill("#amount-0", amount)
    await page.fill("#auto-0", auto)
    await page.click("#bet-0")
    await expect(page.locator("#bet-status-0")).to_contain_text(f"Bet of {amount} placed")
    return int((await page.locator("#round").text_content() or "").removeprefix("Round #"))


async def won(page: Page) -> None:
    await page.locator("#bet-status-0[data-payout]").wait_for(timeout=ROUND_MS)


async def test_the_stats_panel_shows_my_bets_and_a_profile_from_a_username(
    browsing: Browsing,
) -> None:
    await need_player_api(browsing.site)
    ann_tab = await browsing.open()
    bob_tab = await browsing.open()
    ann, bob = ann_tab.page, bob_tab.page
    await register(ann, "stat_ann")
    await register(bob, "stat_bob")

    await next_betting(ann)
    await bob.fill("#amount-0", "5.00")
    await bob.click("#bet-0")
    await expect(bob.locator("#balance")).to_have_text("995.00")
    round_id = await bet(ann, "10.00", "1.20")
    await phase(ann, "running")
    # A name in the bets list opens that player's profile.
    await ann.locator("#bets li .user-link", has_text="stat_bob").click()
    profile = ann.locator("#profile-body")
    await expect(profile).to_have_attribute("data-username", "stat_bob")
    await expect(profile.locator(".profile-name")).to_have_text("stat_bob")

    # Chat lines are text, whatever they hold; their names are links too.
    await bob.fill("#chat-text", "gg <b>ann</b> <img src=x onerror=alert(1)>")
    await bob.press("#chat-text", "Enter")
    line = ann.locator("#chat li").last
    await expect(line.locator(".text")).to_have_text("gg <b>ann</b> <img src=x onerror=alert(1)>")
    assert await line.locator("b, img").count() == 0
    await won(ann)

    await phase(ann, "crashed")
    await summed(ann, "stat_bob")
    await ann.click("#tab-my-bets")
    await ann.locator("#stats").scroll_into_view_if_needed()
    await ann.click("#my-bets-newest")
    row = ann.locator("#my-bets tbody tr").first
    await expect(row).to_have_attribute("data-round-id", str(round_id))
    await expect(row).to_have_attribute("data-amount", "1000")
    await expect(row).to_have_attribute("data-payout", "1200")
    await expect(row).to_have_attribute("data-slot", "0")
    await expect(row).to_have_class("cashed_out")
    await expect(row).to_contain_text("1.20x")
    await expect(ann.locator("#my-bets-older")).to_be_disabled()  # one page of one bet

    await line.locator(".user-link").click()
    await expect(profile).to_have_attribute("data-username", "stat_bob")
    facts = profile.locator("dd")
    await expect(facts.nth(2)).to_have_text("1")  # bets
    await expect(facts.nth(3)).to_have_text("5.00")  # wagered
    await expect(facts.nth(4)).to_have_text("-5.00")  # profit
    await ann_tab.shot("stats-profile")

    # A name nobody has, typed in: said so, as text.
    await ann.fill("#profile-name", "<nobody>")
    await ann.press("#profile-name", "Enter")
    await expect(profile).to_have_text("No player is called <nobody>.")
    # Logged out, the panel forgets the bets.
    await ann.click("#logout")
    await ann.click("#tab-my-bets")
    await expect(ann.locator("#my-bets")).to_be_hidden()
    await expect(ann.locator("#my-bets-note")).to_have_text("Log in to see your bets.")
    # The one console error: the browser logs the 404 of the unknown name.
    assert [e for e in ann_tab.errors if "404" not in e] == [], ann_tab.errors
    assert len(ann_tab.errors) <= 1 and bob_tab.errors == []


async def test_the_leaderboard_panel_renders_rows(browsing: Browsing) -> None:
    await need_player_api(browsing.site)
    tab = await browsing.open()
    page = tab.page
    await register(page, "leader_lu")
    await next_betting(page)
    await bet(page, "10.00", "1.25")
    await won(page)
    await summed(page, "leader_lu")
    await page.locator("#leaderboard").scroll_into_view_if_needed()
    rows = page.locator("#lb-rows li[data-rank]")
    for by, period, value in (
        # Each one changes a selector from the last (profit and day are the defaults).
        ("wagered", "week", money(1000)),
        ("multiplier", "all", "1.25x"),
        ("profit", "day", money(250)),
    ):
        await page.select_option("#lb-by", by)
        await page.select_option("#lb-period", period)
        await expect(page.locator("#lb-rows")).to_have_attribute("data-by", by)
        await expect(page.locator("#lb-rows")).to_have_attribute("data-period", period)
        await expect(rows).to_have_count(1)
        await expect(rows.first.locator(".rank")).to_have_text("1.")
        await expect(rows.first.locator(".user-link")).to_have_text("leader_lu")
        await expect(rows.first.locator(".value")).to_have_text(value)
    await tab.shot("leaderboard")
    # Its names open profiles as well.
    await rows.first.locator(".user-link").click()
    await expect(page.locator("#profile-body")).to_have_attribute("data-username", "leader_lu")
    assert tab.errors == []


async def test_my_bets_page_through_older_bets(browsing: Browsing) -> None:
    await need_player_api(browsing.site)
    tab = await browsing.open()
    page = tab.page
    await register(page, "pager_pam")
    # One bet a page, and a bet in each slot of one round: two pages.
    await page.evaluate("document.getElementById('my-bets').dataset.pageSize = '1'")
    await next_betting(page)
    await page.fill("#amount-0", "1.00")
    await page.click("#bet-0")
    await page.fill("#amount-1", "2.00")
    await page.click("#bet-1")
    await expect(page.locator("#balance")).to_have_text("997.00")
    await next_betting(page)
    await summed(page, "pager_pam")
    await page.locator("#stats").scroll_into_view_if_needed()
    await page.click("#my-bets-newest")
    rows = page.locator("#my-bets tbody tr")
    older = page.locator("#my-bets-older")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_have_attribute("data-slot", "1")  # the newer bet
    await expect(rows.first).to_have_attribute("data-amount", "200")
    await older.click()
    await expect(rows.first).to_have_attribute("data-slot", "0")
    await expect(rows.first).to_have_attribute("data-amount", "100")
    await expect(rows).to_have_count(1)
    # The last bet was the oldest: once the server says so, there is nothing older.
    if await older.is_enabled():
        await older.click()
        await expect(page.locator("#my-bets-note")).to_have_text("No older bets.")
        await expect(older).to_be_disabled()
    await page.click("#my-bets-newest")
    await expect(rows.first).to_have_attribute("data-slot", "1")
    assert tab.errors == []
