"""HTTP on the WebSocket port (server/routes.py): which path gets which answer."""

from __future__ import annotations

import asyncio
import http.client

from .conftest import ManualGame


def get(port: int, path: str) -> tuple[int, str, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.headers.get("Content-Type", ""), resp.read()
    finally:
        conn.close()


async def test_each_path_gets_its_answer(manual_game: ManualGame) -> None:
    port = manual_game.app.port
    answers = {
        path: await asyncio.to_thread(get, port, path)
        for path in ("/healthz", "/healthz?x=/metrics", "/metrics", "/", "/nope", "/ws")
    }
    assert answers["/healthz"][:2] == (200, "application/json")
    # The query string never selects a page.
    assert answers["/healthz?x=/metrics"][:2] == (200, "application/json")
    assert answers["/metrics"][1].startswith("text/plain")
    assert answers["/"][1].startswith("text/html")
    assert answers["/nope"][0] == 404
    # /ws without an upgrade is websockets' own refusal, not a page.
    assert answers["/ws"][0] == 426
