"""HTTP on the WebSocket port: which path gets which answer.

websockets reads every request on the port and asks ``process_request``
before its handshake: a ``Response`` answers the request (plain HTTP), and
``None`` lets the WebSocket handshake go on. ``Router`` is that callback for
the game and for the relays: ``/ws`` goes to a gate that may refuse the
handshake, each other path to its page, then to the browser client's files,
else 404. The query string never selects a page.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, generate_latest
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from .static import WebFiles

__all__ = ["Gate", "Page", "Router", "json_response", "metrics_response"]

Page = Callable[[ServerConnection, Request], Response]
# Refuses a WebSocket handshake with a Response, or lets it go on (None).
Gate = Callable[[ServerConnection, Request], Response | None]


class Router:
    def __init__(
        self,
        *,
        websocket: Gate,
        pages: Mapping[str, Page],
        files: WebFiles | None = None,
    ) -> None:
        self._websocket = websocket
        self._pages = dict(pages)
        self._files = files

    def __call__(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == "/ws":
            return self._websocket(connection, request)
        page = self._pages.get(path)
        if page is not None:
            return page(connection, request)
        if self._files is not None:
            answer = self._files.response(path, request.headers.get("If-None-Match"))
            if answer is not None:
                return answer
        return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")


def json_response(status: HTTPStatus, body: dict[str, Any]) -> Response:
    data = orjson.dumps(body)
    headers = Headers(
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(data))),
            ("Cache-Control", "no-store"),
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
