"""Hundreds of players against a real ``serve`` process, remembering every ack they got.

``provision()`` writes accounts and session tokens straight into PostgreSQL
(funded through the ledger, so the audit holds) before ``serve`` starts;
``Crowd`` connects them all with the load-test client, resumes their
sessions, bets once per call of ``bet()``, and keeps what the server
acknowledged: that is what a kill must never lose.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from loadtest.client import ClientStats, GameClient, open_client
from pillarpayout_ws.storage import open_storage

START_BALANCE = 1_000_000  # cents


async def provision(data_dir: Path, count: int) -> dict[int, str]:
    """``count`` funded accounts with a live session each: user id -> token."""
    tokens = [hashlib.sha256(f"chaos-token-{i}".encode()).hexdigest() for i in range(count)]
    storage = await open_storage(data_dir=data_dir)
    try:
        db = storage.db
        await db.execute(
            "INSERT INTO users (username, email, password_hash, balance) "
            "SELECT 'chaos' || i, 'chaos' || i || '@example.com', 'x', $2 "
            "FROM generate_series(0, $1 - 1) AS i",
            count,
            START_BALANCE,
        )
        await db.execute(
            "INSERT INTO ledger (user_id, kind, amount, idem_key) "
            "SELECT id, 'grant', $1, 'grant:chaos:' || id FROM users",
            START_BALANCE,
        )
        await db.execute(
            "INSERT INTO sessions (token_sha256, user_id, expires_at) "
            "SELECT encode(sha256(convert_to(t, 'UTF8')), 'hex'), u.id, now() + interval '1 day' "
            "FROM unnest($1::text[]) WITH ORDINALITY AS x(t, n) "
            "JOIN users u ON u.username = 'chaos' || (x.n - 1)",
            tokens,
        )
        rows = await db.fetch("SELECT id, username FROM users WHERE username LIKE 'chaos%'")
    finally:
        await storage.close()
    by_name = {str(r["username"]): int(r["id"]) for r in rows}
    return {by_name[f"chaos{i}"]: token for i, token in enumerate(tokens)}


@dataclass
class Acks:
    """What the server acknowledged to the crowd."""

    bets: dict[tuple[int, int], int] = field(default_factory=dict)  # (round, user) -> amount
    cashouts: dict[tuple[int, int], int] = field(default_factory=dict)  # (round, user) -> payout
    cancels: dict[tuple[int, int], int] = field(default_factory=dict)  # (round, user) -> refund
    cancel_answers: int = 0  # every bet_cancelled, repeats included
    errors: Counter[str] = field(default_factory=Counter)

    def open_bets(self, round_id: int) -> int:
        placed = {u for r, u in self.bets if r == round_id}
        return len(placed - {u for r, u in self.cashouts if r == round_id})


class Crowd:
    def __init__(self, port: int, tokens: dict[int, str]) -> None:
        self.port, self.tokens = port, tokens
        self.acks = Acks()
        self.stats = ClientStats()
        self.clients: dict[int, GameClient] = {}
        self.sessions = 0
        self.phase = ""
        self.round_id = 0
        self.m = 100
        self.crashed: dict[int, int] = {}  # round -> crash point, hundredths
        self._changed = asyncio.Event()

    def _on_frame(self, user_id: int) -> Callable[[GameClient, bytes], None]:
        def on_frame(client: GameClient, payload: bytes) -> None:
            frame: dict[str, Any] = orjson.loads(payload)
            kind = frame["type"]
            if kind == "session":
                self.sessions += 1
            elif kind == "bet_accepted":
                self.acks.bets[(frame["round_id"], user_id)] = frame["amount"]
            elif kind == "cashed_out":
                self.acks.cashouts[(frame["round_id"], user_id)] = frame["payout"]
            elif kind == "bet_cancelled":
                self.acks.cancels[(frame["round_id"], user_id)] = frame["amount"]
                self.acks.cancel_answers += 1
            elif kind == "error":
                self.acks.errors[frame["code"]] += 1
            elif user_id != self.watcher:  # the broadcast is followed on one connection
                return
            elif kind in ("betting", "running", "crashed"):
                self.phase, self.round_id = kind, frame["round_id"]
                if kind == "crashed":
                    self.crashed[frame["round_id"]] = round(frame["crash_point"] * 100)
            elif kind == "tick":
                self.m = round(frame["m"] * 100)
            else:
                return
            self._changed.set()

        return on_frame

    async def connect(self) -> None:
        self.watcher = next(iter(self.tokens))
        for user_id, token in self.tokens.items():
            client = await open_client(
                "127.0.0.1",
                self.port,
                self.stats,
                on_frame=self._on_frame(user_id),
                measure=False,
                all_frames=user_id == self.watcher,
            )
            client.send({"type": "resume", "token": token})
            self.clients[user_id] = client
        await self.until(lambda: self.sessions == len(self.tokens), 60)

    async def until(self, done: Callable[[], bool], within: float) -> None:
        """Return once ``done()`` holds, checking on every frame that changes something."""
        deadline = time.monotonic() + within
        while not done():
            self._changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("the crowd waited in vain")
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                continue

    async def bet(self, target: Callable[[int], float | None]) -> int:
        """Everyone bets in the next betting window (``target(user)`` is the
        auto-cashout); returns the round."""
        await self.until(lambda: self.phase != "betting", 120)
        await self.until(lambda: self.phase == "betting", 120)
        round_id = self.round_id
        for user_id, client in self.clients.items():
            amount = 100 + user_id % 900
            client.send(
                {
                    "type": "bet",
                    "amount": amount,
                    "auto_cashout": target(user_id),
                    "ref": f"r{round_id}",
                }
            )
        return round_id

    def cancel(self, users: list[int], ref: str) -> None:
        """``users`` cancel their bet of the round now betting."""
        for user_id in users:
            self.clients[user_id].send({"type": "cancel_bet", "ref": ref})

    def close(self) -> None:
        for client in self.clients.values():
            if client.transport is not None:
                client.transport.abort()


async def money(data_dir: Path) -> dict[str, Any]:
    """Balances, bets and the ledger size, read with the servers of ``data_dir``."""
    storage = await open_storage(data_dir=data_dir)
    try:
        db = storage.db
        balances = {
            int(r["id"]): int(r["balance"]) for r in await db.fetch("SELECT id, balance FROM users")
        }
        bets = {
            (int(r["round_id"]), int(r["user_id"])): (
                int(r["bet_amount"]),
                str(r["status"]),
                int(r["winnings"]),
            )
            for r in await db.fetch(
                "SELECT round_id, user_id, bet_amount, status, winnings FROM bets"
            )
        }
        rounds = {
            int(r["id"]): str(r["status"]) for r in await db.fetch("SELECT id, status FROM rounds")
        }
        ledger = int((await db.fetch("SELECT count(*) AS n FROM ledger"))[0]["n"])
    finally:
        await storage.close()
    return {"balances": balances, "bets": bets, "rounds": rounds, "ledger": ledger}


def check_money(state: dict[str, Any], acks: Acks, voided: set[int]) -> None:
    """Every acknowledged action is in PostgreSQL and every balance adds up.

    In a voided round a bet is refunded or (its cashout written before the
    kill) cashed out, never lost; elsewhere only a cancelled bet is refunded.
    A refunded bet gives back its stake once: a second refund would show in
    the balance.
    """
    bets, balances = state["bets"], state["balances"]
    for key, amount in acks.bets.items():
        assert key in bets, f"an acknowledged bet is missing: {key}"
        assert bets[key][0] == amount
    for key, payout in acks.cashouts.items():
        assert bets[key][1] == "cashed_out" and bets[key][2] == payout, (key, bets[key], payout)
    for key, refund in acks.cancels.items():
        assert bets[key][1] == "refunded" and bets[key][0] == refund, (key, bets[key], refund)
    expected = dict.fromkeys(balances, START_BALANCE)
    for (round_id, user_id), (amount, status, winnings) in bets.items():
        if round_id in voided:
            assert status != "lost", (round_id, user_id, status)
        elif (round_id, user_id) not in acks.cancels:
            assert status != "refunded", (round_id, user_id, status)
        if status != "refunded":
            expected[user_id] += winnings - amount
    assert balances == expected


def clean_up(data_dir: Path) -> None:
    """After a test, failed or not: no ``serve`` and no embedded server of ``data_dir``
    is left running (a kill -9 leaves its servers behind on purpose)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "pillarpayout_ws" in cmdline and "serve" in cmdline and str(data_dir) in cmdline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGKILL)
    for pid_file, sig in (
        (data_dir / "redis" / "valkey.pid", signal.SIGTERM),
        (data_dir / "postgres" / "data" / "postmaster.pid", signal.SIGINT),
    ):
        with contextlib.suppress(OSError, ValueError, ProcessLookupError):
            os.kill(int(pid_file.read_text().split()[0]), sig)
