"""Issue 20, the page as a player reads it: money that says what it is, errors
in a player's words, verify straight after a load, nothing covered or cut off,
chat cues, a voided round, and what a screen reader hears (axe-core)."""

from __future__ import annotations

import re
from typing import Any

import orjson
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Page, WebSocketRoute, expect

from pillarpayout_ws.server.admin import void_round
from pillarpayout_ws.storage import open_storage

from ..conftest import REPO
from .conftest import Browsing, Tab
from .test_page import multiplier_reaches, next_betting, phase, register, verified

ERRORS_JS = "() => import(new URL('errors.js', location.href))"


def protocol_error_codes() -> set[str]:
    """Every code in protocol.md's "Error codes" tables."""
    text = (REPO / "protocol.md").read_text()
    section = text.split("## Error codes", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([a-z_]+)` \|", section, re.M))


class Frames:
    """The page's sockets through a route that can change the server's frames
    (``edit``) and hand the page frames of its own (``inject``)."""

    def __init__(self, edit: Any = None) -> None:
        self.edit = edit
        self.routes: list[WebSocketRoute] = []

    def __call__(self, ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()
        self.routes.append(ws)

        def to_page(message: str | bytes) -> None:
            frame = orjson.loads(message)
            if self.edit is not None:
                frame = self.edit(frame)
            ws.send(orjson.dumps(frame).decode())

        server.on_message(to_page)

    def inject(self, frame: dict[str, Any]) -> None:
        self.routes[-1].send(orjson.dumps(frame).decode())


async def routed(tab: Tab, frames: Frames) -> Page:
    await tab.page.route_web_socket(re.compile(r"/ws$"), frames)
    await tab.page.reload()
    await expect(tab.page.locator("#conn")).to_have_attribute("data-state", "live")
    return tab.page


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
    # A refused cancel is not a refused cash-out; a slot whose bet was cancelled says so.
    cancel_words = await page.evaluate(
        f"""async () => {{
          const {{ errorSentence }} = await ({ERRORS_JS})();
          return [
            errorSentence({{ code: "no_active_bet", message: "" }}, "cancel"),
            errorSentence({{ code: "betting_closed", message: "" }}, "cancel"),
            errorSentence({{ code: "already_bet",
              message: "you cancelled your bet in slot 0 of this round: bet in the other slot" }}),
          ];
        }}"""
    )
    assert cancel_words == [
        "There is no bet in this slot this round to cancel.",
        "Too late to cancel: the pillar has started building.",
        "You cancelled this slot's bet this round: "
        "bet in the other slot, or in this one next round.",
    ]
    assert tab.errors == []


async def test_the_toast_covers_nothing_and_history_chips_show_whole(
    browsing: Browsing,
) -> None:
    def long_history(frame: dict[str, Any]) -> dict[str, Any]:
        if frame["type"] == "hello":
            frame["history"] = [
                {"round_id": i, "crash_point": 1000.0 + i} for i in range(1, 41)
            ] + frame["history"]
        return frame

    tab = await browsing.open(width=1280, height=860)
    frames = Frames(long_history)
    page = await routed(tab, frames)
    chips = page.locator("#history .chip")
    await expect(chips.first).to_be_visible()
    boxes = await page.evaluate(
        """() => {
          const box = (node) => node.getBoundingClientRect().toJSON();
          return { row: box(document.getElementById('history')),
                   verify: box(document.getElementById('open-verify')),
                   chips: [...document.querySelectorAll('#history .chip')].map(box) };
        }"""
    )
    row, verify = boxes["row"], boxes["verify"]
    shown = 0
    for chip in boxes["chips"]:
        if chip["width"] == 0:
            continue  # hidden: no room left in the row
        inside = chip["top"] >= row["top"] and chip["bottom"] <= row["bottom"]
        outside = chip["top"] >= row["bottom"]
        assert inside or outside, "a chip is cut off"
        if inside:
            shown += 1
            assert chip["right"] <= verify["left"], "a chip runs under 'Verify a seed…'"
            assert chip["left"] >= row["left"]
    assert shown >= 5

    # A toast (a completed goal here) covers nothing the player can click or type in,
    # wherever the page is scrolled: the chat's Send button above all.
    goal = await page.evaluate("() => document.getElementById('goal').dataset.current")
    await page.locator("#chat-form button").scroll_into_view_if_needed()
    await page.evaluate(
        "() => window.scrollBy(0, document.getElementById('chat-form').getBoundingClientRect()"
        ".bottom - window.innerHeight + 12)"
    )
    goal_frame = {
        "type": "goal",
        "id": 1,
        "name": "Tower of Babel",
        "current_blocks": 500,
        "target_blocks": 500,
        "reward": "a golden pillar skin for everyone",
    }
    frames.inject({**goal_frame, "status": "active"})
    frames.inject({**goal_frame, "status": "completed"})
    toast = page.locator("#toast")
    await expect(toast).to_contain_text("completed")
    await tab.shot("toast-over-chat")
    for scroll in ("window.scrollY", "0"):
        await page.evaluate(f"() => window.scrollTo(0, {scroll})")
        covered = await page.evaluate(
            """() => {
              const t = document.getElementById('toast').getBoundingClientRect();
              return [...document.querySelectorAll('button, input, select, a, summary')]
                .filter((node) => {
                  const b = node.getBoundingClientRect();
                  return b.width > 0 && b.left < t.right && b.right > t.left
                    && b.top < t.bottom && b.bottom > t.top;
                })
                .map((node) => node.id || node.textContent);
            }"""
        )
        assert covered == [], covered
    await tab.shot("toast-and-chips")
    assert goal is not None
    assert tab.errors == []


async def test_own_chat_lines_are_marked_and_new_lines_are_cued(browsing: Browsing) -> None:
    tab = await browsing.open()
    frames = Frames()
    page = await routed(tab, frames)
    other = await browsing.open()
    await register(page, "chat_me")
    await register(other.page, "chat_you")
    await page.fill("#chat-text", "my own line")
    await page.press("#chat-text", "Enter")
    await other.page.fill("#chat-text", "their line")
    await other.page.press("#chat-text", "Enter")
    await expect(page.locator("#chat li")).to_have_count(2)
    # Enough lines to scroll (handed to the page: the server allows a line a second).
    for i in range(20):
        frames.inject(
            {
                "type": "chat",
                "id": 1000 + i,
                "username": ("chat_me", "chat_you")[i % 2],
                "text": f"line {i}",
                "ts": 1767225614.25,
            }
        )
    await expect(page.locator("#chat li")).to_have_count(22)
    mine = page.locator("#chat li.mine")
    await expect(mine).to_have_count(11)
    await expect(mine.first.locator(".you-tag")).to_have_text("you")
    await expect(mine.first.locator(".you-tag")).to_be_visible()
    await expect(other.page.locator("#chat li.mine")).to_have_count(1)
    # Read as a sentence.
    line = page.locator("#chat li").last
    await expect(line.locator(".sr-only")).to_have_text(" says: ")
    assert "chat_you says: line 19" in (await line.text_content() or "")
    # Scrolled up, a new line does not pull the list down: a cue says it came.
    cue = page.locator("#chat-new")
    await expect(cue).to_be_hidden()
    await page.evaluate("() => { document.getElementById('chat').scrollTop = 0; }")
    frames.inject(
        {
            "type": "chat",
            "id": 2000,
            "username": "chat_you",
            "text": "are you there?",
            "ts": 1767225614.25,
        }
    )
    await expect(page.locator("#chat li").last).to_contain_text("are you there?")
    await expect(cue).to_be_visible()
    await page.locator("#chat").scroll_into_view_if_needed()
    await tab.shot("chat-new-messages")
    assert await page.evaluate("() => document.getElementById('chat').scrollTop") == 0
    await cue.click()
    await expect(cue).to_be_hidden()
    at_bottom = (
        "() => { const l = document.getElementById('chat');"
        " return l.scrollTop + l.clientHeight >= l.scrollHeight - 8; }"
    )
    assert await page.evaluate(at_bottom)
    # After a reload, the own line from hello is marked once the session is back.
    await page.reload()
    await expect(page.locator("#username")).to_have_text("chat_me")
    await expect(page.locator("#chat li")).to_have_count(2)
    await expect(page.locator("#chat li.mine")).to_have_count(1)
    assert tab.errors == [] and other.errors == []


async def test_phases_and_the_crash_are_announced_without_every_tick(browsing: Browsing) -> None:
    tab = await browsing.open()
    page = tab.page
    region = page.locator("#announce")
    await expect(region).to_have_attribute("aria-live", "polite")
    await next_betting(page)
    await page.evaluate(
        """() => {
          window.announced = [];
          new MutationObserver(() => window.announced.push(
            document.getElementById('announce').textContent))
            .observe(document.getElementById('announce'),
                     { childList: true, characterData: true, subtree: true });
        }"""
    )
    ticks_before = len(tab.received_of("tick"))
    await next_betting(page)
    await expect(region).to_contain_text("place your bets")
    crashed = tab.received_of("crashed")[-1]
    announced: list[str] = await page.evaluate("() => window.announced")
    said = " ".join(announced)
    assert f"the pillar fell at {crashed['crash_point']:.2f}x" in said
    assert "building" in said
    assert len(tab.received_of("tick")) - ticks_before > 10
    assert len(announced) <= 4, announced  # betting, running, crash: not the ticks
    # The history chips are named for a screen reader.
    chip = page.locator("#history .chip").first
    await expect(chip).to_have_attribute(
        "aria-label", f"Round {crashed['round_id']} crashed at {crashed['crash_point']:.2f}x"
    )
    assert tab.errors == []


async def axe_serious(page: Page) -> list[str]:
    results = await Axe().run(page)
    return [
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']]}"
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]


async def test_axe_finds_no_serious_violation(browsing: Browsing) -> None:
    def every_tone(frame: dict[str, Any]) -> dict[str, Any]:
        # Chips of every colour (bust, low, good, big), for the contrast check.
        if frame["type"] == "hello":
            tones = [1.0, 1.5, 5.0, 25.0]
            frame["history"] = [
                {"round_id": -i, "crash_point": crash} for i, crash in enumerate(tones, 1)
            ] + frame["history"]
        return frame

    tab = await browsing.open()
    page = await routed(tab, Frames(every_tone))
    await expect(page.locator("#history .chip.bust")).to_have_count(1)
    assert await axe_serious(page) == []  # logged out

    await register(page, "axe_a")
    await next_betting(page)
    await page.fill("#amount-0", "1.00")
    await page.click("#bet-0")
    await page.fill("#amount-1", "0.05")  # an error on show
    await page.click("#bet-1")
    await expect(page.locator("#bet-error-1")).not_to_be_empty()
    await page.fill("#chat-text", "hello axe")
    await page.press("#chat-text", "Enter")
    await expect(page.locator("#chat li.mine")).to_have_count(1)
    await phase(page, "running")
    assert await axe_serious(page) == []  # logged in, during a round

    # A disabled Cash out looks disabled: not the green of one to click.
    await phase(page, "crashed")
    cashout = page.locator("#cashout-1")
    await expect(cashout).to_be_disabled()
    background = await cashout.evaluate("(node) => getComputedStyle(node).backgroundColor")
    assert background != "rgb(60, 207, 126)"

    await page.locator("#history .chip").first.click()
    await expect(page.locator("#v-result")).to_have_attribute("data-state", "done")
    assert await axe_serious(page) == []  # the verify dialog
    assert tab.errors == []


async def test_a_voided_round_is_shown(browsing: Browsing) -> None:
    tab = await browsing.open()
    page = tab.page
    watcher = await browsing.open()
    await register(page, "voided_v")
    await next_betting(page)
    await page.fill("#amount-0", "4.00")
    await page.click("#bet-0")
    await expect(page.locator("#bet-status-0")).to_contain_text("Bet of 4.00 placed")
    await expect(page.locator("#balance")).to_have_text("996.00")
    storage = await open_storage(data_dir=browsing.site.data_dir)
    try:
        round_id, refunded = await void_round(storage, key="void-a11y")
    finally:
        await storage.close()
    assert refunded == 1
    status = page.locator("#bet-status-0")
    await expect(status).to_have_text(f"Round #{round_id} was voided: your 4.00 is refunded.")
    await expect(page.locator("#balance")).to_have_text("1,000.00")
    for shown in (page, watcher.page):
        await expect(shown.locator("#toast")).to_contain_text(f"Round #{round_id} was voided")
        await expect(shown.locator("#announce")).to_contain_text(f"Round #{round_id} was voided")
    assert tab.errors == [] and watcher.errors == []


async def test_chips_from_hello_verify_at_once(browsing: Browsing) -> None:
    """Issue 20 found every chip saying "the client seed is needed" until the page
    saw a crash; hello's `fairness` and `seed_hash` are all it needs."""
    tab = await browsing.open()
    await next_betting(tab.page)
    await next_betting(tab.page)
    # A new page, which has seen no crash and cannot load /api/rounds (as on a
    # spectator relay, which serves none), during a betting window.
    later = await browsing.open()
    page = later.page
    await page.route(re.compile(r"/api/rounds/"), lambda route: route.fulfill(status=404))
    await page.reload()
    await phase(page, "betting")
    chips = page.locator("#history .chip")
    await expect(chips).to_have_count(2)
    for chip in await chips.all():
        crash = float((await chip.text_content() or "").removesuffix("x"))
        await chip.click()
        await verified(page, crash)
        await expect(page.locator("#v-source")).to_contain_text("seed chain")
        await page.click("#v-close")
    assert not later.received_of("crashed")
    assert all("404" in error for error in later.errors), later.errors
