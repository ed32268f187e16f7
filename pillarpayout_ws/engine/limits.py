"""Limits a player sets on themselves (responsible gambling), as pure values.

What a player may set (``set_limits``), each in cents, or none:

* **loss limits**, daily / weekly / monthly: the player's net loss in the
  period may not pass it;
* **wager limits**, daily / weekly / monthly: the sum of the stakes of the
  bets placed in the period may not pass it;
* a **cool-off** of 1 to 42 days (6 weeks) and a **self-exclusion** of 6
  months or more: no bet is accepted until they end. Neither can be ended
  early: asking again only ever moves the end later.

Periods are UTC calendar periods: the day from 00:00 UTC, the ISO week from
Monday 00:00 UTC, the calendar month from the 1st 00:00 UTC. A bet belongs to
the period in which the game accepted it (``placed_ms``; ``bets.placed_at``
in PostgreSQL), and so does its payout, even one paid after midnight.

How a period's totals are counted (``Activity``):

* wagered = the sum of the stakes of the bets placed in the period;
* loss = stakes minus payouts of those bets. An open bet's stake counts in
  full (the potential loss) until it is paid; a lost bet's stake stays; a
  cash-out subtracts its payout. So winnings earlier in the period give room
  (the loss can be negative). A refunded bet (a voided round, or a bet its
  player cancelled during betting) counts nothing.

A bet of ``stake`` is refused (``limit_reached``) when ``wagered + stake`` or
``loss + stake`` would pass a limit in force for one of the three periods.

Changing a limit: lowering it, or setting one where there was none, takes
effect at once (and cancels a pending loosening). Raising or removing it
(loosening) takes effect 24 hours later, exactly (``LOOSEN_DELAY_MS``): until
then it is shown as pending with the instant it becomes effective; asking
again restarts the 24 hours. Asking for the value in force clears a pending
change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Final, Literal

from pillarpayout_ws.engine.errors import RejectCode, Rejection

__all__ = [
    "COOL_OFF_DAYS",
    "DAY_MS",
    "LIMIT_NAMES",
    "LOOSEN_DELAY_MS",
    "MIN_EXCLUSION_MONTHS",
    "Activity",
    "Limit",
    "Limits",
    "check_bet",
    "check_blocked",
    "day_of",
    "format_instant",
    "period_bounds",
]

DAY_MS: Final = 86_400_000
LOOSEN_DELAY_MS: Final = DAY_MS
COOL_OFF_DAYS: Final = (1, 42)
MIN_EXCLUSION_MONTHS: Final = 6
MAX_EXCLUSION_MONTHS: Final = 1200

Period = Literal["daily", "weekly", "monthly"]
PERIODS: Final[tuple[Period, ...]] = ("daily", "weekly", "monthly")
LIMIT_NAMES: Final = tuple(f"{p}_{k}" for k in ("loss", "wager") for p in PERIODS)
"""``daily_loss``, ``weekly_loss``, ``monthly_loss``, ``daily_wager``, ..."""

_PERIOD: Final[Mapping[str, Period]] = {p: p for p in PERIODS}


# Calendar arithmetic on day numbers (days since 1970-01-01, proleptic
# Gregorian, UTC): Howard Hinnant's civil-date algorithms. The engine imports
# no clock and no datetime: these are pure integer functions.


def _civil(day: int) -> tuple[int, int, int]:
    """(year, month, day of month) of a day number."""
    z = day + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (1 if m <= 2 else 0), m, d


def _day_number(year: int, month: int, day: int) -> int:
    """The day number of a calendar date (the inverse of ``_civil``)."""
    y = year - (1 if month <= 2 else 0)
    era = y // 400
    yoe = y - era * 400
    mp = month - 3 if month > 2 else month + 9
    doy = (153 * mp + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146_097 + doe - 719_468


def _next_month(year: int, month: int) -> tuple[int, int]:
    return (year + 1, 1) if month == 12 else (year, month + 1)


def day_of(ms: int) -> int:
    """The UTC day number (days since 1970-01-01) of a Unix-ms instant."""
    return ms // DAY_MS


def period_bounds(period: Period, day: int) -> tuple[int, int]:
    """The first day of ``period`` containing ``day``, and the first day of the next."""
    if period == "daily":
        return day, day + 1
    if period == "weekly":
        start = day - (day + 3) % 7  # 1970-01-01 was a Thursday; weeks start on Monday
        return start, start + 7
    year, month, _ = _civil(day)
    return _day_number(year, month, 1), _day_number(*_next_month(year, month), 1)


def add_months(ms: int, months: int) -> int:
    """``ms`` plus whole calendar months (the 31st becomes the month's last day)."""
    day, rest = divmod(ms, DAY_MS)
    year, month, d = _civil(day)
    index = month - 1 + months
    year, month = year + index // 12, index % 12 + 1
    last = _day_number(*_next_month(year, month), 1) - _day_number(year, month, 1)
    return _day_number(year, month, min(d, last)) * DAY_MS + rest


def format_instant(ms: int) -> str:
    """``2026-12-01 00:00 UTC``: how errors name an instant."""
    day, rest = divmod(ms, DAY_MS)
    year, month, d = _civil(day)
    minutes = rest // 60_000
    return f"{year:04d}-{month:02d}-{d:02d} {minutes // 60:02d}:{minutes % 60:02d} UTC"


def format_cents(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


@dataclass(frozen=True, slots=True)
class Limit:
    """One limit: the value in force (``None``: no limit), and a pending loosening.

    ``effective_at_ms`` is not ``None`` while a change waits: then ``pending``
    becomes the value in force at that instant (``None``: the limit goes).
    """

    current: int | None = None
    pending: int | None = None
    effective_at_ms: int | None = None

    def at(self, now_ms: int) -> Limit:
        """This limit as it stands at ``now_ms`` (a pending change due by then applied)."""
        if self.effective_at_ms is not None and self.effective_at_ms <= now_ms:
            return Limit(self.pending)
        return self

    def change(self, value: int | None, now_ms: int) -> Limit:
        """Ask for ``value`` at ``now_ms``: tighter at once, looser in 24 hours."""
        now = self.at(now_ms)
        current = now.current
        if value == current:
            return Limit(current)
        tighter = value is not None and (current is None or value < current)
        if tighter:
            return Limit(value)
        return Limit(current, value, now_ms + LOOSEN_DELAY_MS)


@dataclass(frozen=True, slots=True)
class Limits:
    """Everything a player has set on themselves (the default: nothing)."""

    values: Mapping[str, Limit] = field(default_factory=dict)
    cool_off_until_ms: int | None = None
    excluded_until_ms: int | None = None

    def limit(self, name: str) -> Limit:
        return self.values.get(name, Limit())

    def at(self, now_ms: int) -> Limits:
        """As they stand at ``now_ms``: due changes applied, ended blocks gone."""
        values = {name: self.limit(name).at(now_ms) for name in LIMIT_NAMES}
        cool = self.cool_off_until_ms
        excluded = self.excluded_until_ms
        return Limits(
            {n: v for n, v in values.items() if v != Limit()},
            cool if cool is not None and cool > now_ms else None,
            excluded if excluded is not None and excluded > now_ms else None,
        )

    def request(
        self,
        now_ms: int,
        changes: Mapping[str, int | None],
        *,
        cool_off_days: int | None = None,
        exclusion_months: int | None = None,
    ) -> Limits:
        """The limits after the player asks, at ``now_ms``, for ``changes`` (a name
        to cents or ``None`` for none), a cool-off and/or a self-exclusion.

        ``ValueError`` for an unknown name, a non-positive amount or a length
        out of range (the protocol's decoder checks these first).
        """
        limits = self.at(now_ms)
        values = dict(limits.values)
        for name, value in changes.items():
            if name not in LIMIT_NAMES:
                raise ValueError(f"no limit named {name!r}")
            if value is not None and (type(value) is not int or value <= 0):
                raise ValueError(f"{name} must be a positive number of cents or null")
            changed = limits.limit(name).change(value, now_ms)
            if changed == Limit():
                values.pop(name, None)
            else:
                values[name] = changed
        cool = limits.cool_off_until_ms
        if cool_off_days is not None:
            low, high = COOL_OFF_DAYS
            if type(cool_off_days) is not int or not low <= cool_off_days <= high:
                raise ValueError(f"a cool-off lasts {low} to {high} days")
            cool = max(cool or 0, now_ms + cool_off_days * DAY_MS)
        excluded = limits.excluded_until_ms
        if exclusion_months is not None:
            if (
                type(exclusion_months) is not int
                or not MIN_EXCLUSION_MONTHS <= exclusion_months <= MAX_EXCLUSION_MONTHS
            ):
                raise ValueError(
                    f"a self-exclusion lasts {MIN_EXCLUSION_MONTHS} to "
                    f"{MAX_EXCLUSION_MONTHS} months"
                )
            excluded = max(excluded or 0, add_months(now_ms, exclusion_months))
        return replace(limits, values=values, cool_off_until_ms=cool, excluded_until_ms=excluded)


class Activity:
    """A player's stakes and net loss per UTC day, for the periods in force.

    Built at login from PostgreSQL's flushed bets (``days``: day number ->
    (wagered, loss)) and kept current by the engine as it accepts bets and
    pays them; days before the earliest period that can still matter are
    dropped.
    """

    __slots__ = ("_days",)

    KEEP_DAYS: Final = 40  # a month and the week that began in the month before

    def __init__(self, days: Mapping[int, tuple[int, int]] | None = None) -> None:
        self._days: dict[int, list[int]] = {d: [w, loss] for d, (w, loss) in (days or {}).items()}

    def staked(self, day: int, stake: int) -> None:
        entry = self._days.setdefault(day, [0, 0])
        entry[0] += stake
        entry[1] += stake
        if len(self._days) > self.KEEP_DAYS + 8:
            for old in [d for d in self._days if d < day - self.KEEP_DAYS]:
                del self._days[old]

    def refunded(self, day: int, stake: int) -> None:
        """A voided round or a cancel gave the stake back: it counts nothing."""
        entry = self._days.setdefault(day, [0, 0])
        entry[0] -= stake
        entry[1] -= stake

    def paid(self, day: int, payout: int) -> None:
        self._days.setdefault(day, [0, 0])[1] -= payout

    def totals(self, period: Period, day: int) -> tuple[int, int]:
        """(wagered, loss) of the ``period`` containing ``day``."""
        start, end = period_bounds(period, day)
        wagered = loss = 0
        for d, (w, lo) in self._days.items():
            if start <= d < end:
                wagered += w
                loss += lo
        return wagered, loss


def check_blocked(limits: Limits, now_ms: int) -> None:
    """``Rejection`` (``self_excluded``, then ``cooling_off``, with the end) if
    no bet may be placed at ``now_ms``."""
    limits = limits.at(now_ms)
    if limits.excluded_until_ms is not None:
        raise Rejection(
            RejectCode.SELF_EXCLUDED,
            f"you excluded yourself until {format_instant(limits.excluded_until_ms)}",
        )
    if limits.cool_off_until_ms is not None:
        raise Rejection(
            RejectCode.COOLING_OFF,
            f"you are cooling off until {format_instant(limits.cool_off_until_ms)}",
        )


def check_bet(limits: Limits, activity: Activity, now_ms: int, stake: int) -> None:
    """``Rejection(limit_reached)`` if a bet of ``stake`` at ``now_ms`` would pass
    a limit in force (checked in ``LIMIT_NAMES`` order), naming the limit and
    the instant its period resets."""
    limits = limits.at(now_ms)
    day = day_of(now_ms)
    for name in LIMIT_NAMES:
        value = limits.limit(name).current
        if value is None:
            continue
        period_name, kind = name.split("_")
        period = _PERIOD[period_name]
        wagered, loss = activity.totals(period, day)
        total = loss if kind == "loss" else wagered
        if total + stake > value:
            resets = period_bounds(period, day)[1] * DAY_MS
            raise Rejection(
                RejectCode.LIMIT_REACHED,
                f"{period_name} {kind} limit {format_cents(value)} reached; "
                f"resets {format_instant(resets)}",
            )
