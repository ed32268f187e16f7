"""What the game and the relays share on their port: the WebSocket settings, and
the JSON and Prometheus answers of ``/healthz`` and ``/metrics``."""

from __future__ import annotations

import errno
from collections.abc import Awaitable, Callable, Sequence
from http import HTTPStatus
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, generate_latest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response
from websockets.typing import Origin

from ..exceptions import ConfigError
from .fanout import GameConnection


async def listen(
    handler: Callable[[ServerConnection], Awaitable[None]],
    host: str,
    port: int,
    *,
    process_request: Callable[[ServerConnection, Request], Response | None],
    server_header: str,
    origins: Sequence[Origin | None] | None = None,
    reuse_port: bool = False,
) -> Server:
    """The ``/ws`` server: compression off, small frames and queues for small
    messages, pings on, a large backlog; a port in use is a one-line ConfigError."""
    try:
        return await serve(
            handler,
            host,
            port,
            process_request=process_request,
            create_connection=GameConnection,
            origins=origins,
            compression=None,
            max_size=4096,
            max_queue=16,
            write_limit=32 * 1024,
            ping_interval=20,
            ping_timeout=20,
            backlog=4096,
            reuse_port=reuse_port,
            server_header=server_header,
        )
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            hint = " (several relays may share it with --reuse-port)" if reuse_port else ""
            raise ConfigError(f"port {port} on {host} is already in use{hint}") from None
        raise ConfigError(f"cannot listen on {host}:{port}: {exc}") from None


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
