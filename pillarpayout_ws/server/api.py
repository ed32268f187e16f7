"""``/api/*``: the published record anyone can check the game from.

- ``GET /api/fairness``: every seed chain with its commitment (published when
  the chain was made), its salt and the salt's source, and the house edge.
- ``GET /api/rounds?before=ID&limit=N``: finished rounds, newest first, with
  their seeds (crashed ones), crash points and totals.
- ``GET /api/rounds/ID``: one round and its bets.
- ``GET /api/chat?limit=N``: the chat's last lines (``hello`` carries only
  what fits in its 8 KiB).
- ``GET /api/me/bets?before=ID&limit=N``: the caller's own flushed bets,
  newest first by id, for ``Authorization: Bearer TOKEN`` (a session token);
  any missing, malformed, unknown or revoked token gets the same 401.
- ``GET /api/users/NAME``: a player's profile and all-time totals.
- ``GET /api/leaderboard?by=profit|wagered|multiplier&period=day|week|all``:
  the top 50 of the UTC day, the ISO week (from Monday, UTC) or all time,
  ties to the older account.

Profiles and leaderboards read ``player_stats``, summed from the flushed bets
right after each flush (storage/stats.py); refunded bets count in ``bets``
and ``rounds_played`` only. A leaderboard is kept until the next summary adds
bets. These three refuse unknown parameters (400); a player's bets and totals
appear once their round is flushed and summed, not while it is in Redis.

A round is on record the moment it crashes: rounds PostgreSQL does not hold
yet are read from Redis's write-ahead and settled the way the flush will
settle them. A round that has not crashed shows no seed and no crash point,
anywhere (a void round neither: it never crashed). Pages are served by
awaiting PostgreSQL and Redis, never by holding up the game loop; a crashed
round's page never changes, so it is cacheable. Bad parameters get 400 with
a one-line JSON error, an unknown round 404, and one address asking faster
than ``API_RATE`` a second 429 (unless the address is exempt).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from ..engine.records import RoundRecord
from ..exceptions import PillarPayoutError
from ..storage import Storage
from ..storage.postgres import ALL_TIME, LEADERBOARD_VALUES
from ..storage.settle import SettledBet, SettledRound, settle_round
from ..storage.stats import PlayerStats
from .auth import Accounts, AuthError
from .chat import RECENT_CHAT, ChatRoom
from .clock import Clock
from .limits import AddressBuckets, ClientAddresses
from .routes import Page, json_response
from .runner import GameRunner

__all__ = ["API_RATE", "PublicRecord"]

log = logging.getLogger("pillarpayout.server")

API_RATE = 20.0  # requests a second per address...
API_BURST = 40.0  # ...after a burst of this many
MAX_LIMIT = 100
DEFAULT_LIMIT = 20
FOREVER = "public, max-age=31536000, immutable"
LEADERBOARD_SIZE = 50
PERIODS = ("day", "week", "all")
MAX_USERNAME = 64  # longer than any username can be (32)
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,128}")  # what secrets.token_urlsafe makes
UNAUTHORIZED = "a valid session token is required: Authorization: Bearer TOKEN"

Json = dict[str, Any]


class BadRequest(Exception):
    """A parameter that cannot be used: 400, with this message."""


class PublicRecord:
    def __init__(
        self,
        storage: Storage,
        runner: GameRunner,
        chat: ChatRoom,
        clock: Clock,
        addresses: ClientAddresses,
        accounts: Accounts,
        stats: PlayerStats,
    ) -> None:
        self._storage = storage
        self._accounts = accounts
        self._stats = stats
        # Leaderboards as last answered, until the next summary adds bets.
        self._boards: dict[tuple[str, str, date], Json] = {}
        self._boards_generation = -1
        self._runner = runner
        self._chat = chat
        self._clock = clock
        self._addresses = addresses
        self._buckets = AddressBuckets(API_RATE, API_BURST, clock.now, addresses)
        # Crashed rounds not flushed yet, settled once: they cannot change.
        self._settled: dict[int, Json] = {}

    @property
    def pages(self) -> dict[str, Page]:
        return {
            "/api/fairness": _guarded(self.fairness),
            "/api/rounds": _guarded(self.rounds),
            "/api/chat": _guarded(self.chat),
            "/api/me/bets": _guarded(self.my_bets),
            "/api/leaderboard": _guarded(self.leaderboard),
        }

    @property
    def prefixes(self) -> dict[str, Page]:
        return {"/api/rounds/": _guarded(self.round), "/api/users/": _guarded(self.user)}

    # -- the pages ----------------------------------------------------------

    async def fairness(self, connection: ServerConnection, request: Request) -> Response:
        refused = self._refused(connection)
        if refused is not None:
            return refused
        chains = await self._storage.db.seed_chains()
        fairness = self._runner.fairness()
        body = {
            "chains": [
                {
                    "chain_id": c.id,
                    "commitment": c.commitment,
                    "length": c.length,
                    "client_seed": c.client_seed,
                    "client_seed_source": c.client_seed_source,
                    "committed_at": _ts(c.created_at),
                    "salted_at": _ts(c.salted_at),
                    "rounds_played": c.last_nonce,
                }
                for c in chains
            ],
            "current": {"chain_id": fairness.chain_id, "house_edge": fairness.house_edge},
        }
        return json_response(HTTPStatus.OK, body, cache="no-cache")

    async def rounds(self, connection: ServerConnection, request: Request) -> Response:
        refused = self._refused(connection)
        if refused is not None:
            return refused
        try:
            below, limit = _page(request, strict=False)
        except BadRequest as exc:
            return _error(HTTPStatus.BAD_REQUEST, str(exc))
        pending = [r for r in (await self._pending()).values() if r["id"] < below]
        flushed = [_round_row(r) for r in await self._storage.db.rounds_before(below, limit)]
        by_id = {r["id"]: r for r in [*flushed, *pending]}
        rounds = [by_id[i] for i in sorted(by_id, reverse=True)[:limit]]
        return json_response(HTTPStatus.OK, {"rounds": rounds}, cache="no-cache")

    async def round(self, connection: ServerConnection, request: Request) -> Response:
        refused = self._refused(connection)
        if refused is not None:
            return refused
        text = request.path.split("?", 1)[0].rsplit("/", 1)[1]
        if not (text.isdigit() and text.isascii() and len(text) <= 18):
            return _error(HTTPStatus.BAD_REQUEST, "a round id is a positive whole number")
        round_id = int(text)
        row, bets = await self._storage.db.round_with_bets(round_id)
        if row is not None:
            body = {**_round_row(row), "bets": [_bet_row(b) for b in bets]}
            return json_response(HTTPStatus.OK, body, cache=FOREVER)
        records = (await self._storage.live.round_records([round_id])).get(round_id)
        if not records:
            return _error(HTTPStatus.NOT_FOUND, f"no round {round_id}")
        settled = settle_round(records)
        names = await self._storage.db.usernames([b.user_id for b in settled.bets])
        body = {
            **_settled_round(settled, open_round=settled.void),
            "bets": _settled_bets(settled, names),
        }
        return json_response(HTTPStatus.OK, body, cache="no-store" if settled.void else FOREVER)

    async def chat(self, connection: ServerConnection, request: Request) -> Response:
        refused = self._refused(connection)
        if refused is not None:
            return refused
        try:
            limit = _int(_query(request, {"limit"}), "limit", default=RECENT_CHAT)
            if limit > RECENT_CHAT:
                raise BadRequest(f"limit is 1 to {RECENT_CHAT}")
        except BadRequest as exc:
            return _error(HTTPStatus.BAD_REQUEST, str(exc))
        lines = self._chat.recent()[-limit:]
        body = {
            "chat": [
                {"id": line.id, "username": line.username, "text": line.text, "ts": line.ts}
                for line in lines
            ]
        }
        return json_response(HTTPStatus.OK, body)

    async def my_bets(self, connection: ServerConnection, request: Request) -> Response:
        refused = self._refused(connection)
        if refused is not None:
            return refused
        user_id = await self._session_user(request)
        if user_id is None:
            return _unauthorized()
        try:
            below, limit = _page(request, strict=True)
        except BadRequest as exc:
            return _error(HTTPStatus.BAD_REQUEST, str(exc))
        rows = await self._storage.db.bets_of_user(user_id, below, limit + 1)
        bets = [dict(r) for r in rows[:limit]]
        next_before = bets[-1]["id"] if len(rows) > limit else None
        return json_response(HTTPStatus.OK, {"bets": bets, "next_before": next_before})

    async def user(self, connection: ServerConnection, request: Request) -> Response:
        refused = self._refused(connection)
        if refused is not None:
            return refused
        try:
            _query(request, set(), strict=True)
        except BadRequest as exc:
            return _error(HTTPStatus.BAD_REQUEST, str(exc))
        text = request.path.split("?", 1)[0].rsplit("/", 1)[1]
        try:
            name = unquote(text, errors="strict")
        except UnicodeDecodeError:
            name = ""
        row = None
        if name and len(name) <= MAX_USERNAME:
            row = await self._storage.db.player_profile(name)
        if row is None:
            return _error(HTTPStatus.NOT_FOUND, "no such user")
        body = {
            "username": row["username"],
            "joined_at": _ts(row["created_at"]),
            "rounds_played": row["rounds"],
            "bets": row["bets"],
            "wagered": row["wagered"],
            "profit": row["profit"],
            "best_multiplier": _hundredths(row["best_x100"]),
            "biggest_win": row["biggest_win"],
        }
        return json_response(HTTPStatus.OK, body, cache="no-cache")

    async def leaderboard(self, connection: ServerConnection, request: Request) -> Response:
        refused = self._refused(connection)
        if refused is not None:
            return refused
        try:
            query = _query(request, {"by", "period"}, strict=True)
            by = query.get("by", "profit")
            if by not in LEADERBOARD_VALUES:
                raise BadRequest("by is profit, wagered or multiplier")
            period = query.get("period", "all")
            if period not in PERIODS:
                raise BadRequest("period is day, week or all")
        except BadRequest as exc:
            return _error(HTTPStatus.BAD_REQUEST, str(exc))
        # The game's clock stamps the bets, so it says which day it is.
        today = datetime.fromtimestamp(self._clock.now(), UTC).date()
        starts = period_start(period, today)
        if self._boards_generation != self._stats.generation:
            self._boards_generation = self._stats.generation
            self._boards = {}
        key = (by, period, starts)
        body = self._boards.get(key)
        if body is None:
            generation = self._stats.generation
            rows = await self._storage.db.leaderboard(by, period, starts, LEADERBOARD_SIZE)
            multiplier = by == "multiplier"  # hundredths in PostgreSQL; cents stay cents
            body = {
                "by": by,
                "period": period,
                "starts": None if period == "all" else starts.isoformat(),
                "rows": [
                    {
                        "rank": rank,
                        "username": r["username"],
                        "value": _hundredths(r["value"]) if multiplier else r["value"],
                    }
                    for rank, r in enumerate(rows, 1)
                ],
            }
            if generation == self._stats.generation:  # no summary since it was read
                self._boards[key] = body
        return json_response(HTTPStatus.OK, body, cache="no-cache")

    # -- helpers ------------------------------------------------------------

    async def _session_user(self, request: Request) -> int | None:
        """The user id of the request's ``Authorization: Bearer`` session, or None:
        missing, malformed, unknown, expired and revoked look the same."""
        headers = request.headers.get_all("Authorization")
        if len(headers) != 1:
            return None
        scheme, _, token = headers[0].strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not _TOKEN.fullmatch(token):
            return None
        try:
            user, _, _ = await self._accounts.resume(token)
        except AuthError:
            return None
        return user.id

    async def _pending(self) -> dict[int, Json]:
        """Crashed rounds still in Redis (settled once, kept until they are flushed)."""
        live = self._storage.live
        ids = set(await live.pending_round_ids())
        self._settled = {i: r for i, r in self._settled.items() if i in ids}
        fresh = [i for i in ids if i not in self._settled]
        if fresh:
            for round_id, records in (await live.round_records(fresh)).items():
                settled = _crashed(records)
                if settled is not None:
                    self._settled[round_id] = _settled_round(settled, open_round=False)
        return self._settled

    def _refused(self, connection: ServerConnection) -> Response | None:
        if self._buckets.take(self._addresses.of(connection)):
            return None
        return _error(HTTPStatus.TOO_MANY_REQUESTS, "too many requests from your address")


def _guarded(page: Callable[[ServerConnection, Request], Awaitable[Response]]) -> Page:
    """``page``, answering 503 (JSON) when PostgreSQL or Redis does not answer."""

    async def answer(connection: ServerConnection, request: Request) -> Response:
        try:
            return await page(connection, request)
        except PillarPayoutError as exc:
            log.warning("%s: %s", request.path[:100], exc)
            return _error(HTTPStatus.SERVICE_UNAVAILABLE, "storage is unavailable; try again")

    return answer


def _crashed(records: Sequence[RoundRecord]) -> SettledRound | None:
    if not records:
        return None
    settled = settle_round(records)
    return None if settled.void else settled


def period_start(period: str, today: date) -> date:
    """The first day of the leaderboard ``period`` holding ``today`` (UTC): the day
    itself, the Monday of its ISO week, or ``ALL_TIME``."""
    if period == "day":
        return today
    if period == "week":
        return today - timedelta(days=today.weekday())
    return ALL_TIME


def _query(request: Request, known: set[str], *, strict: bool = False) -> dict[str, str]:
    """The query's parameters, each at most once; unknown ones are ignored, or
    refused when ``strict``."""
    try:
        raw = parse_qs(urlsplit(request.path).query, keep_blank_values=True, strict_parsing=False)
    except ValueError as exc:
        raise BadRequest(f"the query string cannot be read: {exc}") from None
    query: dict[str, str] = {}
    for name, values in raw.items():
        if name not in known:
            if strict:
                raise BadRequest(f"unknown parameter: {name[:40]}")
            continue
        if len(values) != 1:
            raise BadRequest(f"{name} is given more than once")
        query[name] = values[0]
    return query


def _page(request: Request, *, strict: bool) -> tuple[int, int]:
    """``?before=ID&limit=N``: (ids below this, how many), 400 on a bad value."""
    query = _query(request, {"before", "limit"}, strict=strict)
    before = _int(query, "before", default=None)
    limit = _int(query, "limit", default=DEFAULT_LIMIT)
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit is 1 to {MAX_LIMIT}")
    return (before if before is not None else 2**62), limit


def _int(query: Mapping[str, str], name: str, *, default: int | None) -> Any:
    text = query.get(name)
    if text is None:
        return default
    if not (text.isdigit() and text.isascii() and len(text) <= 18) or int(text) < 1:
        raise BadRequest(f"{name} is a positive whole number")
    return int(text)


def _error(status: HTTPStatus, message: str) -> Response:
    return json_response(status, {"error": message})


def _unauthorized() -> Response:
    response = _error(HTTPStatus.UNAUTHORIZED, UNAUTHORIZED)
    response.headers["WWW-Authenticate"] = "Bearer"
    return response


def _ts(at: datetime | None) -> float | None:
    return None if at is None else at.timestamp()


def _hundredths(value: int | None) -> float | None:
    return None if value is None else value / 100


def _round_row(row: Mapping[str, Any]) -> Json:
    crashed = row["status"] == "crashed"
    return {
        "id": row["id"],
        "chain_id": row["chain_id"],
        "nonce": row["nonce"],
        "seed_hash": row["seed_hash"].strip(),
        "server_seed": row["server_seed"].strip() if crashed else None,
        "client_seed": row["client_seed"],
        "house_edge": float(row["house_edge"]),
        "crash_point": _hundredths(row["crash_point_x100"]) if crashed else None,
        "status": row["status"],
        "started_at": _ts(row["started_at"]),
        "ended_at": _ts(row["ended_at"]),
        "bets_count": row["bets_count"],
        "total_wagered": row["total_wagered"],
        "total_paid": row["total_paid"],
    }


def _bet_row(row: Mapping[str, Any]) -> Json:
    return {
        "username": row["username"],
        "amount": row["amount"],
        "cashout_multiplier": _hundredths(row["multiplier_x100"]),
        "payout": row["payout"],
        "status": row["status"],
        "placed_at": _ts(row["placed_at"]),
        "slot": row["slot"],
    }


def _settled_round(settled: SettledRound, *, open_round: bool) -> Json:
    """A round from Redis: crashed (waiting for its flush), or the one being played."""
    opened = settled.opened
    bets = _kept_bets(settled, open_round=open_round)
    return {
        "id": opened.round_id,
        "chain_id": opened.chain_id,
        "nonce": opened.nonce,
        "seed_hash": opened.seed_hash,
        "server_seed": None if open_round else settled.server_seed,
        "client_seed": opened.client_seed,
        "house_edge": opened.house_edge,
        "crash_point": None if open_round else _hundredths(settled.crash_point),
        "status": "open" if open_round else "crashed",
        "started_at": _ts(settled.started_at),
        "ended_at": _ts(settled.ended_at),
        "bets_count": len(bets),
        "total_wagered": sum(b.amount for b in bets),
        "total_paid": settled.total_paid,
    }


def _kept_bets(settled: SettledRound, *, open_round: bool) -> list[SettledBet]:
    """The bets to show: of the round being played, a cancelled bet is gone (as
    from the bets frame); once crashed it is a refunded bet, as PostgreSQL keeps it."""
    if not open_round:
        return list(settled.bets)
    return [b for b in settled.bets if (b.user_id, b.slot) not in settled.cancelled]


def _settled_bets(settled: SettledRound, names: Mapping[int, str]) -> list[Json]:
    return [
        {
            "username": names.get(b.user_id),
            "amount": b.amount,
            "cashout_multiplier": _hundredths(b.multiplier),
            "payout": b.payout,
            "status": "open" if b.status == "refunded" else b.status,
            "placed_at": _ts(b.placed_at),
            "slot": b.slot,
        }
        for b in _kept_bets(settled, open_round=settled.void)
    ]
