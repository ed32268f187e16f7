"""Issue 20, the pillar above 7x: the page drawn at 1x, 3x, 10x, 30x and 100x and
after crashes at 30x and 1.00x, on a desktop and a phone, with screenshots in
tests/artifacts/ (pillar-<device>-<state>.png).

The page talks to a stand-in for the server: the real server's `hello`, with
the phase, elapsed time and crash point of each state. A running `hello` is
sent 1 s short of the state's multiplier; the page grows the pillar that
second on its own clock (MAX_AHEAD_MS) and stops at the state's multiplier,
exactly, as it would when ticks stop coming: a still picture to look at."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from playwright.async_api import Page, WebSocketRoute, expect
from websockets.asyncio.client import connect

from pillarpayout_ws.engine import growth

from .conftest import Browsing

DEVICES = {"desktop": (1280, 860), "phone": (390, 844)}
# name, phase, multiplier (hundredths), the scale labels that must be drawn
STATES = [
    ("1x", "betting", 100, ["1.2x", "1.4x", "1.6x", "1.8x", "2x"]),
    ("3x", "running", 300, ["1.5x", "2x", "2.5x", "3x"]),
    ("10x", "running", 1000, ["2x", "4x", "6x", "8x", "10x"]),
    ("30x", "running", 3000, ["10x", "20x", "30x"]),
    ("100x", "running", 10000, ["25x", "50x", "75x", "100x"]),
    ("crash-30x", "crashed", 3000, ["10x", "20x", "30x"]),
    ("crash-1x", "crashed", 100, ["1.2x", "2x"]),
]

# name, the state before the crash, the crash point, the ms after it to look at
FALLS = [
    ("falling-30x", "running", 3000, 350),
    ("falling-100x", "running", 10000, 450),
    ("falling-1x", "betting", 100, 250),
]


def elapsed_for(hundredths: int) -> int:
    """When the engine's curve reaches `hundredths`: exactly it, not past it."""
    elapsed = growth.elapsed_for(hundredths)
    assert growth.multiplier_at(elapsed) == hundredths
    return elapsed


def hello_for(real: dict[str, Any], phase: str, hundredths: int) -> dict[str, Any]:
    frame = {**real, "phase": phase, "crash_point": None, "betting_left_ms": 0}
    if phase == "betting":
        frame.update(m=1.0, integrity=100.0, elapsed_ms=0, betting_left_ms=600_000)
    elif phase == "running":
        frame.update(m=1.0, integrity=100.0, elapsed_ms=elapsed_for(hundredths) - 1000)
    else:
        frame.update(
            m=hundredths / 100,
            integrity=round(10_000 / hundredths, 2),
            elapsed_ms=elapsed_for(hundredths),
            crash_point=hundredths / 100,
        )
    return frame


class StandIn:
    """Takes the page's socket and sends it what the test says, nothing else."""

    def __init__(self) -> None:
        self.route: WebSocketRoute | None = None
        self.pending: dict[str, Any] | None = None

    def __call__(self, ws: WebSocketRoute) -> None:
        self.route = ws
        if self.pending is not None:
            ws.send(orjson.dumps(self.pending).decode())

    def send(self, frame: dict[str, Any]) -> None:
        self.pending = frame
        if self.route is not None:
            self.route.send(orjson.dumps(frame).decode())


# The scale drawn for the page's state, by a second view with the page's own
# canvas and overlay (the same layout as the page's), and where the overlay's
# text is: the text of each line, not its full-width box.
PROBE = """async ([phase, height]) => {
  const { PillarView } = await import(new URL("pillar.js", location.href));
  const canvas = document.getElementById("pillar");
  const box = canvas.getBoundingClientRect();
  const probe = new PillarView(canvas, document.querySelector("#stage .overlay"));
  probe.resize(canvas.clientWidth, canvas.clientHeight);
  probe.draw({ phase, height, integrity: 1 / height, crashHeight: height,
               crashedAt: phase === "crashed" ? 0 : null }, 60_000);
  const labels = probe.labels.map((l) => ({ ...l, x: l.x + box.left, y: l.y + box.top }));
  const text = [];
  for (const node of document.querySelectorAll("#stage .overlay > *")) {
    if (!node.textContent) continue;
    const range = document.createRange();
    range.selectNodeContents(node);
    const r = range.getBoundingClientRect();
    text.push({ id: node.id, x: r.left, y: r.top, w: r.width, h: r.height });
  }
  return { labels, text, canvas: { x: box.left, y: box.top, w: box.width, h: box.height } };
}"""
# How many colours the page's canvas shows (every 7th pixel): a blank one has 1.
COLOURS = """() => {
  const canvas = document.getElementById("pillar");
  const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  const colours = new Set();
  for (let i = 0; i < pixels.length; i += 4 * 7) {
    colours.add((pixels[i] << 16) | (pixels[i + 1] << 8) | pixels[i + 2]);
  }
  return colours.size;
}"""


def overlaps(a: dict[str, float], b: dict[str, float]) -> bool:
    return (
        a["x"] < b["x"] + b["w"]
        and b["x"] < a["x"] + a["w"]
        and a["y"] < b["y"] + b["h"]
        and b["y"] < a["y"] + a["h"]
    )


async def real_hello(ws_url: str) -> dict[str, Any]:
    async with connect(ws_url) as ws:
        frame: dict[str, Any] = orjson.loads(await ws.recv())
    assert frame["type"] == "hello"
    return frame


@pytest.mark.parametrize("device", DEVICES)
async def test_the_pillar_reads_at_any_height(browsing: Browsing, device: str) -> None:
    real = await real_hello(browsing.site.ws_url)
    width, height = DEVICES[device]
    tab = await browsing.open(width=width, height=height)
    page = tab.page
    server = StandIn()
    server.send(hello_for(real, "betting", 100))
    await page.route_web_socket("**/ws", server)
    await page.clock.install()  # time flows, until a falling pillar is paused to look at
    await page.reload()
    for name, phase, hundredths, expected in STATES:
        server.send(hello_for(real, phase, hundredths))
        await shown(page, phase, hundredths)
        await tab.shot(f"pillar-{device}-{name}")
        assert await page.evaluate(COLOURS) > 40, f"{name}: the canvas is (nearly) blank"
        drawn = await page.evaluate(PROBE, [phase, hundredths / 100])
        texts = [label["text"] for label in drawn["labels"]]
        assert set(expected) <= set(texts), (name, texts)
        assert len(texts) <= 6, (name, texts)
        canvas = drawn["canvas"]
        for label in drawn["labels"]:
            assert (
                canvas["y"] <= label["y"] and label["y"] + label["h"] <= canvas["y"] + canvas["h"]
            )
            for text in drawn["text"]:
                assert not overlaps(label, text), (name, label, text)
    # The fall itself, a few frames after the crash frame.
    for name, start, hundredths, after_ms in FALLS:
        server.send(hello_for(real, start, hundredths))
        await shown(page, start, hundredths if start == "running" else 100)
        chips = await page.locator("#history .chip").count()
        now_ms = await page.evaluate("Date.now()")
        await page.clock.pause_at(datetime.fromtimestamp(now_ms / 1000 + 0.1, UTC))
        server.send(crashed(real, hundredths))
        # The page took the crash (its history grew); then the frames after it.
        await expect(page.locator("#history .chip")).to_have_count(chips + 1)
        await page.clock.run_for(after_ms)
        await shown(page, "crashed", hundredths)
        await tab.shot(f"pillar-{device}-{name}")
        assert await page.evaluate(COLOURS) > 40, f"{name}: the canvas is (nearly) blank"
        await page.clock.resume()
    assert tab.errors == []


def crashed(real: dict[str, Any], hundredths: int) -> dict[str, Any]:
    return {
        "type": "crashed",
        "round_id": real["round_id"],
        "crash_point": hundredths / 100,
        "server_seed": "00" * 32,
        "client_seed": real["fairness"]["client_seed"],
        "nonce": real["nonce"],
        "elapsed_ms": elapsed_for(hundredths),
    }


async def shown(page: Page, phase: str, hundredths: int) -> None:
    await expect(page.locator("#phase")).to_have_attribute("data-phase", phase)
    await expect(page.locator("#multiplier")).to_have_attribute("data-hundredths", str(hundredths))


def luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


async def test_the_scale_labels_meet_wcag_aa_on_the_sky(browsing: Browsing) -> None:
    tab = await browsing.open()
    label, sky = await tab.page.evaluate(
        """async () => {
          const p = await import(new URL("pillar.js", location.href));
          return [p.LABEL_COLOUR, p.SKY];
        }"""
    )
    for background in sky:
        light, dark = sorted((luminance(label), luminance(background)), reverse=True)
        assert (light + 0.05) / (dark + 0.05) >= 4.5, (label, background)
