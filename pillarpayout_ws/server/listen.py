"""The WebSocket server the game and the relays share: one set of settings."""

from __future__ import annotations

import errno
from collections.abc import Awaitable, Callable, Sequence

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response
from websockets.typing import Origin

from ..exceptions import ConfigError
from .fanout import TICK_BUFFER_LIMIT, GameConnection


async def listen(
    handler: Callable[[ServerConnection], Awaitable[None]],
    host: str,
    port: int,
    *,
    process_request: Callable[[ServerConnection, Request], Response | Awaitable[Response] | None],
    server_header: str,
    origins: Sequence[Origin | None] | None = None,
    reuse_port: bool = False,
    admit: Callable[[ServerConnection], bool] | None = None,
) -> Server:
    """The ``/ws`` server: compression off, small frames and queues for small
    messages, a large backlog; a port in use is a one-line ConfigError. Pings come
    from the hub (``keepalive.py``), one timer for every connection. ``admit``
    is asked about each TCP connection as it is made (False: dropped)."""
    connection: type[GameConnection] = GameConnection
    if admit is not None:
        connection = type("AdmittedConnection", (GameConnection,), {"admit": staticmethod(admit)})
    try:
        return await serve(
            handler,
            host,
            port,
            process_request=process_request,
            create_connection=connection,
            origins=origins,
            compression=None,
            max_size=4096,
            max_queue=16,
            write_limit=TICK_BUFFER_LIMIT,  # as the hub sets it when it takes a connection
            ping_interval=None,
            backlog=4096,
            reuse_port=reuse_port,
            server_header=server_header,
        )
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            hint = " (several relays may share it with --reuse-port)" if reuse_port else ""
            raise ConfigError(f"port {port} on {host} is already in use{hint}") from None
        raise ConfigError(f"cannot listen on {host}:{port}: {exc}") from None
