"""A minimal WebSocket client for load: many thousands per process, little CPU each.

It speaks just enough RFC 6455 for the game: the opening handshake (checking the
server's ``Sec-WebSocket-Accept`` with websockets' own ``accept_key``), unmasked
server frames (text, ping, close), and masked client text frames. It parses
only what it measures: the frame type (a prefix compare) and, for ticks, the
server's ``ts`` (found by a byte search, not a JSON parse).
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
import time
from array import array
from collections import Counter
from collections.abc import Callable
from typing import cast

import orjson
from websockets.utils import accept_key

TICK_PREFIX = b'{"type":"tick"'
_TS_KEY = b'"ts":'


def masked_text_frame(payload: bytes) -> bytes:
    """A client text frame: clients must mask (RFC 6455 section 5.3)."""
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        header = bytes((0x81, 0x80 | n))
    elif n < 65536:
        header = bytes((0x81, 0x80 | 126)) + struct.pack("!H", n)
    else:
        header = bytes((0x81, 0x80 | 127)) + struct.pack("!Q", n)
    # XOR with the repeated mask, done on whole integers for speed.
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    body = (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big") if n else b""
    return header + mask + body


def tick_ts(payload: bytes) -> float | None:
    """The ``ts`` of a tick frame, without parsing the JSON."""
    i = payload.rfind(_TS_KEY)
    if i < 0:
        return None
    j = i + len(_TS_KEY)
    k = payload.find(b"}", j)
    try:
        return float(payload[j:k])
    except ValueError:
        return None


class ClientStats:
    """Counters shared by every client of one process."""

    def __init__(self) -> None:
        self.connected = 0
        self.frames = 0
        self.ticks = 0
        self.bytes_in = 0
        self.frames_out = 0
        self.closed = 0
        self.tick_delays_ms = array("d")
        self.record_delays = False
        self.close_codes: Counter[int] = Counter()  # close frames from the server


class GameClient(asyncio.Protocol):
    """One connection. ``on_frame(client, payload)`` sees every text frame but ticks
    (ticks too with ``all_frames``); only clients with ``measure`` parse the ``ts``
    of their ticks. ``ticks`` counts this connection's ticks."""

    def __init__(
        self,
        host: str,
        path: str,
        stats: ClientStats,
        on_frame: Callable[[GameClient, bytes], None] | None = None,
        measure: bool = True,
        all_frames: bool = False,
    ) -> None:
        self.host, self.path, self.stats = host, path, stats
        self.on_frame = on_frame
        self.measure = measure
        self.all_frames = all_frames
        self.ticks = 0
        self.transport: asyncio.Transport | None = None
        self.open = asyncio.get_running_loop().create_future()
        self._buffer = bytearray()
        self._handshaken = False
        self._accept = b""  # the Sec-WebSocket-Accept the server must answer with
        self.connected_at = 0.0
        self.connect_ms = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.connected_at = time.monotonic()
        key = base64.b64encode(os.urandom(16)).decode()
        self._accept = accept_key(key).encode()
        self.transport.write(
            f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )

    def send(self, frame: dict[str, object]) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(masked_text_frame(orjson.dumps(frame)))
            self.stats.frames_out += 1

    def data_received(self, data: bytes) -> None:
        stats = self.stats
        stats.bytes_in += len(data)
        buf = self._buffer
        buf += data
        if not self._handshaken:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            response = bytes(buf[:end])
            del buf[: end + 4]
            status, *lines = response.split(b"\r\n")
            refusal = None
            if b" 101 " not in status:
                refusal = status.decode(errors="replace")
            elif not _answers(lines, self._accept):
                refusal = "the server's Sec-WebSocket-Accept does not match our key"
            if refusal is not None:
                if not self.open.done():
                    self.open.set_exception(ConnectionError(refusal))
                assert self.transport is not None
                self.transport.close()
                return
            self._handshaken = True
            stats.connected += 1
            if not self.open.done():
                self.open.set_result(None)
        pos, size = 0, len(buf)
        while size - pos >= 2:
            opcode = buf[pos] & 0x0F
            n = buf[pos + 1] & 0x7F
            head = 2
            if n == 126:
                if size - pos < 4:
                    break
                n = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                head = 4
            elif n == 127:
                if size - pos < 10:
                    break
                n = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                head = 10
            if size - pos < head + n:
                break
            start = pos + head
            pos = start + n
            if opcode == 0x1:
                stats.frames += 1
                # Ticks are most of the traffic: recognised in place, never copied,
                # and parsed only by the clients that measure delay.
                if buf.startswith(TICK_PREFIX, start):
                    stats.ticks += 1
                    self.ticks += 1
                    if self.measure and stats.record_delays:
                        ts = tick_ts(bytes(buf[start:pos]))
                        if ts is not None:
                            stats.tick_delays_ms.append((time.time() - ts) * 1000)
                    if self.all_frames and self.on_frame is not None:
                        self.on_frame(self, bytes(buf[start:pos]))
                elif self.on_frame is not None:
                    self.on_frame(self, bytes(buf[start:pos]))
            elif opcode == 0x9 and self.transport is not None:  # ping -> pong
                self.transport.write(self._control(0xA, bytes(buf[start:pos])))
            elif opcode == 0x8 and self.transport is not None:  # close
                code = int.from_bytes(buf[start : start + 2], "big") if n >= 2 else 1005
                stats.close_codes[code] += 1
                self.transport.close()
        del buf[:pos]

    @staticmethod
    def _control(opcode: int, payload: bytes) -> bytes:
        frame = masked_text_frame(payload)
        return bytes((0x80 | opcode,)) + frame[1:]

    def connection_lost(self, exc: Exception | None) -> None:
        if self._handshaken:
            self.stats.connected -= 1
        self.stats.closed += 1
        if not self.open.done():
            self.open.set_exception(exc or ConnectionError("closed before the handshake"))


async def open_client(
    host: str,
    port: int,
    stats: ClientStats,
    *,
    path: str = "/ws",
    local_addr: tuple[str, int] | None = None,
    on_frame: Callable[[GameClient, bytes], None] | None = None,
    measure: bool = True,
    all_frames: bool = False,
) -> GameClient:
    """A connected client once the server answered the handshake with 101;
    ``connect_ms`` is how long that took from the first SYN."""
    loop = asyncio.get_running_loop()
    started = time.monotonic()

    def protocol() -> GameClient:
        return GameClient(host, path, stats, on_frame, measure, all_frames)

    if local_addr is None:
        _, client = await loop.create_connection(protocol, host, port)
    else:
        sock = await _connect_from(local_addr, host, port)
        _, client = await loop.create_connection(protocol, sock=sock)
    await client.open
    client.connect_ms = (time.monotonic() - started) * 1000
    return client


IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)  # Linux


async def _connect_from(local_addr: tuple[str, int], host: str, port: int) -> socket.socket:
    """A TCP socket connected to ``host:port`` from ``local_addr``. With port 0 the
    kernel picks the source port at connect time, for this destination: a plain
    bind picks one unused towards every destination, so the sockets earlier runs
    left in TIME_WAIT (to other servers' ports) would run the address out."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        if local_addr[1] == 0:
            sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        sock.bind(local_addr)
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def _answers(header_lines: list[bytes], accept: bytes) -> bool:
    """Whether the handshake's headers carry ``Sec-WebSocket-Accept: accept`` (RFC 6455 4.1)."""
    for line in header_lines:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"sec-websocket-accept":
            return value.strip() == accept
    return False
