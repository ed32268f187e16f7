"""``hello``: the first frame of every connection, and the relays' snapshot.

It is built from the game's snapshot, handed out by the runner at a moment
when the engine holds exactly what has been sent (``GameRunner.greet``), the
chain being played with its house edge (``fairness``), the chat room's
recent lines, and who is here (``presence``: the counts as they stand, the
newcomer not yet among them; a ``presence`` frame follows once it is). A
newcomer is added to the fan-out in the same step as its ``hello`` is
written, so the first broadcast it gets is the first one made after its
snapshot: nothing missed, nothing twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .. import __version__
from ..engine.events import GameSnapshot
from ..protocol import encode_hello
from .chat import ChatRoom
from .presence import Presence
from .runner import GameRunner

__all__ = ["SERVER_NAME", "Hello"]

SERVER_NAME = f"pillarpayout/{__version__}"


class Hello:
    def __init__(self, runner: GameRunner, chat: ChatRoom, presence: Presence) -> None:
        self._runner = runner
        self._chat = chat
        self._presence = presence

    def encode(self, snapshot: GameSnapshot) -> bytes:
        return encode_hello(
            snapshot,
            server=SERVER_NAME,
            fairness=self._runner.fairness(),
            chat=[(line.id, line.username, line.text, line.ts) for line in self._chat.recent()],
            ts=time.time(),
            presence=self._presence.counts(),
            bet_limits=self._runner.bet_limits(),
        )

    def greet(self, send: Callable[[bytes], object]) -> None:
        """Call ``send`` with a ``hello`` as soon as the game can be shown as sent."""
        self._runner.greet(lambda snapshot: send(self.encode(snapshot)))
