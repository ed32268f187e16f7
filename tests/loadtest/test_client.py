"""The harness's raw WebSocket client (loadtest/client.py): its handshake."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from websockets.utils import accept_key

from loadtest.client import ClientStats, open_client

Answer = Callable[[bytes], bytes]


@pytest.fixture
async def answering() -> AsyncIterator[Callable[[Answer], asyncio.Future[int]]]:
    """A TCP server that answers the handshake with ``answer(request)``; its port."""
    servers: list[asyncio.Server] = []

    async def start(answer: Answer) -> int:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            request = await reader.readuntil(b"\r\n\r\n")
            writer.write(answer(request))
            await writer.drain()
            await reader.read()  # until the client hangs up
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    yield lambda answer: asyncio.ensure_future(start(answer))
    for server in servers:
        server.close()
        await server.wait_closed()


def switching(accept: Callable[[str], str]) -> Answer:
    def answer(request: bytes) -> bytes:
        key = next(
            line.split(b":", 1)[1].strip().decode()
            for line in request.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key:")
        )
        return (
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept(key)}\r\n\r\n"
        ).encode()

    return answer


async def test_the_right_accept_opens_the_connection(
    answering: Callable[[Answer], asyncio.Future[int]],
) -> None:
    port = await answering(switching(accept_key))
    stats = ClientStats()
    client = await open_client("127.0.0.1", port, stats)
    assert stats.connected == 1
    assert client.transport is not None
    client.transport.close()


@pytest.mark.parametrize(
    "accept", [lambda key: accept_key(key + "x"), lambda key: "", lambda key: key]
)
async def test_a_wrong_accept_is_refused(
    answering: Callable[[Answer], asyncio.Future[int]], accept: Callable[[str], str]
) -> None:
    port = await answering(switching(accept))
    stats = ClientStats()
    with pytest.raises(ConnectionError, match="Sec-WebSocket-Accept"):
        await open_client("127.0.0.1", port, stats)
    assert stats.connected == 0
