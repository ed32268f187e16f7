"""Engine benchmarks: one ``advance()`` step under load, and crash points per second.

Run with ``python -m bench.bench_engine``. Targets (issue 3):

* one engine step with 10,000 open bets and 1,000 distinct auto-cashout
  targets: median <= 1 ms;
* ``crash_point``: >= 100,000 per second.

The step benchmark plays whole rounds the way the server does: 10,000 players
bet during the betting phase (10 on each auto-cashout target from 1.01x to
11.00x), then ``advance`` is called every ``tick_ms`` until the crash (the
seed is chosen so the round reaches 12x and every target fires). Each call's
time is measured with ``time.perf_counter``; the median and the tail are
reported, together with the cost of the steps before the first target (all
10,000 bets open, nothing due), of one jump that settles every bet at once,
of ``place_bet`` and of ``snapshot``.
"""

from __future__ import annotations

import hashlib
import statistics
import time

from pillarpayout_ws.engine.fairness import RoundSeed, SeedChain, crash_point
from pillarpayout_ws.engine.game import Game, GameConfig
from pillarpayout_ws.engine.phases import Phase

BETS = 10_000
TARGETS = 1_000
CLIENT_SEED = "bench-salt"
MIN_CRASH = 1_200  # hundredths: past the highest target (11.00x)
ROUNDS = 3
CRASH_POINTS = 100_000


class _OneSeed:
    """A SeedSource that replays one seed: every round has the same crash point."""

    def __init__(self, seed: str) -> None:
        self._seed = seed
        self._nonce = 0

    def next_round_seed(self) -> RoundSeed:
        self._nonce += 1
        return RoundSeed(1, self._nonce, self._seed, CLIENT_SEED)


def _seed_reaching(minimum: int) -> str:
    for i in range(10_000_000):
        seed = hashlib.sha256(f"bench-{i}".encode()).hexdigest()
        if crash_point(seed, CLIENT_SEED) >= minimum:
            return seed
    raise RuntimeError("no seed found")


def _loaded_game(config: GameConfig, seed: str) -> tuple[Game, float]:
    """A game in its betting phase with BETS bets placed; returns the mean place_bet time."""
    game = Game(config, _OneSeed(seed), next_round_id=1)
    for user in range(BETS):
        game.load_account(user, f"player{user}", 0)
        game.grant(user, 1_000_000, f"bench-{user}")
    game.start(0)
    game.events_to_send()
    game.records_to_persist()
    began = time.perf_counter()
    for user in range(BETS):
        target = 101 + user % TARGETS  # 1.01x .. 11.00x, 10 bets each
        game.place_bet(1, user, 100 + user % 900, target, f"r{user}")
    per_bet = (time.perf_counter() - began) / BETS
    game.events_to_send()
    game.records_to_persist()
    return game, per_bet


def bench_advance() -> dict[str, float]:
    """Time every ``advance`` of whole rounds with 10,000 bets; milliseconds."""
    # A bankroll large enough that the max-profit cap stays out of the way
    # (its bookkeeping still runs every step).
    config = GameConfig(house_bankroll=10**15)
    seed = _seed_reaching(MIN_CRASH)
    steps: list[float] = []
    quiet: list[float] = []
    place_bet_us: list[float] = []
    snapshot_ms: list[float] = []
    cashouts = 0
    for _ in range(ROUNDS):
        game, per_bet = _loaded_game(config, seed)
        place_bet_us.append(per_bet * 1e6)
        began = time.perf_counter()
        game.snapshot()
        snapshot_ms.append((time.perf_counter() - began) * 1e3)
        now = config.betting_ms
        while game.phase is not Phase.CRASHED:
            began = time.perf_counter()
            game.advance(now)
            took = (time.perf_counter() - began) * 1e3
            events = game.events_to_send()
            game.records_to_persist()
            fired = sum(1 for e in events if type(e).__name__ == "CashoutDone")
            cashouts += fired
            steps.append(took)
            if fired == 0 and now > config.betting_ms:
                quiet.append(took)
            now += config.tick_ms
    # One call that jumps over every target and the crash at once.
    game, _ = _loaded_game(config, seed)
    began = time.perf_counter()
    game.advance(config.betting_ms + 10**6)
    jump_ms = (time.perf_counter() - began) * 1e3
    steps.sort()
    return {
        "advance_median_ms": statistics.median(steps),
        "advance_p99_ms": steps[int(len(steps) * 0.99)],
        "advance_max_ms": steps[-1],
        "advance_quiet_median_ms": statistics.median(quiet) if quiet else 0.0,
        "advance_steps": float(len(steps)),
        "cashouts_per_round": cashouts / ROUNDS,
        "jump_settle_all_ms": jump_ms,
        "place_bet_us": statistics.median(place_bet_us),
        "snapshot_10k_bets_ms": statistics.median(snapshot_ms),
    }


def bench_crash_points() -> dict[str, float]:
    """``crash_point`` calls per second over the seeds of a real chain."""
    began = time.perf_counter()
    chain = SeedChain.from_top(hashlib.sha256(b"bench").hexdigest(), CRASH_POINTS)
    chain_s = time.perf_counter() - began
    seeds = list(chain)
    best = float("inf")
    for _ in range(3):
        began = time.perf_counter()
        for seed in seeds:
            crash_point(seed, CLIENT_SEED)
        best = min(best, time.perf_counter() - began)
    return {"crash_points_per_s": CRASH_POINTS / best, "chain_100k_s": chain_s}


def main() -> dict[str, float]:
    """Run both benchmarks, print one line per number, and return them."""
    results = {**bench_advance(), **bench_crash_points()}
    for name, value in results.items():
        print(f"{name:28s} {value:14.4f}")
    return results


if __name__ == "__main__":
    main()
