"""The floor: a bare uvloop server that writes one pre-framed tick to every socket.

The fan-out benchmark compares ``pillarpayout serve`` with this: the least a
server can do to deliver a tick (accept the handshake, then one
``transport.write`` of the same bytes per socket per tick). Run as
``python -m bench.floor --port P [--tick-ms 100] [--durations FILE]``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import TextIO, cast

import orjson
import uvloop
from websockets.utils import accept_key

from pillarpayout_ws.server.fanout import text_frame


class FloorProtocol(asyncio.Protocol):
    def __init__(self, clients: set[asyncio.Transport]) -> None:
        self.clients = clients
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.upgraded = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        if self.upgraded or self.transport is None:
            return  # pongs and anything else: ignored
        self.buffer += data
        if b"\r\n\r\n" not in self.buffer:
            return
        key = ""
        for line in self.buffer.split(b"\r\n"):
            if line.lower().startswith(b"sec-websocket-key:"):
                key = line.split(b":", 1)[1].strip().decode()
        accept = accept_key(key).encode()
        self.transport.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        self.upgraded = True
        self.clients.add(self.transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.clients.discard(self.transport)


async def main(port: int, tick_ms: int, log: TextIO | None = None) -> None:
    clients: set[asyncio.Transport] = set()
    loop = asyncio.get_running_loop()
    await loop.create_server(lambda: FloorProtocol(clients), "127.0.0.1", port, backlog=4096)
    print("ready", flush=True)
    # With ``log``, a line per tick: when, and how long from making the frame
    # to the last write (as serve's ``tick_fanout_seconds``).
    start, n = time.monotonic(), 0
    while True:
        n += 1
        await asyncio.sleep(max(0.0, start + n * tick_ms / 1000 - time.monotonic()))
        made = time.perf_counter()
        elapsed = n * tick_ms
        frame = text_frame(
            orjson.dumps(
                {
                    "type": "tick",
                    "round_id": 1,
                    "m": 1.23,
                    "integrity": 81.3,
                    "elapsed_ms": elapsed,
                    "ts": time.time(),
                }
            )
        )
        for transport in clients:
            transport.write(frame)
        if log is not None:
            log.write(f"{time.time():.3f} {time.perf_counter() - made:.6f}\n")
            log.flush()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tick-ms", type=int, default=100)
    parser.add_argument("--durations", help="a file to append each tick's write time to")
    args = parser.parse_args()
    if args.durations:
        with open(args.durations, "a") as log:
            uvloop.run(main(args.port, args.tick_ms, log))
    else:
        uvloop.run(main(args.port, args.tick_ms))
