"""Keepalive pings for every connection from one timer, not a task per connection.

websockets' own keepalive runs a task per connection: every ``ping_interval``
it wakes, opens a send context, makes a random ping id, a future and a
timeout, and writes the ping in a syscall of its own. With 10,000 sockets
that is 500 such wakeups a second. Here the hub's connections are split into
``STEPS`` cohorts in turn as they join, and one timer takes a cohort every
``interval_s / STEPS``:

- a connection that has not answered the ping of its cohort's previous turn
  is handed to ``on_silent``: the hub closes it with 1011
  ("keepalive ping timeout", as websockets does) and counts it
  (``keepalive_timeouts``);
- every other connection of the cohort gets a ping: the same pre-framed
  bytes for all, written straight to its transport like a broadcast frame (a
  control frame may go between any two frames). Its payload is 4 random
  bytes drawn for the turn, and only a pong that echoes them answers it
  (``GameConnection.acknowledge_pings``): a client that does not read cannot
  keep itself open with pongs it made up.

So each connection is pinged every ``interval_s`` (the first time within
``interval_s`` of joining) and must answer within ``interval_s``, as
protocol.md says. The timer runs while the hub has connections to ping.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .fanout import GameConnection

PING_INTERVAL_S = 20.0
STEPS = 100  # a turn every 0.2 s: 50 pings a turn at 10,000 connections
PING_HEADER = b"\x89\x04"  # an unmasked Ping frame with 4 bytes of payload (RFC 6455 5.5.2)


class Keepalive:
    def __init__(
        self,
        on_silent: Callable[[GameConnection], object],
        interval_s: float = PING_INTERVAL_S,
        steps: int = STEPS,
    ) -> None:
        self._on_silent = on_silent
        self.step_s = interval_s / steps
        self._cohorts: list[dict[asyncio.Transport, GameConnection]] = [{} for _ in range(steps)]
        self._cohort_of: dict[asyncio.Transport, int] = {}
        self._due = 0  # the cohort the next turn takes
        self._joining = 0  # the cohort the next newcomer joins
        self._timer: asyncio.TimerHandle | None = None

    def add(self, transport: asyncio.Transport, connection: GameConnection) -> None:
        """Ping ``connection`` from now on, with the cohort whose turn it is to
        take a newcomer (so a burst of newcomers is spread over the interval)."""
        cohort = self._joining
        self._joining = (cohort + 1) % len(self._cohorts)
        self._cohorts[cohort][transport] = connection
        self._cohort_of[transport] = cohort
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.step_s, self.turn)

    def discard(self, transport: asyncio.Transport) -> None:
        cohort = self._cohort_of.pop(transport, None)
        if cohort is not None:
            del self._cohorts[cohort][transport]

    def turn(self) -> None:
        """Close the due cohort's connections that did not answer; ping the rest."""
        self._timer = None
        cohort = self._cohorts[self._due]
        self._due = (self._due + 1) % len(self._cohorts)
        silent = [c for c in cohort.values() if c.unanswered_ping is not None]
        for connection in silent:
            self.discard(connection.transport)
            self._on_silent(connection)
        payload = os.urandom(4)
        frame = PING_HEADER + payload
        for transport, connection in cohort.items():
            connection.unanswered_ping = payload
            transport.write(frame)
        if self._cohort_of:
            self._timer = asyncio.get_running_loop().call_later(self.step_s, self.turn)
