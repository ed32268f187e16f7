"""Encoding server frames (protocol/frames.py)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pillarpayout_ws.engine.errors import RejectCode
from pillarpayout_ws.engine.events import (
    BetAccepted,
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
    Tick,
)
from pillarpayout_ws.engine.goals import Goal
from pillarpayout_ws.engine.phases import Phase
from pillarpayout_ws.protocol import (
    LIVE_BETS_LIMIT,
    Fairness,
    encode_bets,
    encode_chat,
    encode_error,
    encode_event,
    encode_fairness,
    encode_hello,
    encode_logged_out,
    encode_pong,
    encode_presence,
    encode_session,
)

TS = 1_767_225_600.125
SEED_HASH = "ab" * 32
FAIRNESS = Fairness(2, "cd" * 32, 100_000, "block-880000", "bitcoin block 880000", 5.0)
FAIRNESS_WIRE = {
    "chain_id": 2,
    "commitment": "cd" * 32,
    "chain_length": 100_000,
    "client_seed": "block-880000",
    "client_seed_source": "bitcoin block 880000",
    "house_edge": 5.0,
}


def test_encode_fairness() -> None:
    assert decoded(encode_fairness(FAIRNESS)) == {"type": "fairness", **FAIRNESS_WIRE}


def decoded(data: bytes) -> Any:
    assert isinstance(data, bytes)
    value = orjson.loads(data)
    assert isinstance(value, dict)
    assert next(iter(value)) == "type"  # "type" comes first
    return value


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (
            BettingOpened(
                round_id=7,
                seed_hash=SEED_HASH,
                betting_ms=5000,
                chain_id=2,
                nonce=41,
                house_edge=5.0,
            ),
            {
                "type": "betting",
                "round_id": 7,
                "seed_hash": SEED_HASH,
                "betting_ms": 5000,
                "chain_id": 2,
                "nonce": 41,
                "house_edge": 5.0,
            },
        ),
        (RoundRunning(round_id=7), {"type": "running", "round_id": 7}),
        (
            Tick(round_id=7, m=235, integrity=4255, elapsed_ms=14_250),
            {
                "type": "tick",
                "round_id": 7,
                "m": 2.35,
                "integrity": 42.55,
                "elapsed_ms": 14_250,
                "ts": TS,
            },
        ),
        (
            Crashed(
                round_id=7,
                crash_point=374,
                server_seed="cd" * 32,
                client_seed="salt",
                nonce=7,
                elapsed_ms=22_000,
            ),
            {
                "type": "crashed",
                "round_id": 7,
                "crash_point": 3.74,
                "server_seed": "cd" * 32,
                "client_seed": "salt",
                "nonce": 7,
                "elapsed_ms": 22_000,
            },
        ),
        (
            BetAccepted(
                user_id=1,
                ref="b1",
                round_id=7,
                amount=1250,
                auto_cashout=210,
                balance=98_750,
                slot=1,
            ),
            {
                "type": "bet_accepted",
                "ref": "b1",
                "round_id": 7,
                "amount": 1250,
                "auto_cashout": 2.1,
                "balance": 98_750,
                "slot": 1,
            },
        ),
        (
            BetAccepted(user_id=1, ref=None, round_id=7, amount=1, auto_cashout=None, balance=0),
            {
                "type": "bet_accepted",
                "ref": None,
                "round_id": 7,
                "amount": 1,
                "auto_cashout": None,
                "balance": 0,
                "slot": 0,
            },
        ),
        (
            CashoutDone(
                user_id=1,
                ref=None,
                round_id=7,
                multiplier=210,
                payout=2625,
                balance=101_375,
                reason="auto",
            ),
            {
                "type": "cashed_out",
                "ref": None,
                "round_id": 7,
                "multiplier": 2.1,
                "payout": 2625,
                "balance": 101_375,
                "reason": "auto",
                "slot": 0,
            },
        ),
        (
            CancelDone(user_id=1, ref="x1", round_id=7, slot=1, amount=1250, balance=100_000),
            {
                "type": "bet_cancelled",
                "ref": "x1",
                "round_id": 7,
                "slot": 1,
                "amount": 1250,
                "balance": 100_000,
            },
        ),
        (
            CommandRejected(
                user_id=1, ref="b2", code=RejectCode.BETTING_CLOSED, message="betting is closed"
            ),
            {
                "type": "error",
                "code": "betting_closed",
                "message": "betting is closed",
                "ref": "b2",
            },
        ),
        (
            GoalUpdated(
                id=3,
                name="Tower of Babel",
                current_blocks=120,
                target_blocks=500,
                reward="a golden pillar skin",
                status="active",
            ),
            {
                "type": "goal",
                "id": 3,
                "name": "Tower of Babel",
                "current_blocks": 120,
                "target_blocks": 500,
                "reward": "a golden pillar skin",
                "status": "active",
            },
        ),
        (
            FundsGranted(user_id=1, key="grant:starting:1", amount=100_000, balance=100_000),
            {"type": "balance", "balance": 100_000, "amount": 100_000, "reason": "grant"},
        ),
    ],
)
def test_encode_event(event: Event, expected: dict[str, Any]) -> None:
    assert decoded(encode_event(event, ts=TS)) == expected


def test_event_frames_keep_key_order() -> None:
    data = encode_event(Tick(round_id=1, m=100, integrity=10_000, elapsed_ms=0), ts=1.5)
    assert data == (
        b'{"type":"tick","round_id":1,"m":1.0,"integrity":100.0,"elapsed_ms":0,"ts":1.5}'
    )


def test_grant_key_is_not_sent() -> None:
    data = encode_event(FundsGranted(user_id=1, key="secret-key", amount=1, balance=1), ts=TS)
    assert b"secret-key" not in data


@settings(max_examples=300, database=None, deadline=None)
@given(st.integers(min_value=0, max_value=10**15 - 1))
def test_hundredths_print_with_two_decimals(hundredths: int) -> None:
    data = encode_event(Tick(round_id=1, m=hundredths, integrity=hundredths, elapsed_ms=0), ts=0.0)
    text = data.decode()
    whole, cents = divmod(hundredths, 100)
    # The shortest repr of the double: "2.35", "2.3" (for 2.30) or "2.0".
    wire = f"{whole}.{cents:02d}".rstrip("0")
    wire = wire + "0" if wire.endswith(".") else wire
    assert f'"m":{wire},' in text
    assert f'"integrity":{wire},' in text
    assert round(orjson.loads(data)["m"] * 100) == hundredths


def test_encode_error() -> None:
    assert decoded(encode_error("bad_frame", "the frame is not valid JSON", None)) == {
        "type": "error",
        "code": "bad_frame",
        "message": "the frame is not valid JSON",
        "ref": None,
    }
    assert decoded(encode_error(RejectCode.ALREADY_BET, "one bet per round", "r"))["code"] == (
        "already_bet"
    )


def test_encode_session() -> None:
    assert decoded(encode_session("tok", 42, "ada", 100_000)) == {
        "type": "session",
        "token": "tok",
        "user": {"id": 42, "username": "ada", "balance": 100_000, "role": "player"},
    }
    assert decoded(encode_session("tok", 42, "ada", 0, "moderator"))["user"]["role"] == (
        "moderator"
    )


def test_encode_logged_out_and_pong() -> None:
    assert decoded(encode_logged_out()) == {"type": "logged_out"}
    assert decoded(encode_pong("p1", ts=TS)) == {"type": "pong", "ref": "p1", "ts": TS}
    assert decoded(encode_pong(None, ts=TS)) == {"type": "pong", "ref": None, "ts": TS}


def test_encode_chat() -> None:
    assert decoded(encode_chat("ada", 'to the moon 🚀 "quoted"', TS, chat_id=7)) == {
        "type": "chat",
        "id": 7,
        "username": "ada",
        "text": 'to the moon 🚀 "quoted"',
        "ts": TS,
    }


BETS = (
    BetView(user_id=1, username="ada", amount=1250, status="open", multiplier=None, payout=None),
    BetView(
        user_id=2,
        username="bob",
        amount=500,
        status="cashed_out",
        multiplier=235,
        payout=1175,
        slot=1,
    ),
    BetView(user_id=3, username="cy", amount=100, status="lost", multiplier=None, payout=None),
)
BETS_WIRE = [
    {
        "user_id": 1,
        "username": "ada",
        "amount": 1250,
        "status": "open",
        "multiplier": None,
        "payout": None,
        "slot": 0,
    },
    {
        "user_id": 2,
        "username": "bob",
        "amount": 500,
        "status": "cashed_out",
        "multiplier": 2.35,
        "payout": 1175,
        "slot": 1,
    },
    {
        "user_id": 3,
        "username": "cy",
        "amount": 100,
        "status": "lost",
        "multiplier": None,
        "payout": None,
        "slot": 0,
    },
]


def test_encode_bets() -> None:
    assert decoded(encode_bets(7, BETS)) == {
        "type": "bets",
        "round_id": 7,
        "bets": BETS_WIRE,
        "more": 0,
    }
    assert decoded(encode_bets(7, [])) == {"type": "bets", "round_id": 7, "bets": [], "more": 0}


def test_encode_presence() -> None:
    assert decoded(encode_presence(2, 15)) == {"type": "presence", "players": 2, "spectators": 15}


def test_encode_hello_while_running() -> None:
    snapshot = GameSnapshot(
        phase=Phase.RUNNING,
        round_id=7,
        seed_hash=SEED_HASH,
        chain_id=2,
        nonce=41,
        m=235,
        integrity=4255,
        elapsed_ms=14_250,
        betting_left_ms=0,
        crash_point=None,
        history=((5, 100), (6, 1234)),
        goal=Goal(id=3, name="Tower", target_blocks=500, current_blocks=120, reward="skin"),
        bets=BETS,
    )
    chat = [(1, "ada", "hi", TS - 2), (2, "bob", "gl", TS - 1)]
    hello = encode_hello(
        snapshot,
        server="pillarpayout/0.1.0",
        fairness=FAIRNESS,
        chat=chat,
        ts=TS,
        presence=(3, 120),
    )
    assert decoded(hello) == {
        "type": "hello",
        "server": "pillarpayout/0.1.0",
        "round_id": 7,
        "phase": "running",
        "seed_hash": SEED_HASH,
        "nonce": 41,
        "fairness": FAIRNESS_WIRE,
        "m": 2.35,
        "integrity": 42.55,
        "elapsed_ms": 14_250,
        "betting_left_ms": 0,
        "crash_point": None,
        "history": [{"round_id": 5, "crash_point": 1.0}, {"round_id": 6, "crash_point": 12.34}],
        "goal": {
            "id": 3,
            "name": "Tower",
            "current_blocks": 120,
            "target_blocks": 500,
            "reward": "skin",
            "status": "active",
        },
        "chat": [
            {"id": 1, "username": "ada", "text": "hi", "ts": TS - 2},
            {"id": 2, "username": "bob", "text": "gl", "ts": TS - 1},
        ],
        "bets": BETS_WIRE,
        "bets_more": 0,
        "presence": {"players": 3, "spectators": 120},
        "ts": TS,
    }


def test_encode_hello_crashed_and_completed_goal() -> None:
    snapshot = GameSnapshot(
        phase=Phase.CRASHED,
        round_id=8,
        seed_hash=SEED_HASH,
        chain_id=2,
        nonce=42,
        m=374,
        integrity=0,
        elapsed_ms=22_000,
        betting_left_ms=0,
        crash_point=374,
        history=(),
        goal=Goal(id=4, name="Done", target_blocks=10, current_blocks=12, reward="r"),
        bets=(),
    )
    hello = decoded(encode_hello(snapshot, server="s", fairness=FAIRNESS, chat=[], ts=TS))
    assert (hello["phase"], hello["crash_point"], hello["m"], hello["integrity"]) == (
        "crashed",
        3.74,
        3.74,
        0.0,
    )
    assert hello["goal"]["status"] == "completed"
    assert (hello["history"], hello["chat"], hello["bets"]) == ([], [], [])


def test_encode_hello_before_the_first_round() -> None:
    snapshot = GameSnapshot(
        phase=Phase.IDLE,
        round_id=None,
        seed_hash=None,
        chain_id=None,
        nonce=None,
        m=100,
        integrity=10_000,
        elapsed_ms=0,
        betting_left_ms=0,
        crash_point=None,
        history=(),
        goal=None,
        bets=(),
    )
    hello = decoded(encode_hello(snapshot, server="s", fairness=FAIRNESS, chat=[], ts=TS))
    assert (hello["phase"], hello["round_id"], hello["seed_hash"], hello["goal"]) == (
        "idle",
        None,
        None,
        None,
    )
    assert (hello["m"], hello["integrity"]) == (1.0, 100.0)
    assert "bet_limits" not in hello  # only when the server gives them
    limited = encode_hello(
        snapshot,
        server="s",
        fairness=FAIRNESS,
        chat=[],
        ts=TS,
        bet_limits=(10, 1_000_000, 1_000_000),
    )
    assert decoded(limited)["bet_limits"] == {
        "min_bet": 10,
        "max_bet": 1_000_000,
        "max_auto_cashout": 10_000.0,
    }


def test_live_bets_are_capped_to_the_largest() -> None:
    bets = [BetView(i, f"p{i}", 100 + i, "open", None, None) for i in range(250)]
    frame = orjson.loads(encode_bets(7, bets))
    assert len(frame["bets"]) == LIVE_BETS_LIMIT
    assert frame["more"] == 150
    assert min(b["amount"] for b in frame["bets"]) == 100 + 150  # the 100 largest
    small = orjson.loads(encode_bets(7, bets[:3]))
    assert (len(small["bets"]), small["more"]) == (3, 0)
