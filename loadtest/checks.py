"""What the harness checks while it loads: the rounds are fair and the money adds up.

``RoundChecker`` watches the broadcast stream of one connection (every frame,
ticks included) and names every violation it finds:

- ``seed_mismatch``: a revealed seed whose sha256 is not the ``seed_hash``
  published when the round opened;
- ``crash_point_mismatch``: a crash point the formula does not give;
- ``chain_broken``: a round whose published hash is not the previous round's
  revealed seed (the seed chain runs backwards);
- ``tick_above_crash``: a tick whose multiplier passed the round's crash point;
- ``tick_off_curve``: a tick whose multiplier is not the growth curve's value
  at its ``elapsed_ms`` (ticks must depend on elapsed time only).

``payout_problem`` checks one ``cashed_out`` against the bet it settles.
The names are the ``errors_by_code`` keys the report uses, prefixed ``check:``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pillarpayout_ws.engine.fairness import crash_point, seed_hash
from pillarpayout_ws.engine.growth import multiplier_at


def hundredths(value: Any) -> int:
    """A wire multiplier (``2.35``) in integer hundredths (``235``)."""
    return round(float(value) * 100)


@dataclass
class RoundChecker:
    house_edge: float = 1.0
    problems: list[str] = field(default_factory=list)
    rounds: set[int] = field(default_factory=set)  # crashed rounds seen and checked
    _hashes: dict[int, str] = field(default_factory=dict)  # round -> published seed_hash
    _highest: dict[int, int] = field(default_factory=dict)  # round -> highest tick m
    _revealed: dict[int, str] = field(default_factory=dict)  # round -> server seed
    _point: dict[int, int] = field(default_factory=dict)  # round -> crash point

    def feed(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "tick":
            self._tick(frame)
        elif kind in ("betting", "hello") and isinstance(frame.get("seed_hash"), str):
            self._opened(int(frame["round_id"]), frame["seed_hash"])
        elif kind == "crashed":
            self._crashed(frame)

    def _opened(self, round_id: int, published: str) -> None:
        self._hashes.setdefault(round_id, published)
        previous = self._revealed.get(round_id - 1)
        if previous is not None and previous != published:
            self.problems.append("chain_broken")

    def _tick(self, frame: dict[str, Any]) -> None:
        round_id, m = int(frame["round_id"]), hundredths(frame["m"])
        if m != multiplier_at(int(frame["elapsed_ms"])):
            self.problems.append("tick_off_curve")
        if m > self._highest.get(round_id, 0):
            self._highest[round_id] = m

    def _crashed(self, frame: dict[str, Any]) -> None:
        round_id = int(frame["round_id"])
        seed, point = str(frame["server_seed"]), hundredths(frame["crash_point"])
        try:
            expected = crash_point(seed, str(frame["client_seed"]), self.house_edge)
            revealed_hash = seed_hash(seed)
        except ValueError:
            self.problems.append("seed_mismatch")
            return
        published = self._hashes.get(round_id)
        if published is not None and published != revealed_hash:
            self.problems.append("seed_mismatch")
        if expected != point:
            self.problems.append("crash_point_mismatch")
        if self._highest.get(round_id, 0) > point:
            self.problems.append("tick_above_crash")
        following = self._hashes.get(round_id + 1)
        if following is not None and following != seed:
            self.problems.append("chain_broken")
        self._revealed[round_id] = seed
        self._point[round_id] = point
        self.rounds.add(round_id)
        # Keep only recent rounds: a soak runs for hours.
        for table in (self._hashes, self._highest, self._revealed, self._point):
            for old in [r for r in table if r < round_id - 2]:
                del table[old]


def payout_problem(
    frame: dict[str, Any], amount: int, auto_cashout: int | None, balance_before: int
) -> str | None:
    """What is wrong with a ``cashed_out`` for a bet of ``amount`` cents, if anything."""
    m = hundredths(frame["multiplier"])
    payout = int(frame["payout"])
    if payout != amount * m // 100:
        return "payout_mismatch"
    if frame.get("reason") == "auto" and m != auto_cashout:
        return "auto_cashout_mismatch"
    if int(frame["balance"]) != balance_before + payout:
        return "balance_mismatch"
    return None
