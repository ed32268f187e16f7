"""The WebSocket server's settings (server/listen.py)."""

from __future__ import annotations

import socket

import pytest
from websockets.asyncio.client import connect

from pillarpayout_ws.exceptions import ConfigError
from pillarpayout_ws.server.listen import listen
from pillarpayout_ws.server.routes import Router

from .conftest import ManualGame


async def test_a_port_in_use_is_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        router = Router(websocket=lambda c, r: None, pages={})

        async def nothing(connection: object) -> None:
            return None

        with pytest.raises(ConfigError, match=f"port {port} on 127.0.0.1 is already in use"):
            await listen(nothing, "127.0.0.1", port, process_request=router, server_header="t")


async def test_compression_is_off_even_when_asked_for(manual_game: ManualGame) -> None:
    # Frames are framed once for every socket (fanout.py): no per-socket deflate.
    async with connect(manual_game.url, compression="deflate") as ws:
        response = ws.response
        assert response is not None
        assert "Sec-WebSocket-Extensions" not in response.headers
        assert response.headers["Server"].startswith("pillarpayout/")
