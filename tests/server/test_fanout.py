"""The hub's chunked broadcasts: every socket gets every frame once, in the order made.

The transports here are stand-ins that record what is written to them (the
hub only calls ``write`` and ``get_write_buffer_size``); real sockets are
covered by the wire tests and the benchmarks.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from hypothesis import given, settings
from hypothesis import strategies as st

from pillarpayout_ws.server.fanout import Client, Hub, text_frame


class Recorder:
    """A transport that keeps the frames written to it."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.frames.append(data[2:])  # the payload: every test frame is short

    def get_write_buffer_size(self) -> int:
        return 0


class Connection:
    def __init__(self) -> None:
        self.transport = Recorder()


def hub_with(count: int, chunk: int = 3) -> tuple[Hub, list[Client]]:
    hub = Hub(chunk=chunk, turn_s=0)  # one chunk per loop turn
    clients = [Client(cast(Any, Connection()), "127.0.0.1") for _ in range(count)]
    for i, client in enumerate(clients):
        hub.add(client)
        hub.login(client, i, f"u{i}", "t")
    return hub, clients


def frames(client: Client) -> list[bytes]:
    return cast(Recorder, client.transport).frames


async def turn() -> None:
    """One loop turn: the hub's next chunk runs before this task resumes."""
    await asyncio.sleep(0)


async def test_a_broadcast_writes_a_chunk_per_turn() -> None:
    hub, clients = hub_with(8)
    hub.broadcast(b"b1")
    assert [len(frames(c)) for c in clients] == [1, 1, 1, 0, 0, 0, 0, 0]
    await turn()
    assert [len(frames(c)) for c in clients] == [1, 1, 1, 1, 1, 1, 0, 0]
    await turn()
    assert all(frames(c) == [b"b1"] for c in clients)
    assert hub.stats.deliveries == 8


async def test_a_frame_for_one_client_comes_after_the_broadcasts_it_was_due() -> None:
    hub, clients = hub_with(8)
    hub.broadcast(b"b1")
    hub.broadcast(b"b2")  # queued behind b1
    hub.send_user(7, b"ack")  # client 7 has had neither yet
    assert frames(clients[7]) == [b"b1", b"b2", b"ack"]
    hub.send_user(0, b"ack0")  # client 0 has had b1, not b2
    assert frames(clients[0]) == [b"b1", b"b2", b"ack0"]
    hub.finish()
    assert frames(clients[7]) == [b"b1", b"b2", b"ack"]  # nothing twice
    assert all(frames(c)[:2] == [b"b1", b"b2"] for c in clients)
    assert hub.stats.deliveries == 16 + 2


async def test_a_tick_goes_out_whole_after_the_broadcasts_before_it() -> None:
    hub, clients = hub_with(8)
    hub.broadcast(b"b1")
    hub.broadcast(b"t1", droppable=True)
    assert all(frames(c) == [b"b1", b"t1"] for c in clients)


async def test_idle_callbacks_wait_for_every_broadcast_to_be_written() -> None:
    hub, clients = hub_with(8)
    written: list[int] = []
    hub.broadcast(b"b1")
    hub.when_idle(lambda: written.append(len(frames(clients[7]))))
    while not written:
        await turn()
    assert written == [1]  # the last socket had b1 before the callback ran
    hub.when_idle(lambda: written.append(0))  # idle already: soon, not now
    assert written == [1]
    await turn()
    assert written == [1, 0]


async def test_a_client_gone_mid_broadcast_gets_nothing_more() -> None:
    hub, clients = hub_with(8)
    hub.broadcast(b"b1")
    hub.remove(clients[5])
    hub.finish()
    assert frames(clients[5]) == []
    assert all(frames(c) == [b"b1"] for i, c in enumerate(clients) if i != 5)


async def test_a_slow_client_skips_the_rest_of_a_tick_it_was_due() -> None:
    hub, clients = hub_with(8)
    slow = cast(Any, clients[6].transport)
    slow.get_write_buffer_size = lambda: hub.tick_buffer_limit + 1
    hub.broadcast(b"t1", droppable=True)
    hub.finish()
    assert frames(clients[6]) == []
    assert hub.stats.ticks_skipped == 1


def test_text_frame_lengths() -> None:
    assert text_frame(b"x" * 125)[:2] == bytes((0x81, 125))
    assert text_frame(b"x" * 126)[:4] == bytes((0x81, 126, 0, 126))
    assert text_frame(b"x" * 65536)[:2] == bytes((0x81, 127))


# Any interleaving of broadcasts, frames for one client, loop turns and
# departures: each client that stays gets exactly the frames made while it was
# there, in the order they were made; one that leaves gets a prefix of them.
operations = st.lists(
    st.one_of(
        st.tuples(st.just("broadcast"), st.booleans()),
        st.tuples(st.just("send"), st.integers(0, 6)),
        st.tuples(st.just("turn"), st.none()),
        st.tuples(st.just("leave"), st.integers(0, 6)),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(operations, st.integers(1, 4))
def test_every_client_sees_every_frame_once_in_order(
    ops: list[tuple[str, Any]], chunk: int
) -> None:
    async def play() -> None:
        hub, clients = hub_with(7, chunk)
        made: list[list[bytes]] = [[] for _ in clients]
        present = set(range(len(clients)))
        for n, (op, arg) in enumerate(ops):
            payload = f"f{n}".encode()
            if op == "broadcast":
                hub.broadcast(payload, droppable=arg)
                for i in present:
                    made[i].append(payload)
            elif op == "send" and arg in present:
                hub.send_user(arg, payload)
                made[arg].append(payload)
            elif op == "turn":
                await turn()
            elif op == "leave" and arg in present:
                hub.remove(clients[arg])
                present.discard(arg)
        hub.finish()
        for i, client in enumerate(clients):
            got = frames(client)
            if i in present:
                assert got == made[i]
            else:
                assert got == made[i][: len(got)]

    asyncio.run(play())
