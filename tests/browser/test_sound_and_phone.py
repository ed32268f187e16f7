"""Issue 20: the page's sound: off by default, remembered, a tick as the pillar
climbs, a chime at a cash-out, a rumble at the crash."""

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
