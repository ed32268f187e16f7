"""Server to client: every frame the server sends, encoded to JSON bytes.

Each encoder returns the UTF-8 bytes of one JSON object whose first key is
``"type"``, ready for a WebSocket text frame (``websockets`` sends ``bytes``
as a binary frame unless told otherwise, so the server sends these with
``text=True``).

Units change here, and only here, from the engine's to the wire's:

==============  ============================  ==============================
quantity        engine                        wire
==============  ============================  ==============================
money           integer cents                 integer cents (``1250``)
multiplier      integer hundredths (``235``)  number, two decimals (``2.35``)
integrity       hundredths of a % (``4255``)  percent, two decimals (``42.55``)
time            ``_ms`` integers              ``_ms`` integers; ``ts`` float s
==============  ============================  ==============================

Nothing here reads the clock: every ``ts`` is the caller's.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import assert_never

import orjson

from pillarpayout_ws.engine.events import (
    BetAccepted,
    BetRefunded,
    BettingOpened,
    BetView,
    CancelDone,
    CashoutDone,
    CommandRejected,
    Crashed,
    Event,
    FundsGranted,
    GameSnapshot,
    GoalUpdated,
    RoundRunning,
    RoundVoided,
    Tick,
)
from pillarpayout_ws.engine.goals import Goal
from pillarpayout_ws.engine.limits import LIMIT_NAMES, Limits

__all__ = [
    "HELLO_LIMIT",
    "LIVE_BETS_LIMIT",
    "Fairness",
    "encode_balance",
    "encode_bets",
    "encode_chat",
    "encode_chat_deleted",
    "encode_error",
    "encode_event",
    "encode_fairness",
    "encode_hello",
    "encode_logged_out",
    "encode_moderated",
    "encode_muted",
    "encode_pong",
    "encode_presence",
    "encode_role",
    "encode_session",
]

_Object = dict[str, object]

# The most bets a ``bets`` frame lists (the largest ones).
LIVE_BETS_LIMIT = 100
# A ``hello`` is at most this many bytes (a reconnect storm of 10,000 clients
# is then at most 80 MB of them), listing at most this many bets.
HELLO_LIMIT = 8192
HELLO_BETS = 20


@dataclass(frozen=True, slots=True)
class Fairness:
    """What anyone needs to check every round of the chain being played: the
    commitment the chain ends in, its salt and where the salt came from, and
    the house edge (percent) of the crash point formula."""

    chain_id: int
    commitment: str
    chain_length: int
    client_seed: str
    client_seed_source: str
    house_edge: float


def encode_event(event: Event, *, ts: float) -> bytes:
    """The frame announcing ``event``: broadcast ones and the personal ones alike.

    ``ts`` is the server time of the event in Unix seconds; it goes into the
    frames whose clients draw against it (``tick``).
    """
    frame: _Object
    match event:
        case BettingOpened():
            frame = {
                "type": "betting",
                "round_id": event.round_id,
                "seed_hash": event.seed_hash,
                "betting_ms": event.betting_ms,
                "chain_id": event.chain_id,
                "nonce": event.nonce,
                "house_edge": event.house_edge,
            }
        case RoundRunning():
            frame = {"type": "running", "round_id": event.round_id}
        case Tick():
            frame = {
                "type": "tick",
                "round_id": event.round_id,
                "m": _multiplier(event.m),
                "integrity": _percent(event.integrity),
                "elapsed_ms": event.elapsed_ms,
                "ts": ts,
            }
        case Crashed():
            frame = {
                "type": "crashed",
                "round_id": event.round_id,
                "crash_point": _multiplier(event.crash_point),
                "server_seed": event.server_seed,
                "client_seed": event.client_seed,
                "nonce": event.nonce,
                "elapsed_ms": event.elapsed_ms,
            }
        case BetAccepted():
            frame = {
                "type": "bet_accepted",
                "ref": event.ref,
                "round_id": event.round_id,
                "amount": event.amount,
                "auto_cashout": _optional_multiplier(event.auto_cashout),
                "balance": event.balance,
                "slot": event.slot,
            }
        case CashoutDone():
            frame = {
                "type": "cashed_out",
                "ref": event.ref,
                "round_id": event.round_id,
                "multiplier": _multiplier(event.multiplier),
                "payout": event.payout,
                "balance": event.balance,
                "reason": event.reason,
                "slot": event.slot,
            }
        case CancelDone():
            frame = {
                "type": "bet_cancelled",
                "ref": event.ref,
                "round_id": event.round_id,
                "slot": event.slot,
                "amount": event.amount,
                "balance": event.balance,
            }
        case CommandRejected():
            return encode_error(event.code, event.message, event.ref)
        case GoalUpdated():
            frame = {
                "type": "goal",
                "id": event.id,
                "name": event.name,
                "current_blocks": event.current_blocks,
                "target_blocks": event.target_blocks,
                "reward": event.reward,
                "status": event.status,
            }
        case RoundVoided():
            frame = {
                "type": "round_voided",
                "round_id": event.round_id,
                "refunded": event.refunded,
            }
        case BetRefunded():
            return encode_balance(event.balance, event.amount, "refund", event.round_id, event.slot)
        case FundsGranted():
            # The grant's idempotency key is bookkeeping, not the player's business.
            return encode_balance(event.balance, event.amount, event.reason)
        case _:
            assert_never(event)
    return orjson.dumps(frame)


def encode_fairness(fairness: Fairness) -> bytes:
    """Announces a new chain (or house edge) before its first round's ``betting``."""
    return orjson.dumps({"type": "fairness", **asdict(fairness)})


def encode_error(code: str, message: str, ref: str | None) -> bytes:
    """An ``error`` frame: ``code`` for programs, ``message`` for people."""
    return orjson.dumps({"type": "error", "code": str(code), "message": message, "ref": ref})


def encode_session(
    token: str, user_id: int, username: str, balance: int, role: str = "player"
) -> bytes:
    """The answer to ``register``, ``login`` and ``resume``: who you are now
    (``role``: ``player``, ``moderator`` or ``admin``)."""
    return orjson.dumps(
        {
            "type": "session",
            "token": token,
            "user": {"id": user_id, "username": username, "balance": balance, "role": role},
        }
    )


def encode_role(role: str) -> bytes:
    """To every connection of a user whose role an admin changed."""
    return orjson.dumps({"type": "role", "role": role})


def encode_moderated(
    action: str,
    ref: str | None,
    *,
    username: str,
    until: float | None = None,
    chat_id: int | None = None,
) -> bytes:
    """The answer to a moderation command: done (``until``: a mute's end)."""
    frame: _Object = {"type": "moderated", "ref": ref, "action": action, "username": username}
    if until is not None:
        frame["until"] = until
    if chat_id is not None:
        frame["id"] = chat_id
    return orjson.dumps(frame)


def encode_muted(until: float | None, reason: str) -> bytes:
    """To every connection of a user a moderator muted (``until``, Unix seconds)
    or unmuted (``until`` null)."""
    return orjson.dumps({"type": "muted", "until": until, "reason": reason})


def encode_chat_deleted(chat_id: int) -> bytes:
    """A moderator deleted chat line ``chat_id``: clients remove it."""
    return orjson.dumps({"type": "chat_deleted", "id": chat_id})


def encode_logged_out() -> bytes:
    """The answer to ``logout`` and ``logout_all``; the connection stays open as a
    spectator."""
    return orjson.dumps({"type": "logged_out"})


def encode_balance(
    balance: int, amount: int, reason: str, round_id: int | None = None, slot: int | None = None
) -> bytes:
    """A balance change the player did not ask for by a frame: a grant (the
    starting balance too) or the refund of a voided round's bet (its round and slot)."""
    frame: _Object = {"type": "balance", "balance": balance, "amount": amount, "reason": reason}
    if round_id is not None:
        frame["round_id"] = round_id
    if slot is not None:
        frame["slot"] = slot
    return orjson.dumps(frame)


def encode_limits(
    limits: Limits, usage: Mapping[str, int], ref: str | None, *, now_ms: int
) -> bytes:
    """The answer to ``set_limits`` and ``limits``: every limit with its value in
    force and any pending change (as of ``now_ms``), the period totals they are
    checked against, and the end of a cool-off or self-exclusion under way."""
    current = limits.at(now_ms)
    values: _Object = {}
    for name in LIMIT_NAMES:
        limit = current.limit(name)
        values[name] = {
            "amount": limit.current,
            "pending": limit.effective_at_ms is not None,
            "pending_amount": limit.pending,
            "effective_at_ms": limit.effective_at_ms,
        }
    return orjson.dumps(
        {
            "type": "limits",
            "ref": ref,
            "limits": values,
            "usage": dict(usage),
            "cool_off_until_ms": current.cool_off_until_ms,
            "self_excluded_until_ms": current.excluded_until_ms,
        }
    )


def encode_pong(ref: str | None, *, ts: float) -> bytes:
    """The answer to ``ping``, echoing its ``ref``, with the server time."""
    return orjson.dumps({"type": "pong", "ref": ref, "ts": ts})


def encode_chat(username: str, text: str, ts: float, *, chat_id: int) -> bytes:
    """A chat line, broadcast to everyone; ``id`` names it (``chat_deleted``)."""
    return orjson.dumps(
        {"type": "chat", "id": chat_id, "username": username, "text": text, "ts": ts}
    )


def encode_presence(players: int, spectators: int) -> bytes:
    """Who is here: distinct logged-in users with an open connection, and
    connections not logged in (on the game and on every relay)."""
    return orjson.dumps({"type": "presence", "players": players, "spectators": spectators})


def encode_bets(round_id: int, bets: Sequence[BetView]) -> bytes:
    """The live bets of ``round_id`` that changed since the last ``bets`` frame.

    At most ``LIVE_BETS_LIMIT`` of them, the largest; ``more`` counts the rest.
    """
    shown, more = _largest(bets)
    return orjson.dumps({"type": "bets", "round_id": round_id, "bets": _bets(shown), "more": more})


def encode_hello(
    snapshot: GameSnapshot,
    *,
    server: str,
    fairness: Fairness,
    chat: Sequence[tuple[int, str, str, float]],
    ts: float,
    presence: tuple[int, int] = (0, 0),
    bet_limits: tuple[int, int, int] | None = None,
) -> bytes:
    """The first frame of every connection: everything needed to draw the game now,
    and to check it (``fairness``), in at most ``HELLO_LIMIT`` bytes.

    It lists the ``HELLO_BETS`` largest bets (``bets_more`` counts the others),
    the recent crash points, and as many of the newest ``chat`` lines
    (``(id, username, text, ts)``, oldest first) as fit; more history and chat
    are on ``/api/rounds`` and ``/api/chat``. ``presence`` is (players online,
    spectators connected), as ``encode_presence`` sends them. ``bet_limits``
    (min bet and max bet in cents, max auto-cashout in hundredths) are the
    game's rules, for a client's bet controls. (Only operators' own long goal or
    salt texts could crowd out the bets or the history: then they go first.)
    """
    shown, more = _largest(snapshot.bets, HELLO_BETS)
    history = [
        {"round_id": round_id, "crash_point": _multiplier(crash_point)}
        for round_id, crash_point in snapshot.history
    ]
    frame: _Object = {
        "type": "hello",
        "server": server,
        "round_id": snapshot.round_id,
        "phase": snapshot.phase.value,
        "seed_hash": snapshot.seed_hash,
        "nonce": snapshot.nonce,
        "fairness": fairness,  # orjson writes a dataclass as its fields
        "m": _multiplier(snapshot.m),
        "integrity": _percent(snapshot.integrity),
        "elapsed_ms": snapshot.elapsed_ms,
        "betting_left_ms": snapshot.betting_left_ms,
        "crash_point": _optional_multiplier(snapshot.crash_point),
        "history": history,
        "goal": None if snapshot.goal is None else _goal(snapshot.goal),
        "chat": [],
        "bets": _bets(shown),
        "bets_more": more,
        "presence": {"players": presence[0], "spectators": presence[1]},
        "ts": ts,
    }
    if bet_limits is not None:
        min_bet, max_bet, max_auto = bet_limits
        frame["bet_limits"] = {
            "min_bet": min_bet,
            "max_bet": max_bet,
            "max_auto_cashout": _multiplier(max_auto),
        }
    data = orjson.dumps(frame)
    while len(data) > HELLO_LIMIT and (shown or history):
        if shown:
            more += len(shown) - len(shown) // 2
            shown = shown[: len(shown) // 2]
            frame["bets"], frame["bets_more"] = _bets(shown), more
        else:
            del history[: max(1, len(history) // 2)]
        data = orjson.dumps(frame)
    room = HELLO_LIMIT - len(data)
    lines: list[_Object] = []
    for chat_id, username, text, line_ts in reversed(chat):
        line: _Object = {"id": chat_id, "username": username, "text": text, "ts": line_ts}
        room -= len(orjson.dumps(line)) + (1 if lines else 0)
        if room < 0:
            break
        lines.append(line)
    if not lines:
        return data
    frame["chat"] = lines[::-1]
    return orjson.dumps(frame)


# --- pieces -----------------------------------------------------------------------


def _multiplier(hundredths: int) -> float:
    # The double nearest hundredths/100 prints as exactly two decimals at most
    # (orjson writes the shortest repr) for any value under 10**15 hundredths.
    return hundredths / 100


def _optional_multiplier(hundredths: int | None) -> float | None:
    return None if hundredths is None else hundredths / 100


def _percent(hundredths_of_percent: int) -> float:
    return hundredths_of_percent / 100


def _goal(goal: Goal) -> _Object:
    return {
        "id": goal.id,
        "name": goal.name,
        "current_blocks": goal.current_blocks,
        "target_blocks": goal.target_blocks,
        "reward": goal.reward,
        "status": "completed" if goal.completed else "active",
    }


def _largest(
    bets: Sequence[BetView], limit: int = LIVE_BETS_LIMIT
) -> tuple[Sequence[BetView], int]:
    """The ``limit`` largest bets and how many were left out.

    A round with thousands of bets would otherwise put a frame of hundreds of
    kilobytes in every socket at once (the delta when the round starts, and
    every ``hello``): a client draws a leaderboard, not the whole list.
    """
    if len(bets) <= limit:
        return bets, 0
    return heapq.nlargest(limit, bets, key=lambda b: b.amount), len(bets) - limit


def _bets(bets: Sequence[BetView]) -> list[_Object]:
    return [
        {
            "user_id": bet.user_id,
            "username": bet.username,
            "amount": bet.amount,
            "status": bet.status,
            "multiplier": _optional_multiplier(bet.multiplier),
            "payout": bet.payout,
            "slot": bet.slot,
        }
        for bet in bets
    ]
