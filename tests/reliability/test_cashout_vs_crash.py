"""Issue 7, item 6: cashouts within 5 ms either side of the crash, over 10,000 rounds.

Pure engine with injected time (engine/game.py), so 10,000 rounds take about
a second. Every round plays a real seed chain; three players send manual
cashouts stamped ``crash instant + d`` for ``d`` in ``[-5, 5]`` ms, in three
ways of driving the engine, and a fourth holds an auto-cashout one hundredth
either side of the crash point. The rule: a cashout is paid at the
multiplier of its time if that time is before the crash instant, and refused
(``round_crashed``) if it is at or after it; nothing ever pays above the
crash point, and every round's write-ahead settles cleanly.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter

from pillarpayout_ws.engine.events import (
    BetAccepted,
    BettingOpened,
    CashoutDone,
    CommandRejected,
    Crashed,
    Event,
    Tick,
)
from pillarpayout_ws.engine.fairness import ChainSeedSource, SeedChain, crash_point
from pillarpayout_ws.engine.game import Game, GameConfig
from pillarpayout_ws.engine.growth import elapsed_for, multiplier_at
from pillarpayout_ws.engine.records import CashedOut, Granted, RoundCrashed, RoundRecord
from pillarpayout_ws.storage.settle import settle_round

ROUNDS = 10_000
CLIENT_SEED = "cashout-vs-crash"
MANUAL = (1, 2, 3)
AUTO = 4
WINDOW = 5  # ms either side of the crash instant


def test_cashouts_around_the_crash_instant_over_10000_rounds() -> None:
    rng = random.Random(20260706)
    chain = SeedChain.from_top(hashlib.sha256(b"cashout-vs-crash").hexdigest(), ROUNDS + 1)
    # No profit cap: forced cashouts are another test's business.
    config = GameConfig(betting_ms=1000, cooldown_ms=500, house_bankroll=10**15)
    game = Game(
        config, ChainSeedSource(chain, chain_id=1, client_seed=CLIENT_SEED), next_round_id=1
    )
    for user in (*MANUAL, AUTO):
        game.load_account(user, f"user{user}", 10**12)
    game.start(0)
    outcomes: Counter[str] = Counter()
    running_at = 0  # when the latest round opened starts running
    wal: dict[int, list[RoundRecord]] = {}  # the write-ahead, by round

    def drain() -> list[Event]:
        nonlocal running_at
        new = game.events_to_send()
        for event in new:
            if isinstance(event, BettingOpened):
                assert game.now_ms is not None
                running_at = game.now_ms + event.betting_ms
        for record in game.records_to_persist():
            assert not isinstance(record, Granted)
            wal.setdefault(record.round_id, []).append(record)
        return new

    drain()
    for nonce in range(1, ROUNDS + 1):
        assert game.round_id == nonce
        assert game.now_ms is not None
        crash = crash_point(chain.seed_for(nonce), CLIENT_SEED)
        crash_at = running_at + elapsed_for(crash)
        stakes = {user: rng.randint(10, 10_000) for user in (*MANUAL, AUTO)}
        for user in MANUAL:
            game.place_bet(game.now_ms, user, stakes[user], None, None)
        target = min(max(101, crash + rng.choice((-1, 0, 1))), config.max_auto_cashout)
        game.place_bet(game.now_ms, AUTO, stakes[AUTO], target, None)
        accepted = [e for e in drain() if isinstance(e, BetAccepted)]
        assert [(e.user_id, e.auto_cashout) for e in accepted] == [
            *((user, None) for user in MANUAL),
            (AUTO, target),
        ]

        stamps = {user: crash_at + rng.randint(-WINDOW, WINDOW) for user in MANUAL}
        mode = rng.choice(("approach", "jump", "one_turn"))
        order = list(MANUAL)
        if mode == "approach":  # the loop ran just before; cashouts arrive in time order
            game.advance(min(stamps.values()) - 1)
            order.sort(key=stamps.__getitem__)
        elif mode == "one_turn":  # the server applies one turn's commands at one time
            now = max(stamps.values())
            stamps = dict.fromkeys(MANUAL, now)
        # In "jump" the engine is not driven between betting and the cashouts,
        # which come in any order: time never runs backwards, so a cashout
        # stamped before one already seen counts at the later time.
        effective = game.now_ms
        round_events: list[Event] = []
        for user in order:
            effective = max(effective, stamps[user])
            game.cash_out(stamps[user], user, f"c{nonce}-{user}")
            new = drain()
            round_events += new
            (answer,) = [
                e
                for e in new
                if isinstance(e, CashoutDone | CommandRejected) and e.ref == f"c{nonce}-{user}"
            ]
            if running_at <= effective < crash_at:
                m = multiplier_at(effective - running_at)
                assert isinstance(answer, CashoutDone), (nonce, crash, effective - crash_at)
                assert (answer.multiplier, answer.reason) == (m, "manual")
                assert answer.multiplier < crash
                assert answer.payout == stakes[user] * m // 100
                outcomes["paid"] += 1
            else:
                assert isinstance(answer, CommandRejected), (nonce, crash, effective - crash_at)
                expected = "round_crashed" if effective >= crash_at else "round_not_running"
                assert answer.code == expected
                outcomes[expected] += 1

        # Past the crash for sure, then the next round: the auto-cashout decided.
        game.advance(crash_at + config.cooldown_ms)
        round_events += drain()
        autos = [e for e in round_events if isinstance(e, CashoutDone) and e.user_id == AUTO]
        if target <= crash:
            assert [(e.multiplier, e.payout) for e in autos] == [
                (target, stakes[AUTO] * target // 100)
            ]
            outcomes["auto paid"] += 1
        else:
            assert autos == []
            outcomes["auto lost"] += 1
        (crashed,) = [e for e in round_events if isinstance(e, Crashed)]
        assert crashed.crash_point == crash
        assert all(e.m < crash for e in round_events if isinstance(e, Tick))

        # A late cashout gets the bet's real answer again, and pays nothing more.
        late = rng.choice((*MANUAL, AUTO))
        paid = [e for e in round_events if isinstance(e, CashoutDone) and e.user_id == late]
        balance = game.balance_of(late)
        game.cash_out(game.now_ms, late, "late")
        (again,) = [e for e in drain() if getattr(e, "ref", None) == "late"]
        if paid:
            assert isinstance(again, CashoutDone)
            assert (again.multiplier, again.payout) == (paid[0].multiplier, paid[0].payout)
        else:
            assert isinstance(again, CommandRejected) and again.code == "round_crashed"
        assert game.balance_of(late) == balance

        # The write-ahead of the round settles as it happened (settle_round
        # refuses a payout above the crash point), with nothing after the crash.
        records = wal.pop(nonce)
        assert isinstance(records[-1], RoundCrashed)
        assert sum(isinstance(r, CashedOut) for r in records) == sum(
            isinstance(e, CashoutDone) and e.ref != "late" for e in round_events
        )
        settled = settle_round(records)
        assert settled.crash_point == crash
        for bet in settled.bets:
            assert bet.multiplier is None or bet.multiplier <= crash
            assert bet.payout <= bet.amount * crash // 100

    # Both sides of the instant were really exercised.
    assert outcomes["paid"] > 5_000 and outcomes["round_crashed"] > 5_000, outcomes
    assert outcomes["auto paid"] > 3_000 and outcomes["auto lost"] > 1_000, outcomes
