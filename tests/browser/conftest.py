"""The page in a real browser: Debian's chromium driven by Playwright, against a real server.

Every test gets its own ``pillarpayout serve`` (embedded PostgreSQL and Redis)
whose seed chain is stored beforehand, so that its first rounds crash between
1.30x and 3.00x: a test can always cash out at 1.10x, and no round outlasts
it. Screenshots go to ``tests/artifacts/`` (git-ignored).
"""

from __future__ import annotations

import asyncio
import os
import select
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from playwright.async_api import (
    Browser,
    ConsoleMessage,
    Error,
    Page,
    WebSocket,
    async_playwright,
    expect,
)

from pillarpayout_ws.engine.fairness import SeedChain
from pillarpayout_ws.storage import open_storage

from ..conftest import REPO
from ..server.conftest import CHAIN_ROUNDS, CLIENT_SEED, chain_with_crashes
from ..serving import ServeProcess, server_pids

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = REPO / "tests" / "artifacts"
SERVE_FLAGS = ("--betting-ms", "4000", "--cooldown-ms", "1500")
# Long enough for any round of the chosen chain on a busy machine.
ROUND_MS = 90_000
# Two cores shared with other test runs: an argon2 hash or a page load can take seconds.
expect.set_options(timeout=30_000)


class Site:
    """A ``pillarpayout serve`` with a known seed chain, restartable on the same port."""

    def __init__(self, data_dir: Path, chain: SeedChain, flags: tuple[str, ...] = ()) -> None:
        self.data_dir = data_dir
        self.chain = chain
        self.flags = (*SERVE_FLAGS, *flags)
        self.serve = ServeProcess(data_dir, *self.flags)

    @classmethod
    async def start(cls, data_dir: Path, flags: tuple[str, ...] = ()) -> Site:
        top = chain_with_crashes(130, 300, 8)
        chain = SeedChain.from_top(top, CHAIN_ROUNDS)
        storage = await open_storage(data_dir=data_dir)
        try:
            await storage.db.create_seed_chain(top, CHAIN_ROUNDS, chain.commitment, CLIENT_SEED)
        finally:
            await storage.close()
        site = cls(data_dir, chain, flags)
        try:
            await asyncio.to_thread(site.serve.wait_healthy)
        except BaseException:
            site.stop()
            raise
        return site

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.serve.port}/"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.serve.port}/ws"

    def kill(self) -> None:
        """``kill -9`` the server; its PostgreSQL and Redis go on (orphans)."""
        self.serve.kill9()

    async def restart(self) -> None:
        """A new server on the same port and data dir; it adopts the orphans."""
        self.serve = ServeProcess(self.data_dir, *self.flags, port=self.serve.port)
        await asyncio.to_thread(self.serve.wait_healthy)

    def stop(self) -> None:
        """Fast: nothing here needs the graceful shutdown's wait for the round to
        end, so the server gets SIGKILL and its PostgreSQL and Redis SIGTERM."""
        if self.serve.proc.poll() is None:
            self.serve.kill9()
        try:
            pids = server_pids(self.data_dir)
        except FileNotFoundError:
            return  # they never started
        for pid in pids:
            _terminate(pid)


def _terminate(pid: int, timeout_s: float = 30.0) -> None:
    """SIGTERM a process that is not our child and wait for it to exit."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        os.kill(pid, signal.SIGTERM)
        poller = select.poll()
        poller.register(fd, select.POLLIN)  # readable once the process has exited
        if not poller.poll(timeout_s * 1000):
            raise AssertionError(f"process {pid} did not stop within {timeout_s} s")
    finally:
        os.close(fd)


class Tab:
    """A page in a fresh browser context, with the console errors it logged and
    every frame its WebSockets sent and received (in order, each socket's after
    the one before it)."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        self.sent: list[dict[str, Any]] = []
        self.received: list[dict[str, Any]] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))
        page.on("websocket", self._websocket)

    def _websocket(self, ws: WebSocket) -> None:
        ws.on("framesent", lambda payload: self.sent.append(orjson.loads(payload)))
        ws.on("framereceived", lambda payload: self.received.append(orjson.loads(payload)))

    def sent_of(self, kind: str) -> list[dict[str, Any]]:
        return [frame for frame in self.sent if frame.get("type") == kind]

    def received_of(self, kind: str) -> list[dict[str, Any]]:
        return [frame for frame in self.received if frame.get("type") == kind]

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    async def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        await self.page.screenshot(path=ARTIFACTS / f"{name}.png")


class Browsing:
    """Opens tabs on one site; every context is closed at the end of the test."""

    def __init__(self, browser: Browser, site: Site) -> None:
        self.browser = browser
        self.site = site
        self.tabs: list[Tab] = []

    async def open(self, *, width: int = 1280, height: int = 800) -> Tab:
        context = await self.browser.new_context(viewport={"width": width, "height": height})
        context.set_default_timeout(30_000)  # the same for clicks and waits
        tab = Tab(await context.new_page())
        self.tabs.append(tab)
        await tab.page.goto(self.site.url)
        return tab

    async def close(self) -> None:
        for tab in self.tabs:
            await tab.page.context.close()


@pytest.fixture(scope="session")
def chromium() -> Path:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package")
    return CHROMIUM


@pytest.fixture(scope="session")
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        try:
            browser = await playwright.chromium.launch(
                executable_path=chromium, args=CHROMIUM_ARGS, headless=True
            )
        except Error as exc:
            pytest.fail(f"chromium did not start: {exc}")
        yield browser
        await browser.close()


@pytest.fixture
def site_flags(request: pytest.FixtureRequest) -> tuple[str, ...]:
    """Extra ``serve`` flags: parametrize a test with ``indirect=True`` to set them."""
    return tuple(getattr(request, "param", ()))


@pytest.fixture
async def site(tmp_path: Path, site_flags: tuple[str, ...]) -> AsyncIterator[Site]:
    site = await Site.start(tmp_path / "data", site_flags)
    try:
        yield site
    finally:
        site.stop()


@pytest.fixture
async def browsing(browser: Browser, site: Site) -> AsyncIterator[Browsing]:
    browsing = Browsing(browser, site)
    try:
        yield browsing
    finally:
        await browsing.close()
