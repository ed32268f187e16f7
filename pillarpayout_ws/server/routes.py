"""HTTP on the WebSocket port: which path gets which answer.

websockets reads every request on the port and asks ``process_request``
before its handshake: a ``Response`` answers the request (plain HTTP), and
``None`` lets the WebSocket handshake go on, and it may be awaitable (a page
that reads PostgreSQL awaits without holding up the game loop). ``Router``
is that callback for the game and for the relays: ``/ws`` goes to a gate that
may refuse the handshake, each other path to its page (or to the page of a
prefix, ``/api/rounds/`` for ``/api/rounds/42``), then to the browser
client's files, else 404. The query string never selects a page.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, generate_latest
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from .static import WebFiles

__all__ = ["Gate", "Page", "Router", "json_response", "metrics_response"]

Page = Callable[[ServerConnection, Request], Response | Awaitable[Response]]
# Refuses a WebSocket handshake with a Response, or lets it go on (None).
Gate = Callable[[ServerConnection, Request], Response | None]


class Router:
    def __init__(
        self,
        *,
        websocket: Gate,
        pages: Mapping[str, Page],
        prefixes: Mapping[str, Page] | None = None,
        files: WebFiles | None = None,
    ) -> None:
        self._websocket = websocket
        self._pages = dict(pages)
        self._prefixes = dict(prefixes or {})
        self._files = files

    def __call__(
        self, connection: ServerConnection, request: Request
    ) -> Response | Awaitable[Response] | None:
        path = request.path.split("?", 1)[0]
        if path == "/ws":
            return self._websocket(connection, request)
        page = self._pages.get(path) or self._prefixes.get(path[: path.rfind("/") + 1])
        if page is not None:
            return page(connection, request)
        if self._files is not None:
            answer = self._files.response(path, request.headers.get("If-None-Match"))
            if answer is not None:
                return answer
        return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")


def json_response(status: HTTPStatus, body: dict[str, Any], *, cache: str = "no-store") -> Response:
    """A JSON answer; ``cache`` is its ``Cache-Control`` (answers that cannot change
    say so, the rest are not stored)."""
    data = orjson.dumps(body)
    headers = Headers(
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(data))),
            ("Cache-Control", cache),
        ]
    )
    return Response(status.value, status.phrase, headers, data)


def metrics_response(registry: CollectorRegistry) -> Response:
    data = generate_latest(registry)
    headers = Headers(
        [
            ("Content-Type", "text/plain; version=0.0.4; charset=utf-8"),
            ("Content-Length", str(len(data))),
        ]
    )
    return Response(200, "OK", headers, data)
