"""Moderator controls and the ignore list (web/moderation.js) in chromium, against a
real ``pillarpayout serve`` whose roles the command line sets."""

from __future__ import annotations

from playwright.async_api import Locator, Page, expect

from ..test_cli import run_cli_async
from .conftest import Browsing
from .test_page import register

IGNORED = "() => localStorage.getItem('pillarpayout.ignored')"


async def say(page: Page, text: str) -> None:
    await page.fill("#chat-text", text)
    await page.press("#chat-text", "Enter")


def line(page: Page, text: str) -> Locator:
    return page.locator("#chat li", has_text=text)


async def test_moderator_controls_and_the_ignore_list(browsing: Browsing) -> None:
    mod_tab, bob_tab = await browsing.open(), await browsing.open()
    mod, bob = mod_tab.page, bob_tab.page
    await register(mod, "mod")
    await register(bob, "bob")
    # A player sees no moderator settings, and only "ignore" on others' lines.
    await expect(mod.locator("#mod-bar .mod-settings")).to_be_hidden()
    code, out, err = await run_cli_async(
        "role", "--data-dir", str(browsing.site.data_dir), "mod", "moderator"
    )
    assert code == 0 and "through the running server" in out, err
    await expect(mod.locator("#mod-bar .mod-settings")).to_be_visible()  # the role frame

    await say(bob, "buy my coins")
    spam = line(mod, "buy my coins")
    await expect(spam.locator("button.mod-ban")).to_be_visible()
    await expect(line(bob, "buy my coins").locator(".mod-tools")).to_have_count(0)  # own line
    await say(mod, "be nice")
    on_bob = line(bob, "be nice")
    await expect(on_bob.locator("button.mod-ignore")).to_have_count(1)
    await expect(
        on_bob.locator("button.mod-ban, button.mod-mute, button.mod-delete")
    ).to_have_count(0)

    await mod_tab.shot("moderation-controls")

    # Delete: gone from every page.
    await spam.locator("button.mod-delete").click()
    await expect(line(bob, "buy my coins")).to_have_count(0)
    await expect(spam).to_have_count(0)
    await expect(mod.locator("#mod-bar .mod-status")).to_contain_text("deleted")

    # Mute: bob's next line is refused, the page says for how long.
    await say(bob, "why?")
    await mod.fill("#mod-bar .mod-minutes", "5")
    await line(mod, "why?").locator("button.mod-mute").click()
    await expect(mod.locator("#mod-bar .mod-status")).to_contain_text("bob is muted until")
    await expect(bob.locator("#mod-bar .mod-status")).to_contain_text("You are muted until")
    await say(bob, "hello?")
    await expect(bob.locator("#chat-error")).to_contain_text("5 more minute")

    # Ignore (bob ignores mod): hidden, remembered across a reload, and undone.
    await line(bob, "be nice").locator("button.mod-ignore").click()
    await expect(line(bob, "be nice")).to_be_hidden()
    assert await bob.evaluate(IGNORED) == '["mod"]'
    await bob.reload()
    await expect(bob.locator("#username")).to_have_text("bob")
    await expect(line(bob, "be nice")).to_have_count(1)
    await expect(line(bob, "be nice")).to_be_hidden()
    await bob.locator("#mod-bar .ignored-user[data-username=mod] button").click()
    await expect(line(bob, "be nice")).to_be_visible()
    assert await bob.evaluate(IGNORED) == "[]"
    for tab in (mod_tab, bob_tab):
        assert tab.errors == []
