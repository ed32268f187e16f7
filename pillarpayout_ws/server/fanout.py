"""Fan-out near the kernel floor: frame once, write the same bytes to every socket.

``websockets.broadcast()`` frames a message once per connection. Server
frames are unmasked, so the bytes of a text frame are the same for every
client: ``Hub`` builds them once and hands them to each open transport in one
synchronous loop (no task, no await per client). The kernel's per-socket
write is then almost all that is left (architecture.md, "Fan-out").

Writing to the transport under websockets' feet is safe because every write
is a whole frame, this process is single-threaded, the server never sends
fragmented messages, and a connection leaves the loop the moment it is no
longer OPEN (``GameConnection``), before any data frame could follow its
closing frame.

A broadcast to many sockets takes a while (about 6-12 us per socket on
loopback here, so 50-100 ms for 8,000), and nothing else runs meanwhile: a
bet arriving just after ``betting`` went out would wait for the whole loop
(bet ack p99 59 ms with 8,000 bettors). So a broadcast writes for a slice
of time per loop turn, ``chunk`` sockets at a time, and lets the loop read
and answer in between:

- **Players first.** Every broadcast reaches the logged-in players before
  any spectator. A tick goes to every player at once (``tick``), after
  whatever they are still due of the broadcasts under way, which players
  get first anyway; it never waits for the spectators' part of those.
- **Answers first.** A bet or cash-out read from a player ``hold``s the
  broadcasts between slices until its answer is written (``release``), for
  at most ``HOLD_MAX_S`` in a row: the loop then has nothing to do but the
  answer's turn and its Redis commit, so the answer does not wait behind
  spectators' frames.
- A tick's spectators get it in slices of ``tick_turn_s`` (``tick_turn_s``
  infinite writes it whole); other broadcasts go in slices of ``turn_s``
  (0.5 ms). A spectator the fan-out has not reached with one tick when the
  next is made gets the newer one instead (``ticks_superseded``): a late
  snapshot is worth less than the current one.
- The ``bets`` frame a tick's cash-outs changed goes in the same write as
  the tick, so a tick costs one write per socket, not two.
- A tick walks the spectators once, writing: every tick takes the same list
  of them until one comes, goes or logs in or out (no copy made and freed
  each tick, each a pass over every connection's object, which is not in
  the CPU's cache by then), and a player's answer during a tick does not
  index the spectators it is due to.

Each client still sees frames in the order they were made: a broadcast
starts only when the one before it has reached every socket, and a frame
for one connection first gives that connection any broadcast frame it is
still due (``_catch_up``), so an ack is never held back behind the rest of
a loop.

Slow consumers: a tick is a snapshot, so a client that does not take its
frames skips ticks: from the moment its write buffer passes
``tick_buffer_limit`` (the transport's high-water mark, so the event loop
tells the hub with ``pause_writing``) until it has drained to a quarter of
that (``resume_writing``); then it gets the next tick, the latest state, as
usual. Frames that must not be skipped (acks, ``crashed``) go out whatever
the buffer holds, unless it is over ``hard_buffer_limit``: then the client
cannot keep up at all and is disconnected (close 4001, and the TCP
connection is aborted if it does not take even that). Only a paused
transport can be over either limit, so while none is paused the write loop
checks nothing per socket, as the floor's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from types import GeneratorType
from typing import Any, cast

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.protocol import Protocol, State
from websockets.server import ServerProtocol
from websockets.streams import StreamReader

try:  # as websockets.frames unmasks
    from websockets.speedups import apply_mask
except ImportError:  # websockets built without its C part
    from websockets.utils import apply_mask

from .keepalive import Keepalive
from .limits import ClientAddresses, guard_frames

log = logging.getLogger("pillarpayout.server")

SLOW_CONSUMER_CLOSE = 4001
KEEPALIVE_TIMEOUT_CLOSE = 1011  # as websockets' own keepalive
TICK_BUFFER_LIMIT = 16 * 1024  # bytes waiting for one client: past it, it skips ticks
HARD_BUFFER_LIMIT = 1024 * 1024  # bytes waiting for one client: past it, it is dropped
SLOW_ABORT_S = 5.0
BROADCAST_TURN_S = 0.0005  # how long a broadcast writes before the loop's next turn
BROADCAST_CHUNK = 64  # sockets written between two looks at the clock
HOLD_MAX_S = 0.01  # how long broadcasts wait in a row for answers on their way
PONG_HEADER = b"\x8a\x84"  # a client's Pong: masked, 4 bytes of payload (the keepalive's)
PONG_SIZE = 2 + 4 + 4  # the header, the mask, the payload
# websockets' parser between two frames: its server's ``parse`` is done with
# the handshake and in ``Protocol.parse``, which waits in ``at_eof``.
_SERVER_PARSE = ServerProtocol.parse.__code__
_PARSE = Protocol.parse.__code__
_AT_EOF = StreamReader.at_eof.__code__


def text_frame(payload: bytes) -> bytes:
    """An unmasked, unfragmented WebSocket text frame (RFC 6455 section 5.2)."""
    n = len(payload)
    if n < 126:
        header = bytes((0x81, n))
    elif n < 65536:
        header = bytes((0x81, 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + n.to_bytes(8, "big")
    return header + payload


class GameConnection(ServerConnection):
    """A ``ServerConnection`` that says when it stops being OPEN, and that bounds
    what one client can make the server do and hold.

    Every frame websockets sends, the closing one included, goes through
    ``send_data()``; so right after it, or when the TCP connection is lost,
    the fan-out learns that no data frame may follow and drops the socket
    from its loop, which then needs no per-socket state check.

    Every frame received spends from the connection's frame budget
    (``limits.guard_frames``); and a client whose write buffer passes
    ``HARD_BUFFER_LIMIT`` after what it sent was answered (pongs it does not
    read, say) is cut off: nothing it does makes the server hold more.

    Once its closing frame is queued, a connection that has not taken it
    within ``SLOW_ABORT_S`` is dropped: whatever closes it never waits longer.

    Keepalive pings come from the hub's one timer (``keepalive.py``), not
    from a task of websockets' per connection; a pong answers the last one
    only if it echoes its payload.

    The transport's flow control (``pause_writing``/``resume_writing``) is
    passed on to the hub (``flow``): it is how the fan-out learns that a
    client stopped taking its frames.
    """

    left_open: Callable[[], object] | None = None
    flow: Callable[[bool], object] | None = None
    unanswered_ping: bytes | None = None  # the keepalive's last ping payload, until echoed
    _abort: asyncio.TimerHandle | None = None  # set once its closing frame is queued
    # Asked as the TCP connection is made (``ConnectionGate.accepted``): False drops it.
    admit: Callable[[ServerConnection], bool] | None = None

    def __init__(self, protocol: ServerProtocol, *args: Any, **kwargs: Any) -> None:
        super().__init__(protocol, *args, **kwargs)
        self._frames = guard_frames(protocol, time.monotonic)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if self.admit is not None and not self.admit(self):
            self.transport.abort()  # its address holds too many already

    def data_received(self, data: bytes) -> None:
        # A pong alone, as a client answers the keepalive's ping: read here, not
        # by websockets' parser and events (most of a ping's cost). It spends
        # from the frame budget like any frame; past it, the parser sees it
        # and closes the connection (1008).
        if (
            len(data) == PONG_SIZE
            and data[:2] == PONG_HEADER
            and self._between_frames()
            and self._frames.take()
        ):
            if apply_mask(data[6:], data[2:6]) == self.unanswered_ping:
                self.unanswered_ping = None
            return
        super().data_received(data)
        if self.transport.get_write_buffer_size() > HARD_BUFFER_LIMIT:
            log.info("cutting off a client that does not read what it asked for")
            self.transport.abort()

    def _between_frames(self) -> bool:
        """Whether websockets' parser waits for the first byte of a frame (so the
        data received now starts one), the connection being open. Any other
        shape of parser (a later websockets') is not: its pongs take the
        parser's way, as before."""
        handshake = cast("GeneratorType[None, None, None]", self.protocol.parser)
        frames = handshake.gi_yieldfrom  # once the handshake is done
        waiting = getattr(frames, "gi_yieldfrom", None)
        return (
            handshake.gi_code is _SERVER_PARSE
            and getattr(frames, "gi_code", None) is _PARSE
            and getattr(waiting, "gi_code", None) is _AT_EOF
            and self.protocol.state is State.OPEN
        )

    def acknowledge_pings(self, data: bytes) -> None:
        if data == self.unanswered_ping:
            self.unanswered_ping = None
        super().acknowledge_pings(data)

    def _check_open(self) -> None:
        if self.left_open is not None and self.protocol.state is not State.OPEN:
            self.left_open()
            self.left_open = None

    def send_data(self) -> None:
        super().send_data()
        self._check_open()
        if self._abort is None and self.protocol.state in (State.CLOSING, State.CLOSED):
            # Its closing frame is queued, behind whatever it has not read: a
            # client that does not take it within SLOW_ABORT_S is dropped, so
            # nothing that closes a connection (a stop, a logout, a ban, a
            # flood's 1008) waits on one that never reads.
            self._abort = self.loop.call_later(SLOW_ABORT_S, self.transport.abort)

    def pause_writing(self) -> None:
        super().pause_writing()
        if self.flow is not None:
            self.flow(True)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self.flow is not None:
            self.flow(False)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._abort is not None:
            self._abort.cancel()
        super().connection_lost(exc)
        self._check_open()


@dataclass(eq=False, slots=True)
class Client:
    """One open WebSocket, and who (if anyone) is logged in on it."""

    connection: ServerConnection
    ip: str
    user_id: int | None = None
    username: str | None = None
    token_sha256: str | None = None
    transport: asyncio.Transport = field(init=False)

    def __post_init__(self) -> None:
        self.transport = self.connection.transport

    @classmethod
    def joining(cls, connection: ServerConnection, addresses: ClientAddresses) -> Client:
        """The client of a connection whose handshake is done, by the address the
        per-address limits count; then its handshake's headers are dropped:
        websockets keeps the request and the response for the connection's whole
        life (2-5 KB and a few dozen objects the collector scans, per connection),
        and the address was all that was needed of them. ``request`` itself
        stays, emptied: websockets takes it being set as the handshake being done."""
        client = cls(connection, addresses.of(connection))
        if connection.request is not None:
            connection.request.headers = Headers()
        connection.response = None
        return client


@dataclass
class FanoutStats:
    deliveries: int = 0
    ticks_skipped: int = 0
    ticks_superseded: int = 0
    slow_disconnects: int = 0
    keepalive_timeouts: int = 0


class _Broadcast:
    """One broadcast frame on its way to the sockets open when it was made."""

    __slots__ = (
        "_positions",
        "departures",
        "droppable",
        "early",
        "frame",
        "logins",
        "made",
        "next",
        "players_end",
        "tail",
        "targets",
        "turn_s",
    )

    def __init__(
        self,
        frame: bytes,
        targets: list[asyncio.Transport],
        droppable: bool,
        turn_s: float,
        hub: Hub,
        players_end: int = 0,
        tail: bytes = b"",
        made: float | None = None,
    ) -> None:
        self.frame = frame  # a tick's ends with its tail
        self.made = made  # a tick's spectators' part: when the tick was made (perf_counter)
        self.tail = tail  # the part of a tick's frame that must not be skipped
        self.targets = targets  # targets[:players_end] are the players'
        self.players_end = players_end
        self.droppable = droppable  # a tick: skipped by a client with a full buffer
        self.turn_s = turn_s
        self.next = 0  # targets[:next] have been written (or skipped)
        self.early: set[asyncio.Transport] = set()  # written ahead by _catch_up
        self._positions: dict[asyncio.Transport, int] | None = None
        # The hub's counts when it was made: while they hold, every target is
        # still open and no target became a player.
        self.departures = hub._departures
        self.logins = hub._logins

    def owes(self, transport: asyncio.Transport, hub: Hub) -> bool:
        """Whether ``transport`` is still due this frame."""
        if transport in self.early:
            return False
        if (
            self.next >= self.players_end
            and self.logins == hub._logins
            and transport in hub._players
        ):
            # A player who was one when this was made (no spectator became a
            # player since): its part is written, if it had one. The usual
            # case, a player's ack, needs no index of a tick's spectators.
            return False
        if self._positions is None:  # built once, and only if a socket needs it
            self._positions = {t: i for i, t in enumerate(self.targets)}
        position = self._positions.get(transport)
        return position is not None and self.next <= position < len(self.targets)

    def supersede(self) -> int:
        """A newer tick is out: the sockets still due this one get only its tail
        (or nothing). How many sockets skip it."""
        early = self.early
        skipped = sum(1 for t in self.targets[self.next :] if t not in early)
        self.made = None  # not a tick written in full
        if self.tail:
            self.frame, self.tail, self.droppable = self.tail, b"", False
        else:
            self.targets = self.targets[: self.next]  # the list may be shared (Hub.tick)
        return skipped


class Hub:
    """Every connected client, by connection and by user."""

    def __init__(
        self,
        *,
        tick_buffer_limit: int = TICK_BUFFER_LIMIT,
        hard_buffer_limit: int = HARD_BUFFER_LIMIT,
        chunk: int = BROADCAST_CHUNK,
        turn_s: float = BROADCAST_TURN_S,
        tick_turn_s: float = float("inf"),
    ) -> None:
        self.clients: set[Client] = set()
        self.by_user: dict[int, set[Client]] = {}
        # The transports the fan-out writes to: OPEN connections only, all of
        # them, and split into players' and spectators' (players go first).
        self._open: dict[asyncio.Transport, Client] = {}
        self._players: dict[asyncio.Transport, Client] = {}
        self._watchers: dict[asyncio.Transport, Client] = {}
        # The spectators as a list, for ticks: the same list for every tick
        # until one comes, goes or logs in or out (``_watch``/``_unwatch``
        # drop it, and the next tick makes it again):
        # a tick does not walk every spectator's object once more to copy it,
        # nor again to free the copy (each such pass is a cache miss a socket).
        self._watcher_list: list[asyncio.Transport] | None = None
        self._paused: set[asyncio.Transport] = set()  # past tick_buffer_limit, not drained
        self._departures = 0  # how many left _open: a broadcast's targets are still all open
        self._logins = 0  # how many spectators became players
        self.tick_buffer_limit = tick_buffer_limit
        self.hard_buffer_limit = hard_buffer_limit
        self.stats = FanoutStats()
        self.keepalive = Keepalive(self._silent)
        self.chunk = chunk
        self.turn_s = turn_s
        self.tick_turn_s = tick_turn_s
        self._broadcasts: deque[_Broadcast] = deque()  # the first is being written
        self._next_turn: asyncio.Handle | None = None
        self._holds = 0  # answers on their way (hold/release)
        self._held_since: float | None = None  # when broadcasts began to wait for them
        self._when_idle: list[Callable[[], object]] = []
        # Sees every broadcast payload too (the relay publisher), if set.
        self.mirror: Callable[[bytes, bool], None] | None = None
        # Told when a client comes, goes, logs in or out (``presence``), if set.
        self.on_presence: Callable[[], object] | None = None
        # Told, in seconds, how long each tick took from made to its last
        # spectator (not one a newer tick superseded), if set (``/metrics``).
        self.on_tick_written: Callable[[float], object] | None = None

    def add(self, client: Client) -> None:
        self._presence_changed()
        self.clients.add(client)
        transport = client.transport
        self._open[transport] = client
        if client.user_id is not None:
            self._players[transport] = client
        else:
            self._watch(transport, client)
        connection = client.connection
        if isinstance(connection, GameConnection):
            connection.left_open = lambda: self._closed(transport)
            connection._check_open()  # it may have left OPEN already
            if transport in self._open:
                self.keepalive.add(transport, connection)
                connection.flow = lambda paused: self.flow(transport, paused)
                if connection.paused:  # before it was ours
                    self.flow(transport, True)
                transport.set_write_buffer_limits(self.tick_buffer_limit)

    def flow(self, transport: asyncio.Transport, paused: bool) -> None:
        """``transport``'s buffer passed ``tick_buffer_limit`` (``paused``), or
        drained again: it skips ticks meanwhile (module docstring)."""
        if not paused:
            self._paused.discard(transport)
        elif transport in self._open:
            self._paused.add(transport)

    def _closed(self, transport: asyncio.Transport) -> Client | None:
        """No frame may go to ``transport`` any more."""
        self._players.pop(transport, None)
        self._unwatch(transport)
        self._paused.discard(transport)
        client = self._open.pop(transport, None)
        if client is not None:
            self._departures += 1
            self.keepalive.discard(transport)
        return client

    def _watch(self, transport: asyncio.Transport, client: Client) -> None:
        self._watchers[transport] = client
        self._watcher_list = None

    def _unwatch(self, transport: asyncio.Transport) -> bool:
        """Whether ``transport`` was a spectator's (it is not any more)."""
        if self._watchers.pop(transport, None) is None:
            return False
        self._watcher_list = None
        return True

    def _presence_changed(self) -> None:
        if self.on_presence is not None:
            self.on_presence()

    def remove(self, client: Client) -> None:
        self._closed(client.transport)
        if client in self.clients:
            self._presence_changed()
            self.clients.discard(client)
        self.logout(client)

    def login(self, client: Client, user_id: int, username: str, token_sha256: str) -> None:
        self.logout(client)
        self._presence_changed()
        client.user_id, client.username, client.token_sha256 = user_id, username, token_sha256
        self.by_user.setdefault(user_id, set()).add(client)
        if self._unwatch(client.transport):
            self._players[client.transport] = client
            self._logins += 1

    def logout(self, client: Client) -> None:
        if client.user_id is None:
            return
        self._presence_changed()
        peers = self.by_user.get(client.user_id)
        if peers is not None:
            peers.discard(client)
            if not peers:
                del self.by_user[client.user_id]
        client.user_id = client.username = client.token_sha256 = None
        if self._players.pop(client.transport, None) is not None:
            self._watch(client.transport, client)

    @property
    def players(self) -> int:
        return sum(len(c) for c in self.by_user.values())

    def broadcast(self, payload: bytes) -> None:
        """Frame ``payload`` once and write it to every open client, players first,
        in slices of ``turn_s``: the first slice now, the rest in later loop
        turns (module docstring)."""
        players = list(self._players)
        targets = [*players, *self._watchers]
        self._queue(
            _Broadcast(text_frame(payload), targets, False, self.turn_s, self, len(players))
        )
        if self.mirror is not None:
            self.mirror(payload, False)

    def tick(self, payload: bytes, then: bytes | None = None) -> None:
        """Write a tick to every player now, then to the spectators in slices of
        ``tick_turn_s``. ``then``, a frame that must follow the tick (the bets it
        changed), goes in the same write; a client that skips the tick still
        gets it. A spectator still due an older tick gets this one instead."""
        made = time.perf_counter()
        tail = text_frame(then) if then else b""
        frame = text_frame(payload) + tail
        self._catch_up_players()
        self._write(self._players, frame, True, tail=tail)
        watchers = self._watcher_list
        if watchers is None:
            watchers = self._watcher_list = list(self._watchers)
        for pending in self._broadcasts:
            if pending.droppable:
                if pending.next < len(pending.targets):
                    # Start where the older tick stopped, so that the same
                    # spectators are not the ones left out every time.
                    with contextlib.suppress(ValueError):  # unless that one has left
                        first = watchers.index(pending.targets[pending.next])
                        watchers = watchers[first:] + watchers[:first]
                self.stats.ticks_superseded += pending.supersede()
        self._drop_finished()
        self._queue(_Broadcast(frame, watchers, True, self.tick_turn_s, self, tail=tail, made=made))
        if self.mirror is not None:
            self.mirror(payload, True)
            if then:
                self.mirror(then, False)

    def _drop_finished(self) -> None:
        """Take superseded ticks that nobody is still due out of the queue."""
        pending = self._broadcasts
        head = pending[0] if pending else None
        pending = self._broadcasts = deque(b for b in pending if b.next < len(b.targets))
        if head is not None and (not pending or pending[0] is not head):
            self._go_on_next_turn()  # with the next one, as the head would have

    def _catch_up_players(self) -> None:
        """Give every player the broadcasts under way (players come first in each,
        so this is rarely more than a check), before a tick goes to them."""
        for pending in self._broadcasts:
            if pending.next < pending.players_end:
                players = pending.targets[pending.next : pending.players_end]
                pending.next = pending.players_end
                self._deliver(pending, players, self._skips(pending))
            if pending.logins != self._logins:  # spectators who became players since
                for transport in self._players:
                    self._catch_up(transport)
                pending.logins = self._logins

    def _queue(self, broadcast: _Broadcast) -> None:
        self._broadcasts.append(broadcast)
        if len(self._broadcasts) == 1:
            self._advance()

    def send_user(self, user_id: int, payload: bytes) -> None:
        """Write ``payload`` to every connection of one user (never dropped)."""
        peers = self.by_user.get(user_id)
        if peers:
            transports = [c.transport for c in peers if c.transport in self._open]
            for transport in transports:
                self._catch_up(transport)
            self._write(transports, text_frame(payload), False)

    def send(self, client: Client, payload: bytes) -> None:
        if client.transport in self._open:
            self._catch_up(client.transport)
            self._write((client.transport,), text_frame(payload), False)

    def hold(self) -> None:
        """A player's bet or cash-out is on its way to an answer: broadcasts wait
        between slices until it is written (``release``), at most ``HOLD_MAX_S``
        in a row, so the answer is not queued behind spectators' frames."""
        self._holds += 1

    def release(self, count: int = 1) -> None:
        self._holds -= count
        if not self._holds and self._held_since is not None:
            self._held_since = None
            self._go_on_next_turn()  # not when the wait would have ended

    def _go_on_next_turn(self) -> None:
        """Drop the turn planned for the broadcasts; go on with them in the next one."""
        if self._next_turn is not None:
            self._next_turn.cancel()
            self._next_turn = None
        if self._broadcasts:
            self._next_turn = asyncio.get_running_loop().call_soon(self._advance)

    def when_idle(self, callback: Callable[[], object]) -> None:
        """Call ``callback`` soon after every broadcast made so far has been written."""
        self._when_idle.append(callback)
        if not self._broadcasts:
            self._idle()

    def _idle(self) -> None:
        loop = asyncio.get_running_loop()
        for callback in self._when_idle:
            loop.call_soon(callback)
        self._when_idle.clear()

    def finish(self) -> None:
        """Write every broadcast still under way to all its sockets, now."""
        if self._next_turn is not None:
            self._next_turn.cancel()
            self._next_turn = None
        while self._broadcasts:
            current = self._broadcasts.popleft()
            targets = current.targets[current.next :]
            current.next = len(current.targets)
            self._deliver(current, targets, self._skips(current))
            self._written(current)
        if self._when_idle:
            self._idle()

    def _catch_up(self, transport: asyncio.Transport) -> None:
        """Give ``transport`` the broadcast frames it is still due, in order, so that a
        frame written to it now comes after them (as it was made after them)."""
        for pending in self._broadcasts:
            if pending.owes(transport, self):
                pending.early.add(transport)
                self._deliver(pending, (transport,))

    def _advance(self) -> None:
        """Write the first broadcast for its slice; come back next turn if more is due."""
        self._next_turn = None
        pending = self._broadcasts
        if not pending:
            return
        if self._holds:
            now = time.perf_counter()
            if self._held_since is None:
                self._held_since = now
            wait = self._held_since + HOLD_MAX_S - now
            if wait > 0:  # an answer first (release() comes back sooner)
                self._next_turn = asyncio.get_running_loop().call_later(wait, self._advance)
                return
        current = pending[0]
        targets = current.targets
        skips = self._skips(current)
        chunk = self.chunk if current.turn_s != float("inf") else len(targets)
        deadline = time.perf_counter() + current.turn_s
        while True:
            start = current.next
            current.next = start + chunk
            self._deliver(current, targets[start : current.next], skips)
            if current.next >= len(targets):
                pending.popleft()
                self._written(current)
                break
            if time.perf_counter() >= deadline:
                break
        if pending:
            self._next_turn = asyncio.get_running_loop().call_soon(self._advance)
        elif self._when_idle:
            self._idle()

    def _written(self, broadcast: _Broadcast) -> None:
        if broadcast.made is not None and self.on_tick_written is not None:
            self.on_tick_written(time.perf_counter() - broadcast.made)

    def _skips(self, broadcast: _Broadcast) -> set[asyncio.Transport] | None:
        """The sockets ``broadcast`` must check for (written ahead, or closed since it
        was made): ``None`` while there are none, the usual case."""
        if broadcast.early or broadcast.departures != self._departures:
            return broadcast.early
        return None

    def _deliver(
        self,
        broadcast: _Broadcast,
        transports: Collection[asyncio.Transport],
        skips: set[asyncio.Transport] | None = None,
    ) -> None:
        self._write(transports, broadcast.frame, broadcast.droppable, skips, broadcast.tail)

    def _write(
        self,
        transports: Collection[asyncio.Transport],
        frame: bytes,
        droppable: bool,
        skips: set[asyncio.Transport] | None = None,
        tail: bytes = b"",
    ) -> None:
        # The hot loop, the floor's: one write per socket. With ``skips`` (a
        # queued broadcast that some socket left or had written ahead), skip
        # those sockets; while some socket is paused, set it aside first.
        if skips is not None:
            still_open = self._open
            transports = [t for t in transports if t not in skips and t in still_open]
        over: Collection[asyncio.Transport] = ()
        if self._paused:
            transports, over = self._set_aside(transports, droppable)
        for transport in transports:
            transport.write(frame)
        self.stats.deliveries += len(transports)
        if droppable:
            self.stats.ticks_skipped += len(over)
            if tail and over:
                self._write(over, tail, False)
            return
        for transport in over:
            client = self._closed(transport)
            if client is None:
                continue
            self.stats.slow_disconnects += 1
            log.info("disconnecting a slow consumer from %s", client.ip)
            self.cut_off(client.connection, SLOW_CONSUMER_CLOSE, "too slow to keep up")

    def _set_aside(
        self, transports: Collection[asyncio.Transport], droppable: bool
    ) -> tuple[Collection[asyncio.Transport], list[asyncio.Transport]]:
        """The sockets to write to, and those that must not get the frame: for a
        tick, the paused ones; otherwise those over ``hard_buffer_limit`` (only a
        paused one can be)."""
        paused = self._paused
        if droppable:
            over = [t for t in transports if t in paused]
        else:
            limit = self.hard_buffer_limit
            over = [t for t in transports if t in paused and t.get_write_buffer_size() > limit]
        if not over:
            return transports, over
        left_out = set(over)
        return [t for t in transports if t not in left_out], over

    def _silent(self, connection: GameConnection) -> None:
        """``connection`` did not answer its keepalive ping in time."""
        self.stats.keepalive_timeouts += 1
        log.info("closing a connection that did not answer its keepalive ping")
        self.cut_off(connection, KEEPALIVE_TIMEOUT_CLOSE, "keepalive ping timeout")

    @staticmethod
    def cut_off(connection: ServerConnection, code: int, reason: str) -> None:
        """Close ``connection`` with ``code``: the closing frame queues behind its
        backlog, and if the client does not take even that within SLOW_ABORT_S,
        the TCP connection is dropped (``GameConnection.send_data``)."""
        connection.protocol.fail(code, reason)
        connection.send_data()
