"""Issue 20, the page as a player reads it: money that says what it is, and
errors in a player's words."""

from __future__ import annotations

import re

from playwright.async_api import expect

from ..conftest import REPO
from .conftest import Browsing
from .test_page import multiplier_reaches, next_betting, phase, register

ERRORS_JS = "() => import(new URL('errors.js', location.href))"


def protocol_error_codes() -> set[str]:
    """Every code in protocol.md's "Error codes" tables."""
    text = (REPO / "protocol.md").read_text()
    section = text.split("## Error codes", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([a-z_]+)` \|", section, re.M))


async def test_money_says_what_it_is_and_errors_speak_to_players(browsing: Browsing) -> None:
    tab = await browsing.open()
    page = tab.page
    await register(page, "money_m")
    await expect(page.locator("#balance")).to_have_text("1,000.00")  # thousands separated
    await next_betting(page)
    error = page.locator("#bet-error-0")
    # Refused by the server, not the page: its cents never show.
    await page.fill("#amount-0", "0.05")
    await page.click("#bet-0")
    await expect(error).to_have_attribute("data-code", "invalid_amount")
    await expect(error).to_have_text("A bet is from 0.10 to 10,000.00.")
    await page.fill("#amount-0", "5.00")
    await page.fill("#auto-0", "20000")
    await page.click("#bet-0")
    await expect(error).to_have_attribute("data-code", "invalid_auto_cashout")
    await expect(error).to_have_text("Auto cash-out is from 1.01x to 10,000.00x, or empty.")
    await page.fill("#auto-0", "")
    await page.click("#bet-0")
    await expect(page.locator("#bet-status-0")).to_contain_text("Bet of 5.00 placed")
    await phase(page, "running")
    await multiplier_reaches(page, 110)
    await page.click("#cashout-0")
    status = page.locator("#bet-status-0[data-payout]")
    await status.wait_for()
    payout = int(await status.get_attribute("data-payout") or "")
    cashed_at = int(await status.get_attribute("data-multiplier") or "")
    at = f"{cashed_at // 100}.{cashed_at % 100:02d}x"
    won = f"{payout // 100}.{payout % 100:02d}"
    profit = payout - 500
    gain = f"+{profit // 100}.{profit % 100:02d}"
    # The amount returned, and the profit on the stake, each said as what it is.
    await expect(status).to_have_text(f"Cashed out at {at}: won {won} ({gain}).")
    await expect(page.locator("#bets li.me .result")).to_have_text(f"{at}: won {won}")

    # Every code protocol.md lists has a player's sentence, in money units.
    codes = protocol_error_codes()
    assert {"invalid_amount", "limit_reached", "muted", "read_only"} <= codes
    sentences = await page.evaluate(
        f"""async (codes) => {{
          const {{ errorSentence, KNOWN_CODES }} = await ({ERRORS_JS})();
          return {{ known: KNOWN_CODES, said: codes.map((code) => errorSentence({{
            code, message: "" }})) }};
        }}""",
        sorted(codes),
    )
    assert codes <= set(sentences["known"])
    for sentence in sentences["said"]:
        assert re.fullmatch(r"[A-Z].*[.!]", sentence), sentence
        assert "cents" not in sentence and not re.search(r"\w_\w", sentence), sentence
    limit = await page.evaluate(
        f"""async () => (await ({ERRORS_JS})()).errorSentence({{ code: "limit_reached",
              message: "daily loss limit 123456.00 reached; resets 2026-12-01 00:00 UTC" }})"""
    )
    assert limit == (
        "This bet would pass your daily loss limit of 123,456.00; it resets 2026-12-01 00:00 UTC."
    )
    assert tab.errors == []
