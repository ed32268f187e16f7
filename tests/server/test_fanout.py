"""The fan-out (server/fanout.py): every socket gets every frame once, in the order made.

The first tests use stand-in transports that record what is written to them
(the hub only calls ``write``, and ``get_write_buffer_size`` on a paused
one); the last ones use real sockets: slow consumers, and a connection that
closes.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
from collections.abc import Callable
from typing import Any, cast

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pillarpayout_ws.server import fanout
from pillarpayout_ws.server.fanout import Client, Hub, text_frame
from pillarpayout_ws.server.routes import metrics_response

from .conftest import GameServer, RawClient


class Recorder:
    """A transport that keeps the frames written to it."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def write(self, data: bytes) -> None:
        while data:  # one write may hold two frames (a tick and its bets)
            size = 2 + data[1]  # every test frame is short
            self.frames.append(data[2:size])
            data = data[size:]

    def get_write_buffer_size(self) -> int:
        return 0


class Connection:
    def __init__(self) -> None:
        self.transport = Recorder()


def hub_with(
    count: int, chunk: int = 3, *, spectators: frozenset[int] = frozenset(), tick_turn_s: float = 0
) -> tuple[Hub, list[Client]]:
    """``count`` clients, logged in as users 0, 1, ... except the ``spectators``;
    every broadcast, a tick's spectators too, writes one chunk per loop turn."""
    hub = Hub(chunk=chunk, turn_s=0, tick_turn_s=tick_turn_s)
    clients = [Client(cast(Any, Connection()), "127.0.0.1") for _ in range(count)]
    for i, client in enumerate(clients):
        hub.add(client)
        if i not in spectators:
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


async def test_a_tick_goes_to_every_player_at_once_after_the_broadcasts_before_it() -> None:
    hub, clients = hub_with(8)
    hub.broadcast(b"b1")
    hub.tick(b"t1")
    assert all(frames(c) == [b"b1", b"t1"] for c in clients)


async def test_players_get_a_broadcast_before_any_spectator() -> None:
    # Clients 0-3 connected first but only watch; 4-7 are logged in.
    hub, clients = hub_with(8, chunk=2, spectators=frozenset(range(4)))
    hub.broadcast(b"b1")
    assert [len(frames(c)) for c in clients] == [0, 0, 0, 0, 1, 1, 0, 0]
    await turn()
    assert [len(frames(c)) for c in clients] == [0, 0, 0, 0, 1, 1, 1, 1]
    hub.finish()
    assert all(frames(c) == [b"b1"] for c in clients)


async def test_a_tick_reaches_the_spectators_in_slices_after_every_player() -> None:
    hub, clients = hub_with(8, chunk=2, spectators=frozenset(range(4)))
    hub.tick(b"t1")
    assert [len(frames(c)) for c in clients] == [1, 1, 0, 0, 1, 1, 1, 1]
    hub.send(clients[3], b"pong")  # a frame for one spectator: the tick first
    assert frames(clients[3]) == [b"t1", b"pong"]
    hub.broadcast(b"b2")  # waits for the tick to reach every spectator
    assert frames(clients[7]) == [b"t1"]
    # The next tick goes to the players at once, after what they were due...
    hub.tick(b"t2")
    assert [frames(c) for c in clients[4:]] == [[b"t1", b"b2", b"t2"]] * 4
    # ...and to the spectators after b2: one still due t1 gets t2 instead.
    assert [frames(c) for c in clients[:4]] == [[b"t1"], [b"t1"], [], [b"t1", b"pong"]]
    hub.finish()
    assert [frames(c) for c in clients[:4]] == [
        [b"t1", b"b2", b"t2"],
        [b"t1", b"b2", b"t2"],
        [b"b2", b"t2"],
        [b"t1", b"pong", b"b2", b"t2"],
    ]
    assert hub.stats.ticks_superseded == 1
    assert hub.stats.deliveries == 7 + 1 + 8 + 8


async def test_when_ticks_are_superseded_no_spectator_is_left_out_every_time() -> None:
    hub, clients = hub_with(6, chunk=2, spectators=frozenset(range(6)))
    for tick in (b"t1", b"t2", b"t3"):  # each reaches one chunk before the next
        hub.tick(tick)
    assert [frames(c) for c in clients] == [[b"t1"]] * 2 + [[b"t2"]] * 2 + [[b"t3"]] * 2
    assert hub.stats.ticks_superseded == 4 + 4


async def test_ticks_share_one_list_of_spectators_until_one_comes_or_goes() -> None:
    """A tick does not copy every spectator into a list of its own (a pass over
    every connection's object, and another to free it): it takes the hub's,
    made again only when the spectators change."""
    hub, clients = hub_with(8, chunk=2, spectators=frozenset(range(6)))
    hub.tick(b"t1")  # the players' part at once, the spectators' in later turns
    first = hub._broadcasts[0].targets
    hub.finish()
    hub.tick(b"t2")
    assert hub._broadcasts[0].targets is first
    hub.finish()
    changes: list[Callable[[], object]] = [
        lambda: hub.login(clients[0], 0, "u0", "t"),
        lambda: hub.logout(clients[0]),
        lambda: hub.remove(clients[1]),
        lambda: hub.add(Client(cast(Any, Connection()), "127.0.0.1")),
    ]
    for change in changes:
        change()
        hub.tick(b"t")
        assert hub._broadcasts[0].targets is not first
        first = hub._broadcasts[0].targets
        hub.finish()
    assert frames(clients[0]) == frames(clients[2]) == [b"t1", b"t2", b"t", b"t", b"t", b"t"]
    assert frames(clients[1]) == [b"t1", b"t2", b"t", b"t"]  # then it left


async def test_a_players_answer_during_a_tick_does_not_index_its_spectators() -> None:
    hub, clients = hub_with(8, chunk=2, spectators=frozenset(range(6)))
    hub.tick(b"t1")  # players 6 and 7 at once, spectators in later turns
    hub.send_user(7, b"ack")
    assert frames(clients[7]) == [b"t1", b"ack"]
    assert hub._broadcasts[0]._positions is None  # a player is never due a tick's rest
    hub.send(clients[5], b"pong")  # a spectator still due it: the tick first
    assert frames(clients[5]) == [b"t1", b"pong"]
    hub.finish()
    assert all(frames(c)[0] == b"t1" for c in clients)


async def test_the_bets_a_tick_changed_go_in_the_same_write_and_never_skipped() -> None:
    hub, clients = hub_with(3)
    hub.flow(clients[1].transport, True)  # its buffer passed tick_buffer_limit
    hub.tick(b"t1", then=b"bets")
    hub.tick(b"t2")
    assert frames(clients[0]) == frames(clients[2]) == [b"t1", b"bets", b"t2"]
    assert frames(clients[1]) == [b"bets"]  # too slow for ticks, not for bets
    assert hub.stats.ticks_skipped == 2


async def test_a_superseded_tick_still_delivers_its_bets() -> None:
    hub, clients = hub_with(6, chunk=2, spectators=frozenset(range(6)))
    hub.tick(b"t1", then=b"bets")  # spectators 0 and 1 at once, the rest later
    hub.tick(b"t2")
    hub.finish()
    assert [frames(c) for c in clients] == [[b"t1", b"bets", b"t2"]] * 2 + [[b"bets", b"t2"]] * 4
    assert hub.stats.ticks_superseded == 4


async def test_a_spectator_who_logs_in_mid_broadcast_gets_it_before_the_next_tick() -> None:
    hub, clients = hub_with(4, chunk=1, spectators=frozenset(range(4)))
    hub.broadcast(b"b1")  # client 0 at once, 1-3 in later turns
    hub.login(clients[3], 3, "u3", "t")
    hub.tick(b"t1")
    assert frames(clients[3]) == [b"b1", b"t1"]
    hub.finish()
    assert all(frames(c) == [b"b1", b"t1"] for c in clients)


async def test_broadcasts_wait_while_an_answer_is_on_its_way() -> None:
    hub, clients = hub_with(4, chunk=1, spectators=frozenset({2, 3}))
    hub.hold()  # a cash-out was read
    hub.broadcast(b"b1")
    hub.tick(b"t1")  # players still get a tick at once, after what they are due
    assert [frames(c) for c in clients] == [[b"b1", b"t1"]] * 2 + [[], []]
    await turn()
    assert frames(clients[2]) == frames(clients[3]) == []  # spectators wait...
    hub.send_user(0, b"cashed_out")
    hub.release()  # ...until the answer is written
    await turn()
    assert frames(clients[2]) == [b"b1"]
    hub.finish()
    assert frames(clients[3]) == [b"b1", b"t1"]


async def test_broadcasts_wait_for_answers_only_so_long(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fanout, "HOLD_MAX_S", 0.0)
    hub, clients = hub_with(4, chunk=1, spectators=frozenset({2, 3}))
    hub.hold()  # an answer that never comes (Redis is down, say)
    hub.broadcast(b"b1")
    for _ in range(3):
        await turn()
    assert all(frames(c) == [b"b1"] for c in clients)
    hub.release()


async def test_logging_in_and_out_moves_a_client_between_players_and_spectators() -> None:
    hub, clients = hub_with(4, chunk=1, spectators=frozenset({0, 1}))
    hub.login(clients[0], 10, "new", "t")
    hub.logout(clients[3])
    hub.tick(b"t1")
    # The players 0 and 2, then one spectator chunk (1 watched first): 3 waits.
    assert [len(frames(c)) for c in clients] == [1, 1, 1, 0]
    await turn()
    hub.finish()
    assert all(frames(c) == [b"t1"] for c in clients)


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
    hub, clients = hub_with(8, spectators=frozenset(range(8)))
    hub.tick(b"t1")  # spectators 0-2 now, the rest later
    hub.flow(clients[6].transport, True)
    hub.finish()
    assert frames(clients[6]) == []
    assert hub.stats.ticks_skipped == 1


async def test_a_paused_client_gets_ticks_again_once_drained_and_never_misses_the_rest() -> None:
    hub, clients = hub_with(3)
    slow = clients[1].transport
    hub.flow(slow, True)
    hub.tick(b"t1")
    hub.broadcast(b"crashed")  # not a tick: written whatever the buffer holds
    hub.finish()
    hub.flow(slow, False)  # drained to a quarter of the limit
    hub.tick(b"t2")
    hub.finish()
    assert frames(clients[1]) == [b"crashed", b"t2"]
    assert frames(clients[0]) == [b"t1", b"crashed", b"t2"]
    assert hub.stats.ticks_skipped == 1


async def test_only_a_paused_client_is_checked_against_the_hard_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    closed: list[int] = []
    monkeypatch.setattr(Hub, "cut_off", staticmethod(lambda _c, code, _r: closed.append(code)))
    hub, clients = hub_with(3)
    for client in clients[:2]:  # both far behind; only one told the hub
        cast(Any, client.transport).get_write_buffer_size = lambda: hub.hard_buffer_limit + 1
    hub.flow(clients[0].transport, True)
    hub.flow(clients[2].transport, True)  # paused, but under the hard limit
    hub.broadcast(b"crashed")
    hub.finish()
    assert [frames(c) for c in clients] == [[], [b"crashed"], [b"crashed"]]
    assert hub.stats.slow_disconnects == 1
    assert closed == [fanout.SLOW_CONSUMER_CLOSE]


async def test_a_tick_is_timed_from_made_to_its_last_spectator_unless_superseded() -> None:
    hub, clients = hub_with(6, chunk=2, spectators=frozenset(range(2, 6)))
    took: list[float] = []
    hub.on_tick_written = took.append
    hub.tick(b"t1")  # players 0 and 1, spectators 2 and 3 now, 4 and 5 later
    hub.tick(b"t2")  # t1 superseded for 4 and 5: not timed
    assert took == []
    await turn()
    hub.finish()
    assert len(took) == 1 and took[0] >= 0
    assert frames(clients[5]) == [b"t2"]


def test_text_frame_lengths() -> None:
    assert text_frame(b"x" * 125)[:2] == bytes((0x81, 125))
    assert text_frame(b"x" * 126)[:4] == bytes((0x81, 126, 0, 126))
    assert text_frame(b"x" * 65536)[:2] == bytes((0x81, 127))


# Any interleaving of broadcasts, ticks (alone or with their bets), frames for
# one client, loop turns, logins, logouts and departures: each client that
# stays gets the frames made while it was there, once and in the order they
# were made, except ticks it got a newer tick instead of while it watched (a
# player gets every tick); one that leaves gets part of that.
operations = st.lists(
    st.one_of(
        st.tuples(st.just("broadcast"), st.none()),
        st.tuples(st.just("tick"), st.booleans()),
        st.tuples(st.just("send"), st.integers(0, 6)),
        st.tuples(st.just("turn"), st.none()),
        st.tuples(st.just("leave"), st.integers(0, 6)),
        st.tuples(st.just("login"), st.integers(0, 6)),
        st.tuples(st.just("logout"), st.integers(0, 6)),
    ),
    max_size=40,
)


def delivered_as_made(got: list[bytes], made: list[tuple[bytes, bool, bool]], stayed: bool) -> bool:
    """Whether ``got`` is ``made`` in order, missing only frames marked skippable
    that a later tick replaced (and, for a client that left, any tail)."""
    position = 0
    for index, (frame, skippable, _) in enumerate(made):
        if position < len(got) and got[position] == frame:
            position += 1
            continue
        if stayed and not (skippable and any(tick for _, _, tick in made[index + 1 :])):
            return False
    return position == len(got)


@settings(max_examples=300, deadline=None)
@given(operations, st.integers(1, 4), st.frozensets(st.integers(0, 6)), st.booleans())
def test_every_client_sees_every_frame_once_in_order(
    ops: list[tuple[str, Any]], chunk: int, spectators: frozenset[int], sliced_ticks: bool
) -> None:
    async def play() -> None:
        tick_turn_s = 0 if sliced_ticks else float("inf")
        hub, clients = hub_with(7, chunk, spectators=spectators, tick_turn_s=tick_turn_s)
        # Per client: (frame, whether a newer tick may replace it, whether a tick).
        made: list[list[tuple[bytes, bool, bool]]] = [[] for _ in clients]
        present = set(range(len(clients)))
        players = present - spectators
        for n, (op, arg) in enumerate(ops):
            payload = f"f{n}".encode()
            if op == "broadcast":
                hub.broadcast(payload)
                for i in present:
                    made[i].append((payload, False, False))
            elif op == "tick":
                bets = f"b{n}".encode() if arg else None
                hub.tick(payload, then=bets)
                for i in present:
                    made[i].append((payload, i not in players, True))
                    if bets is not None:
                        made[i].append((bets, False, False))
            elif op == "send" and arg in present:
                hub.send(clients[arg], payload)
                made[arg].append((payload, False, False))
            elif op == "turn":
                await turn()
            elif op == "leave" and arg in present:
                hub.remove(clients[arg])
                present.discard(arg)
                players.discard(arg)
            elif op == "login" and arg in present:
                hub.login(clients[arg], arg, f"u{arg}", "t")
                players.add(arg)
            elif op == "logout":
                hub.logout(clients[arg])
                players.discard(arg)
        hub.finish()
        for i, client in enumerate(clients):
            assert delivered_as_made(frames(client), made[i], i in present)

    asyncio.run(play())


async def test_a_slow_consumer_skips_ticks_then_is_disconnected(game_server: GameServer) -> None:
    app = game_server.app
    hub = app.hub
    hub.tick_buffer_limit, hub.hard_buffer_limit = 1024, 64 * 1024
    # A raw client that completes the handshake and then never reads.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", app.port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    healthy = await game_server.connect()
    await healthy.next("hello")
    assert len(hub.clients) == 2
    (slow,) = [c for c in hub.clients if c.connection.remote_address[1] == sock.getsockname()[1]]
    big = orjson.dumps({"type": "crashed", "padding": "x" * 30_000})
    async with asyncio.timeout(30):
        # Fill the kernel's buffers until frames queue up in the transport...
        while slow.connection.transport.get_write_buffer_size() <= hub.tick_buffer_limit:
            hub.broadcast(big)  # never droppable
            await asyncio.sleep(0)  # let the loop hand the kernel what it takes
        # ...so the next ticks skip the slow client (the healthy one gets them)...
        skipped = hub.stats.ticks_skipped
        while hub.stats.ticks_skipped == skipped:
            app.runner.turn_done.clear()
            await app.runner.turn_done.wait()
        # ...and a frame that must not be skipped, past the hard limit, disconnects it.
        while hub.stats.slow_disconnects == 0:
            hub.broadcast(big)
            await asyncio.sleep(0)
    assert hub.stats.slow_disconnects == 1
    metrics = metrics_response(app.metrics.registry).body.decode()
    assert "pillarpayout_slow_disconnects 1.0" in metrics
    (timed,) = [
        x for x in metrics.splitlines() if x.startswith("pillarpayout_tick_fanout_seconds_count")
    ]
    assert float(timed.split()[1]) > 0  # the ticks it skipped reached the healthy client
    # The healthy client is untouched.
    await healthy.send(type="ping", ref="ok")
    await healthy.next("pong", ref="ok")
    await healthy.close()
    sock.close()


async def test_a_slow_consumer_that_catches_up_gets_ticks_again(game_server: GameServer) -> None:
    app = game_server.app
    hub = app.hub
    hub.tick_buffer_limit = 1024  # the mark the hub gives each connection it takes
    raw = await RawClient.open(app.port, buffer=4096)
    (client,) = hub.clients
    probe = b'{"type":"tick","probe":%d}'
    async with asyncio.timeout(30):
        while client.transport not in hub._paused:  # the loop tells the hub
            hub.broadcast(orjson.dumps({"type": "chat", "padding": "x" * 30_000}))
            await asyncio.sleep(0)
        skipped = hub.stats.ticks_skipped
        hub.tick(probe % 1)
        assert hub.stats.ticks_skipped == skipped + 1
        # It reads again: once its buffer has drained, the loop tells the hub
        # and the next tick is its own.
        frames: asyncio.Queue[bytes] = asyncio.Queue()

        async def read() -> None:
            while True:
                frames.put_nowait((await raw.next_frame())[1])

        reading = asyncio.create_task(read())
        while client.transport in hub._paused:
            app.runner.turn_done.clear()
            await app.runner.turn_done.wait()
        skipped = hub.stats.ticks_skipped
        hub.tick(probe % 2)
        seen: list[bytes] = []
        while not seen or seen[-1] != probe % 2:
            seen.append(await frames.get())
        assert probe % 1 not in seen
        assert hub.stats.ticks_skipped == skipped
        reading.cancel()
    raw.close()


async def test_a_closed_connection_leaves_the_fanout_at_once(game_server: GameServer) -> None:
    hub = game_server.app.hub
    player = await game_server.connect()
    await player.next("hello")
    (client,) = hub.clients
    assert client.transport in hub._open
    await player.close()
    # Gone from the write loop as soon as its closing frame went out, so no
    # tick can follow it; gone from the hub once the handler has finished.
    assert client.transport not in hub._open
