"""The browser client, played in chromium against a real ``pillarpayout serve``."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
import pytest
from playwright.async_api import Page, expect
from websockets.asyncio.client import connect

from pillarpayout_ws.engine.fairness import crash_point, seed_hash
from pillarpayout_ws.engine.growth import integrity_at, multiplier_at

from ..conftest import SHARED
from ..server.conftest import CLIENT_SEED, Player
from .conftest import ROUND_MS, Browsing

ROUND_S = ROUND_MS / 1000
TOKEN = "() => localStorage.getItem('pillarpayout.token')"
SHOWN_MULTIPLIER = "() => Number(document.getElementById('multiplier').dataset.hundredths)"


def money(cents: int) -> str:
    """As the page shows it: 123456 -> "1,234.56"."""
    return f"{cents // 100:,}.{cents % 100:02d}"


def parse_money(text: str) -> int:
    units, cents = text.replace(",", "").split(".")
    return int(units) * 100 + int(cents)


def multiplier(wire: float) -> str:
    return f"{wire:.2f}x"


async def register(page: Page, username: str) -> None:
    await page.click("#tab-register")
    form = page.locator("#register-form")
    await form.locator("[name=username]").fill(username)
    await form.locator("[name=email]").fill(f"{username}@example.com")
    await form.locator("[name=password]").fill("correct horse battery")
    await form.locator("button[type=submit]").click()
    await expect(page.locator("#username")).to_have_text(username)


async def phase(page: Page, name: str) -> None:
    await page.locator(f"#phase[data-phase={name}]").wait_for(timeout=ROUND_MS)


async def next_betting(page: Page) -> None:
    """The start of a betting window, so the test has all of it to bet in."""
    await phase(page, "crashed")
    await phase(page, "betting")


async def multiplier_reaches(page: Page, hundredths: int) -> None:
    await page.wait_for_function(f"() => ({SHOWN_MULTIPLIER})() >= {hundredths}", timeout=ROUND_MS)


async def verified(page: Page, crash: float) -> None:
    """The verify dialog computed ``crash`` and found it equal to the server's."""
    result = page.locator("#v-result")
    await expect(result).to_have_attribute("data-state", "done")
    await expect(result).to_have_attribute("data-ok", "true")
    await expect(page.locator("#v-computed")).to_have_text(multiplier(crash))
    await expect(page.locator("#v-claimed")).to_have_text(multiplier(crash))
    await expect(page.locator("#v-verdict")).to_contain_text("Matches")


def public_vectors() -> list[dict[str, Any]]:
    data = orjson.loads((SHARED / "vectors" / "fairness-public.json").read_bytes())
    return list(data["vectors"])


async def test_the_page_draws_the_game_without_errors(browsing: Browsing) -> None:
    tab = await browsing.open()
    page = tab.page
    await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    await phase(page, "running")
    goal = page.locator("#goal")
    blocks = await goal.get_attribute("data-current")
    assert blocks is not None
    await multiplier_reaches(page, 110)
    # The integrity shown is the engine's function of the multiplier shown.
    shown, integrity = await page.evaluate(
        f"() => [({SHOWN_MULTIPLIER})(), document.getElementById('integrity').textContent]"
    )
    assert integrity == money(integrity_at(shown)) + "%"
    await tab.shot("page-1280x800-running")
    await phase(page, "crashed")
    await expect(page.locator("#multiplier")).to_have_class("multiplier crashed")
    await expect(goal).not_to_have_attribute("data-current", blocks)  # the round built
    await tab.shot("page-1280x800-crashed")

    phone = await browsing.open(width=390, height=844)
    await expect(phone.page.locator("#conn")).to_have_attribute("data-state", "live")
    for selector in ("#multiplier", "#history", "#auth", "#chat"):
        await expect(phone.page.locator(selector)).to_be_visible()
    scroll_width, width = await phone.page.evaluate(
        "() => [document.documentElement.scrollWidth, window.innerWidth]"
    )
    assert scroll_width <= width  # nothing sticks out sideways on a phone
    await phone.shot("page-390x844")
    assert tab.errors == [] and phone.errors == []


async def test_a_player_registers_bets_and_cashes_out(browsing: Browsing) -> None:
    tab = await browsing.open()
    page = tab.page
    await register(page, "ada_b")
    await expect(page.locator("#balance")).to_have_text("1,000.00")
    await next_betting(page)
    await page.fill("#amount-0", "10.00")
    await page.click("#bet-0")
    await expect(page.locator("#bet-status-0")).to_contain_text("Bet of 10.00 placed")
    await expect(page.locator("#balance")).to_have_text("990.00")

    await phase(page, "running")
    await multiplier_reaches(page, 110)  # every round of the chain gets past 1.30x
    # The button shows what a cashout would pay now: at least 1.10x of 10.00.
    offered = await page.locator("#cashout-0").text_content() or ""
    assert offered.startswith("Cash out bet 1: ")
    assert offered.endswith(" (Space)")  # the key that cashes it out
    assert parse_money(offered.removeprefix("Cash out bet 1: ").removesuffix(" (Space)")) >= 1100
    await page.click("#cashout-0")
    status = page.locator("#bet-status-0[data-payout]")
    await status.wait_for()
    payout = int(await status.get_attribute("data-payout") or "")
    cashed_at = int(await status.get_attribute("data-multiplier") or "")
    assert cashed_at >= 110
    assert payout == 1000 * cashed_at // 100
    await expect(status).to_contain_text(f"won {money(payout)} (+{money(payout - 1000)})")
    await expect(page.locator("#balance")).to_have_text(money(100_000 - 1000 + payout))
    mine = page.locator("#bets li.me")
    await expect(mine).to_have_attribute("data-status", "cashed_out")
    await expect(mine).to_contain_text(f"{money(cashed_at)}x: won {money(payout)}")
    await tab.shot("cashed-out")

    await page.fill("#chat-text", "gl all")
    await page.press("#chat-text", "Enter")
    line = page.locator("#chat li").last
    await expect(line.locator(".from")).to_have_text("ada_b")
    await expect(line.locator(".text")).to_have_text("gl all")
    assert tab.errors == []


async def test_the_history_fills_and_verify_agrees_with_the_server(browsing: Browsing) -> None:
    site = browsing.site
    watcher = Player(await connect(site.ws_url))
    try:
        tab = await browsing.open()
        page = tab.page
        # A round whose whole life the page sees, and that has one before it.
        betting = await watcher.next("betting", within=ROUND_S)
        if betting["round_id"] < 2:
            betting = await watcher.next("betting", within=ROUND_S)
        r = betting["round_id"]
        crashed = await watcher.next("crashed", within=ROUND_S, round_id=r)
        seed = crashed["server_seed"]
        # The server's own frames hold: the comparisons below mean something.
        assert crashed["nonce"] == r and seed == site.chain.seed_for(r)
        assert hashlib.sha256(bytes.fromhex(seed)).hexdigest() == betting["seed_hash"]
        assert crash_point(seed, CLIENT_SEED) == round(crashed["crash_point"] * 100)

        chips = page.locator("#history .chip")
        await expect(chips.first).to_have_attribute("data-round-id", str(r))
        await expect(chips.first).to_have_text(multiplier(crashed["crash_point"]))
        await chips.first.click()
        await verified(page, crashed["crash_point"])
        await expect(page.locator("#v-seed")).to_have_value(seed)
        await expect(page.locator("#v-client")).to_have_value(CLIENT_SEED)
        await expect(page.locator("#v-hash")).to_have_text(betting["seed_hash"])
        await expect(page.locator("#v-published")).to_have_text(betting["seed_hash"])
        await expect(page.locator("#v-source")).to_contain_text("published record")
        await expect(page.locator("#v-edge")).to_have_value("1")
        await tab.shot("verify-revealed")
        await page.click("#v-close")

        # A page that comes later verifies the rounds it never saw from the
        # server's published record.
        later = await browsing.open()
        after = await watcher.next("crashed", within=ROUND_S, round_id=r + 1)
        await expect(chips.nth(0)).to_have_attribute("data-round-id", str(r + 1))
        await expect(chips.nth(1)).to_have_attribute("data-round-id", str(r))
        await expect(chips.nth(0)).to_have_text(multiplier(after["crash_point"]))
        later_chips = later.page.locator("#history .chip")
        await expect(later_chips.first).to_have_attribute("data-round-id", str(r + 1))
        for round_id in (r, r - 1):
            await later.page.locator(f"#history .chip[data-round-id='{round_id}']").click()
            expected = crash_point(site.chain.seed_for(round_id), CLIENT_SEED) / 100
            await verified(later.page, expected)
            await expect(later.page.locator("#v-seed")).to_have_value(site.chain.seed_for(round_id))
            await expect(later.page.locator("#v-source")).to_contain_text("published record")
            await later.page.click("#v-close")

        # Any seed pasted in: one the page knows by its published hash ...
        await later.page.click("#open-verify")
        await later.page.fill("#v-seed", after["server_seed"])
        await later.page.click("#v-run")
        await verified(later.page, after["crash_point"])
        # ... and one it does not: a published game of another site.
        vector = public_vectors()[0]
        await later.page.fill("#v-seed", vector["server_seed"])
        await later.page.fill("#v-client", vector["client_seed"])
        await later.page.click("#v-run")
        result = later.page.locator("#v-result")
        await expect(result).to_have_attribute("data-state", "done")
        await expect(result).to_have_attribute("data-ok", "")
        await expect(later.page.locator("#v-computed")).to_have_text(
            multiplier(vector["crash_point"])
        )
        await expect(later.page.locator("#v-hash")).to_have_text(seed_hash(vector["server_seed"]))
        await later.shot("verify-pasted")
        assert tab.errors == [] and later.errors == []
    finally:
        await watcher.close()


async def test_a_reload_resumes_the_session_and_its_bet(browsing: Browsing) -> None:
    tab = await browsing.open()
    page = tab.page
    await register(page, "carol_r")
    assert await page.evaluate(TOKEN)
    await next_betting(page)
    await page.fill("#amount-0", "5.00")
    await page.click("#bet-0")
    await expect(page.locator("#balance")).to_have_text("995.00")

    await page.reload()
    await expect(page.locator("#username")).to_have_text("carol_r")
    await expect(page.locator("#balance")).to_have_text("995.00")
    await expect(page.locator("#auth")).to_be_hidden()
    # The bet placed before the reload is still this page's to cash out.
    await phase(page, "running")
    await page.click("#cashout-0")
    await page.locator("#bet-status-0[data-payout]").wait_for()

    # A bet after the reload, in the next round, is a new bet: the page's refs
    # are its own (before, "bet-1" again replayed the old round's ack and
    # placed nothing).
    balance = parse_money(await page.locator("#balance").text_content() or "")
    await next_betting(page)
    await page.fill("#amount-0", "5.00")
    await page.click("#bet-0")
    await expect(page.locator("#balance")).to_have_text(money(balance - 500))
    await expect(page.locator("#bet-status-0")).to_contain_text("Bet of 5.00 placed")

    await page.click("#logout")
    await expect(page.locator("#auth")).to_be_visible()
    assert await page.evaluate(TOKEN) is None
    await page.reload()
    await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    await expect(page.locator("#auth")).to_be_visible()
    assert tab.errors == []


async def test_the_page_reconnects_and_resumes_after_a_server_restart(
    browsing: Browsing,
) -> None:
    tab = await browsing.open()
    page = tab.page
    await register(page, "dave_k")
    browsing.site.kill()
    await expect(page.locator("#conn")).to_have_attribute("data-state", "down")
    await browsing.site.restart()
    await expect(page.locator("#conn")).to_have_attribute("data-state", "live", timeout=60_000)
    await expect(page.locator("#username")).to_have_text("dave_k")
    await expect(page.locator("#balance")).to_have_text("1,000.00")
    await tab.shot("reconnected")
    # Only the refused connection attempts while the server was down.
    assert all(error.startswith("WebSocket connection to") for error in tab.errors), tab.errors


async def test_the_browser_computes_what_the_engine_computes(browsing: Browsing) -> None:
    tab = await browsing.open()
    page = tab.page
    vectors = public_vectors()
    chain = browsing.site.chain
    cases: list[tuple[str, str, float]] = [
        (v["server_seed"], v["client_seed"], v["house_edge"]) for v in vectors
    ]
    cases += [(seed, CLIENT_SEED, edge) for seed in chain for edge in (0.0, 1.0, 2.5)]
    cases += [
        (chain.seed_for(1), "", 1.0),  # an empty key
        (chain.seed_for(2), "k" * 100, 1.0),  # a key longer than SHA-256's block
        ("", CLIENT_SEED, 1.0),
        ("ab", CLIENT_SEED, 1.0),
    ]
    results = await page.evaluate(
        """async (cases) => {
          const v = await import(new URL("verify.js", location.href));
          const out = [];
          for (const [seed, client, edge] of cases) {
            out.push([
              await v.crashPoint(seed, client, edge),
              await v.crashPoint(seed, client, edge, { webCrypto: false }),
              await v.seedHash(seed),
              await v.seedHash(seed, { webCrypto: false }),
            ]);
          }
          return out;
        }""",
        cases,
    )
    for (seed, client, edge), (web, plain, hashed, hashed_plain) in zip(
        cases, results, strict=True
    ):
        assert web == plain == crash_point(seed, client, edge), (seed, client, edge)
        assert hashed == hashed_plain == seed_hash(seed)
    for vector, (web, _, _, _) in zip(vectors, results, strict=False):
        assert web == round(vector["crash_point"] * 100)

    elapsed = list(range(0, 120_001, 7))
    multipliers = list(range(100, 100_000, 37))
    grown, integrity = await page.evaluate(
        """async ([elapsed, multipliers]) => {
          const g = await import(new URL("growth.js", location.href));
          return [elapsed.map(g.multiplierAt), multipliers.map(g.integrityAt)];
        }""",
        [elapsed, multipliers],
    )
    assert grown == [multiplier_at(t) for t in elapsed]
    assert integrity == [integrity_at(m) for m in multipliers]
    assert tab.errors == []


@pytest.mark.parametrize("site_flags", [("--house-edge", "5")], indirect=True)
async def test_verify_uses_the_published_house_edge_and_loads_any_round(
    browsing: Browsing,
) -> None:
    site = browsing.site
    watcher = Player(await connect(site.ws_url))
    try:
        hello = await watcher.next("hello")
        assert hello["fairness"]["house_edge"] == 5.0
        first = await watcher.next("crashed", within=ROUND_S)
        second = await watcher.next("crashed", within=ROUND_S)
        assert crash_point(first["server_seed"], CLIENT_SEED, 5.0) == round(
            first["crash_point"] * 100
        )
        tab = await browsing.open()
        page = tab.page
        chip = page.locator(f"#history .chip[data-round-id='{second['round_id']}']")
        await chip.click()
        await verified(page, second["crash_point"])
        await expect(page.locator("#v-edge")).to_have_value("5")
        # Any round by its number, from /api/rounds/ID.
        await page.fill("#v-round-id", str(first["round_id"]))
        await page.click("#v-load")
        await verified(page, first["crash_point"])
        await expect(page.locator("#v-seed")).to_have_value(first["server_seed"])
        await tab.shot("verify-house-edge-5")
        assert tab.errors == []
    finally:
        await watcher.close()
