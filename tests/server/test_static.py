"""The browser client's files over HTTP: content types, caching, nothing else reachable."""

from __future__ import annotations

import asyncio
import http.client
import re
from importlib import resources
from pathlib import PurePosixPath

import orjson

from pillarpayout_ws.server.static import CONTENT_TYPES, WebFiles

from .conftest import GameServer

WEB = resources.files("pillarpayout_ws") / "web"


def _get(port: int, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    # http.client sends the path exactly as given: no normalising of "..".
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


async def get(server: GameServer, path: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    return await asyncio.to_thread(_get, server.app.port, path, headers)


def test_the_package_ships_the_page() -> None:
    names = WebFiles.load().names
    assert {"index.html", "app.js", "style.css", "verify.js", "growth.js"} <= names
    # Every module the page imports, and every file index.html names, is shipped.
    for name in names:
        text = (WEB / name).read_text()
        imported = re.findall(r'from "\./([^"]+)"', text)
        linked = re.findall(r'(?:src|href)="([^"]+)"', text)
        assert set(imported + linked) <= names, name


async def test_files_are_served_with_their_content_types(game_server: GameServer) -> None:
    status, headers, body = await get(game_server, "/")
    assert status == 200
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert b'<script type="module" src="app.js"></script>' in body
    assert "default-src 'self'" in headers["content-security-policy"]
    for name in WebFiles.load().names:
        status, headers, body = await get(game_server, f"/{name}?v=1")
        assert status == 200, name
        assert headers["content-type"] == CONTENT_TYPES[PurePosixPath(name).suffix]
        assert headers["cache-control"] == "no-cache"
        assert headers["x-content-type-options"] == "nosniff"
        assert body == (WEB / name).read_bytes()
        assert int(headers["content-length"]) == len(body)


async def test_an_unchanged_file_is_not_sent_again(game_server: GameServer) -> None:
    _, headers, _ = await get(game_server, "/app.js")
    etag = headers["etag"]
    status, headers, body = await get(game_server, "/app.js", **{"If-None-Match": etag})
    assert (status, body, headers["etag"]) == (304, b"", etag)
    status, _, _ = await get(game_server, "/app.js", **{"If-None-Match": '"stale"'})
    assert status == 200


async def test_nothing_outside_the_page_can_be_named(game_server: GameServer) -> None:
    for path in (
        "/../pyproject.toml",
        "/../../pyproject.toml",
        "/%2e%2e/",
        "/%2e%2e/pyproject.toml",
        "/..%2fschema.sql",
        "/./app.js",
        "//app.js",
        "/app.js/",
        "/web/app.js",
        "/server/app.py",
        "/__init__.py",
        "/schema.sql",
        "/nothing.js",
        "/index.html%00.js",
    ):
        status, _, body = await get(game_server, path)
        assert (status, body) == (404, b"not found\n"), path


async def test_the_other_paths_are_unchanged(game_server: GameServer) -> None:
    status, headers, body = await get(game_server, "/healthz")
    assert status == 200 and headers["content-type"] == "application/json"
    assert orjson.loads(body)["status"] == "ok"
    status, headers, _ = await get(game_server, "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    status, _, _ = await get(game_server, "/ws")  # no Upgrade header: not a WebSocket
    assert status == 426
