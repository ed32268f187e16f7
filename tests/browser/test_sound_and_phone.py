"""Issue 20: the page's sound (off by default, remembered, a tick as the pillar
climbs, a chime at a cash-out, a rumble at the crash) and its phone layout (a
one-line header, 44 px tap targets, the pillar using the sky)."""

from __future__ import annotations

from playwright.async_api import expect

from .conftest import Browsing
from .test_page import next_betting, phase, register

# Every sound the page starts, by its oscillator's type ("buffer" for noise).
COUNT_SOUNDS = """
window.sounds = [];
const oscStart = OscillatorNode.prototype.start;
OscillatorNode.prototype.start = function (...args) {
  window.sounds.push(this.type);
  return oscStart.apply(this, args);
};
const bufferStart = AudioBufferSourceNode.prototype.start;
AudioBufferSourceNode.prototype.start = function (...args) {
  window.sounds.push("buffer");
  return bufferStart.apply(this, args);
};
"""


async def test_sound_is_off_until_turned_on_and_plays_the_round(browsing: Browsing) -> None:
    tab = await browsing.open()
    page = tab.page
    await page.context.add_init_script(COUNT_SOUNDS)
    await page.reload()
    toggle = page.get_by_role("button", name="Sound", exact=True)
    await expect(toggle).to_have_attribute("aria-pressed", "false")
    await register(page, "sound_a")
    await next_betting(page)  # a whole round went by: not a sound
    assert await page.evaluate("window.sounds") == []

    await toggle.click()
    await expect(toggle).to_have_attribute("aria-pressed", "true")
    await page.reload()
    await expect(toggle).to_have_attribute("aria-pressed", "true")
    await next_betting(page)
    await page.evaluate("window.sounds = []")  # from this round's betting on
    await page.fill("#amount-0", "1.00")
    await page.fill("#auto-0", "1.10")
    await page.click("#bet-0")
    await expect(page.locator("#bet-status-0")).to_have_attribute("data-payout", "110")
    await phase(page, "crashed")
    sounds = await page.evaluate("window.sounds")
    # The rounds crash at 1.30x or more: a tick per 5 % of growth is 5 or more.
    assert sounds.count("sine") >= 5, sounds
    assert sounds.count("triangle") == 2, sounds  # the cash-out's two notes
    assert sounds.count("sawtooth") == 1 and sounds.count("buffer") == 1, sounds

    await toggle.click()
    await page.reload()
    await expect(toggle).to_have_attribute("aria-pressed", "false")
    assert tab.errors == []


async def test_the_phone_layout(browsing: Browsing) -> None:
    tab = await browsing.open(width=390, height=844)
    page = tab.page
    await register(page, "a_rather_long_name")
    await next_betting(page)  # a crash in the history: chips to tap
    await expect(page.locator("#history .chip").first).to_be_visible()
    await page.evaluate("window.scrollTo(0, 0)")
    await tab.shot("phone-logged-in")

    header = await page.evaluate(
        """() => {
          const top = document.querySelector("header.top");
          const boxes = [...top.querySelectorAll(":scope > *, .who > *")]
            .map((node) => node.getBoundingClientRect())
            .filter((r) => r.width > 0 && r.height > 0);
          return {
            height: top.getBoundingClientRect().height,
            overflow: top.scrollWidth - top.clientWidth,
            centres: boxes.map((r) => r.top + r.height / 2),
          };
        }"""
    )
    # One line: every item of the header on the same middle line, nothing cut off.
    assert max(header["centres"]) - min(header["centres"]) <= 4, header
    assert header["overflow"] <= 0 and header["height"] <= 72, header

    small = await page.evaluate(
        """() => [...document.querySelectorAll("button, input, select")]
          // Names inside lines of text (chat, bets, leaderboard) are inline
          // targets, which WCAG 2.5.8 exempts from the size rule.
          .filter((node) => !node.classList.contains("user-link") && node.checkVisibility())
          .map((node) => [node.id || node.className, node.getBoundingClientRect()])
          .filter(([, r]) => r.width < 44 || r.height < 44)
          .map(([name, r]) => `${name}: ${Math.round(r.width)}x${Math.round(r.height)}`)"""
    )
    assert small == [], small

    # The history chips get the bar's width, each shown whole (the bar clips
    # what overflows), and the pillar most of the stage.
    chips = await page.locator("#history").bounding_box()
    assert chips is not None and chips["width"] >= 390 * 0.65, chips
    cut = await page.evaluate(
        """() => {
          const bar = document.getElementById("history").getBoundingClientRect();
          return [...document.querySelectorAll("#history .chip")]
            .filter((chip) => !chip.hidden)
            .map((chip) => chip.getBoundingClientRect())
            .filter((r) => r.top < bar.top || r.bottom > bar.bottom || r.right > bar.right)
            .map((r) => `${r.top}-${r.bottom} in ${bar.top}-${bar.bottom}`);
        }"""
    )
    assert cut == [], cut
    room = await page.evaluate(
        """async () => {
          const { PillarView } = await import(new URL("pillar.js", location.href));
          const canvas = document.getElementById("pillar");
          const view = new PillarView(canvas, document.querySelector("#stage .overlay"));
          view.resize(canvas.clientWidth, canvas.clientHeight);
          return { clear: view.clearTop, height: view.height };
        }"""
    )
    assert room["height"] >= 380 and room["clear"] <= room["height"] * 0.3, room
    assert tab.errors == []
