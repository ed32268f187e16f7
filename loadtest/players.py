"""Bettor clients: full players that register or log in, bet every round and check every ack.

A bettor is the ``on_frame`` of one ``GameClient`` that sees every frame. It
registers (or, when the name is taken from an earlier run, logs in), then in
every betting window bets once, a few moments in, with a varied amount (0.10 to
5.00, never more than it holds) and either an auto-cashout target or a target
it cashes out at by hand when a tick reaches it. Its accounts are funded by the
server's own path: the starting balance every new account is granted (an
operator tops old accounts up with ``pillarpayout grant``).

It checks each answer against what it sent: the ack's amount and balance, the
payout (``floor(amount * multiplier)``), an auto-cashout at exactly its target,
a balance that moves by exactly the stake or the payout, no cashout above the
round's crash point. Problems go to ``Tally.errors`` as ``check:<name>``; error
frames as their code. A manual cashout refused with ``round_crashed`` because
the crash overtook it on the wire is a normal game outcome, counted as
``late_cashouts``, not an error.
"""

from __future__ import annotations

import asyncio
import random
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson

from loadtest.checks import hundredths, payout_problem
from loadtest.client import GameClient

MIN_BET = 10  # cents: the server's minimum bet (0.10)
AUTO_TARGETS = (110, 125, 150, 200, 300, 500, 1000)
HAND_TARGETS = (115, 130, 160, 220)


# How long a bettor waits before it asks for a session again, after each answer.
RETRY_S = {"busy": (0.2, 1.0), "rate_limited": (2.0, 6.0)}


@dataclass
class Tally:
    """What every bettor of one process adds to."""

    errors: Counter[str] = field(default_factory=Counter)
    bet_ack_ms: array[float] = field(default_factory=lambda: array("d"))
    cashout_ack_ms: array[float] = field(default_factory=lambda: array("d"))
    bets: int = 0
    cashouts: int = 0
    late_cashouts: int = 0
    broke: int = 0
    sessions: int = 0
    busy_retries: int = 0  # register/login tried again after `busy`
    limited_retries: int = 0  # register/login tried again after `rate_limited`


class Bettor:
    def __init__(
        self, name: str, password: str, tally: Tally, rng: random.Random, betting_ms: int = 5000
    ) -> None:
        self.name, self.password = name, password
        self.tally, self.rng = tally, rng
        self.client: GameClient | None = None
        self.balance: int | None = None
        self.tried_login = False
        self.round_id = 0
        self.betting_ms = betting_ms
        self.paid: dict[int, int] = {}  # round -> multiplier this bettor was paid at
        # The bet of the current round: round, ref, amount, target, hand?
        self.bet: dict[str, Any] | None = None
        self.bet_sent = 0.0
        self.cashout_sent = 0.0

    def __call__(self, client: GameClient, payload: bytes) -> None:
        self.client = client
        frame = orjson.loads(payload)
        handler = getattr(self, "_on_" + str(frame.get("type")), None)
        if handler is not None:
            handler(frame)

    def _send(self, **frame: object) -> None:
        if self.client is not None:
            self.client.send(frame)

    def _problem(self, name: str) -> None:
        self.tally.errors["check:" + name] += 1

    # -- session ------------------------------------------------------------

    def _on_hello(self, frame: dict[str, Any]) -> None:
        self.round_id = int(frame.get("round_id") or 0)
        self._register()

    def _register(self) -> None:
        email = f"{self.name}@loadtest.invalid"
        self._send(type="register", username=self.name, email=email, password=self.password)

    def _log_in(self) -> None:
        self.tried_login = True
        self._send(type="login", username=self.name, password=self.password)

    def _on_session(self, frame: dict[str, Any]) -> None:
        self.balance = int(frame["user"]["balance"])
        self.tally.sessions += 1

    def _on_balance(self, frame: dict[str, Any]) -> None:
        self.balance = int(frame["balance"])

    def _on_error(self, frame: dict[str, Any]) -> None:
        code = str(frame.get("code"))
        if code == "username_taken" and self.balance is None:
            self._log_in()
            return
        if code in ("busy", "rate_limited") and self.balance is None:
            # The server's password hashing is full (``busy``: many bettors log
            # in at once), or it takes no more new accounts this minute
            # (``rate_limited``: 60 a minute from everyone): try again a little
            # later, as a client should.
            if code == "busy":
                self.tally.busy_retries += 1
            else:
                self.tally.limited_retries += 1
            retry = self._log_in if self.tried_login else self._register
            asyncio.get_running_loop().call_later(self.rng.uniform(*RETRY_S[code]), retry)
            return
        if code == "round_crashed" and self.bet is not None and self.bet.get("cashing"):
            self.tally.late_cashouts += 1
            self.bet = None
            return
        self.tally.errors[code] += 1
        if self.bet is not None and frame.get("ref") == self.bet["ref"]:
            self.bet = None  # that bet was refused

    # -- the round ----------------------------------------------------------

    def _on_betting(self, frame: dict[str, Any]) -> None:
        self.round_id = int(frame["round_id"])
        self.betting_ms = int(frame.get("betting_ms", self.betting_ms))
        self.bet = None
        # Bet a few moments in: spread over the first half of the window.
        delay = self.rng.uniform(0.0, min(self.betting_ms / 2, 1500.0)) / 1000
        asyncio.get_running_loop().call_later(delay, self._place, self.round_id)

    def _place(self, round_id: int) -> None:
        if self.balance is None or round_id != self.round_id:
            return
        if self.balance < MIN_BET:
            self.tally.broke += 1
            return
        amount = min(self.balance, self.rng.randint(MIN_BET, 500))
        by_hand = self.rng.random() < 0.3
        target = self.rng.choice(HAND_TARGETS if by_hand else AUTO_TARGETS)
        ref = f"{self.name}-{round_id}"
        self.bet = {"ref": ref, "round": round_id, "amount": amount, "target": target}
        self.bet.update(hand=by_hand, cashing=False, accepted=False)
        self.bet_sent = time.monotonic()
        auto = None if by_hand else target / 100
        self._send(type="bet", amount=amount, auto_cashout=auto, ref=ref)

    def _on_bet_accepted(self, frame: dict[str, Any]) -> None:
        bet = self.bet
        if bet is None or frame.get("ref") != bet["ref"] or bet["accepted"]:
            self._problem("unexpected_ack")
            return
        self.tally.bet_ack_ms.append((time.monotonic() - self.bet_sent) * 1000)
        self.tally.bets += 1
        bet["accepted"] = True
        if int(frame["amount"]) != bet["amount"] or int(frame["round_id"]) != bet["round"]:
            self._problem("ack_mismatch")
        if self.balance is not None and int(frame["balance"]) != self.balance - bet["amount"]:
            self._problem("balance_mismatch")
        self.balance = int(frame["balance"])

    def _on_tick(self, frame: dict[str, Any]) -> None:
        bet = self.bet
        if bet is None or not bet["accepted"] or not bet["hand"] or bet["cashing"]:
            return
        if hundredths(frame["m"]) >= bet["target"]:
            bet["cashing"] = True
            self.cashout_sent = time.monotonic()
            self._send(type="cashout", ref=bet["ref"] + "-c")

    def _on_cashed_out(self, frame: dict[str, Any]) -> None:
        bet = self.bet
        if bet is None or not bet["accepted"] or int(frame["round_id"]) != bet["round"]:
            self._problem("unexpected_cashout")
            return
        if frame.get("reason") == "manual":
            self.tally.cashout_ack_ms.append((time.monotonic() - self.cashout_sent) * 1000)
        self.tally.cashouts += 1
        auto = None if bet["hand"] else bet["target"]
        problem = payout_problem(frame, bet["amount"], auto, self.balance or 0)
        if problem:
            self._problem(problem)
        self.balance = int(frame["balance"])
        self.paid[bet["round"]] = hundredths(frame["multiplier"])
        self.bet = None

    def _on_crashed(self, frame: dict[str, Any]) -> None:
        round_id = int(frame["round_id"])
        if self.paid.pop(round_id, 0) > hundredths(frame["crash_point"]):
            self._problem("cashout_above_crash")
        self.paid.clear()
        if self.bet is not None and not self.bet["cashing"]:
            self.bet = None  # lost; a cashout on the wire still gets its answer
