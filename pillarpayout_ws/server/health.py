"""Health: is PostgreSQL, Redis, the game loop and the flush fine; ``/healthz``;
and the embedded servers kept alive.

``check()`` runs every second (the server's tasks). Each store is pinged with
``PING_TIMEOUT_S``; a ping is never cancelled, because cancelling a query to
a hung PostgreSQL waits on a cancel request it does not answer: a ping still
running from an earlier check means unavailable, without starting another.

When the server owns embedded servers (no URL given) and one of them does not
answer, it is started again on the same data if its process is gone (crash
recovery for PostgreSQL, the append-only file for Redis): ``EmbeddedServers.revive``.
A server that is alive but slow is left alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from http import HTTPStatus
from typing import Any

from websockets.http11 import Response

from ..exceptions import PillarPayoutError
from ..storage import Storage
from ..storage.flush import Flusher
from .routes import json_response

__all__ = ["PING_TIMEOUT_S", "HealthWatch"]

Ping = Callable[[], Coroutine[Any, Any, None]]

log = logging.getLogger("pillarpayout.server")

PING_TIMEOUT_S = 2.0


class HealthWatch:
    def __init__(
        self, storage: Storage, flusher: Flusher, game_loop_alive: Callable[[], bool]
    ) -> None:
        self._storage = storage
        self._flusher = flusher
        self._game_loop_alive = game_loop_alive
        # The server has just seen both answer when it starts; check() takes over.
        self.state: dict[str, bool] = {"postgres": True, "redis": True, "game_loop": True}
        self._pings: dict[str, asyncio.Task[None]] = {}

    @property
    def ok(self) -> bool:
        return all(self.state.values()) and self._flusher.healthy

    async def check(self) -> None:
        pings: dict[str, Ping] = {
            "postgres": self._storage.db.ping,
            "redis": self._storage.live.ping,
        }
        for name, ping in pings.items():
            self._note(name, await self._answers(name, ping))
        embedded = self._storage.embedded
        if embedded is not None and not (self.state["postgres"] and self.state["redis"]):
            try:
                for name in await asyncio.to_thread(embedded.revive):
                    log.warning("the embedded %s had died: restarted it", name)
            except PillarPayoutError as exc:
                log.error("could not restart an embedded server: %s", exc)
        self.state["game_loop"] = self._game_loop_alive()

    async def _answers(self, name: str, ping: Ping) -> bool:
        task = self._pings.get(name)
        if task is not None and task.done() and not task.cancelled():
            task.exception()  # seen: its outcome was already counted
        if task is None or task.done():
            task = self._pings[name] = asyncio.create_task(ping(), name=f"ping-{name}")
            await asyncio.wait({task}, timeout=PING_TIMEOUT_S)
        return task.done() and not task.cancelled() and task.exception() is None

    def _note(self, name: str, ok: bool) -> None:
        if ok != self.state[name]:
            log.log(
                logging.INFO if ok else logging.WARNING,
                "%s is %s",
                name,
                "back" if ok else "unavailable",
            )
        self.state[name] = ok

    async def wait_pings(self) -> None:
        """Let the pings still running end (tests; shutdown cancels them instead)."""
        if self._pings:
            await asyncio.wait(set(self._pings.values()))

    def close(self) -> None:
        for task in self._pings.values():
            task.cancel()

    def response(self) -> Response:
        """``/healthz``: 200 when everything is fine, 503 otherwise (protocol.md)."""
        flusher = self._flusher
        body = {
            "status": "ok" if self.ok else "unavailable",
            **self.state,
            "flush_backlog": flusher.backlog,
            "flush_lag_s": round(flusher.lag_s, 3),
            "flush_held": sorted(flusher.held),
        }
        return json_response(HTTPStatus.OK if self.ok else HTTPStatus.SERVICE_UNAVAILABLE, body)
