"""The pillar's growth curve and its integrity: functions of elapsed time only.

Multipliers are integer hundredths (``235`` = 2.35x); times are integer
milliseconds since the round started running.

Growth
    ``multiplier_at(t) = floor(100 * e^(0.00006 * t))``: 2.00x at 11,553 ms,
    10.00x at 38,377 ms. The floor is taken of the *exact* real value, not of
    whatever ``math.exp`` rounded to: the float result is used only when it is
    provably far enough from an integer for the float error not to matter, and
    the rare value that sits on a boundary is recomputed with 60-digit decimal
    arithmetic. So ``multiplier_at`` is monotonic and ``elapsed_for`` is its
    exact inverse, which is what makes "the pillar collapses at the first
    instant ``m(t) >= crash_point``" well defined.

Integrity
    ``integrity_at(m) = floor(1_000_000 / m)`` in hundredths of a percent
    (basis points): 1.00x -> 10000 (100.00 %), 2.00x -> 5000 (50.00 %),
    4.00x -> 2500, 100.00x -> 100 (1.00 %). It depends on the multiplier only,
    and the multiplier depends on elapsed time only, so neither can hint at the
    crash point: the same elapsed time shows the same pillar in every round.
"""

from __future__ import annotations

import math
from decimal import Decimal, localcontext
from typing import Final

# m(t) = e^(RATE * t) with RATE = 0.00006 per ms = 3 / 50_000, kept as a
# fraction so the decimal path gets an exact exponent.
GROWTH_RATE: Final = 0.00006
_RATE_NUM: Final = 3
_RATE_DEN: Final = 50_000

# Bound on the relative error of ``100 * math.exp(GROWTH_RATE * t)`` against
# the exact value: the exponent carries <= 2 ulp relative error (the constant
# and the product), which exp turns into ``exponent * 2**-52`` relative error,
# plus <= 1 ulp from exp and 1 from the multiplication. For exponents below
# _FAST_MAX_EXPONENT this stays under 2e-14; 1e-13 leaves a wide margin.
_REL_ERROR: Final = 1e-13
_FAST_MAX_EXPONENT: Final = 60.0
# Above this the float has too few fractional bits for the guard to mean
# anything; such multipliers (1e13x) are decided by the decimal path.
_FAST_MAX_VALUE: Final = 2.0**40

ONE_X: Final = 100
"""1.00x in hundredths: the multiplier at elapsed 0."""

FULL_INTEGRITY: Final = 10_000
"""Integrity at 1.00x: 100.00 % in hundredths of a percent."""


def _multiplier_exact(elapsed_ms: int) -> int:
    """floor(100 * e^(3 * t / 50000)) with 60 significant digits.

    ``3t / 50000`` has a finite decimal expansion, so the exponent is exact and
    ``Decimal.exp`` is correctly rounded; the floor is exact unless the true
    value lies within 1e-40 of an integer, which e^q (q rational, q != 0,
    transcendental by Lindemann) does not do at any elapsed time a round
    reaches.
    """
    with localcontext() as ctx:
        ctx.prec = 60
        exponent = Decimal(_RATE_NUM * elapsed_ms) / Decimal(_RATE_DEN)
        return int(exponent.exp() * ONE_X)


def multiplier_at(elapsed_ms: int) -> int:
    """The multiplier in hundredths after ``elapsed_ms`` of running.

    Promises: ``floor(100 * e^(0.00006 * elapsed_ms))`` of the exact real value;
    ``multiplier_at(0) == 100``; non-decreasing in ``elapsed_ms``. Negative
    times raise ``ValueError``.
    """
    if elapsed_ms <= 0:
        if elapsed_ms < 0:
            raise ValueError(f"elapsed_ms must be >= 0, got {elapsed_ms}")
        return ONE_X
    exponent = GROWTH_RATE * elapsed_ms
    if exponent < _FAST_MAX_EXPONENT:
        value = ONE_X * math.exp(exponent)
        if value < _FAST_MAX_VALUE:
            whole = int(value)
            fraction = value - whole
            margin = value * _REL_ERROR
            # Far from both neighbouring integers: the float floor is the
            # exact floor. Only ~1 call in 10^9 falls through.
            if margin < fraction < 1.0 - margin:
                return whole
    return _multiplier_exact(elapsed_ms)


def elapsed_for(multiplier: int) -> int:
    """The first millisecond at which the pillar reaches ``multiplier``.

    Promises: the smallest ``t >= 0`` with ``multiplier_at(t) >= multiplier``
    (0 for anything at or below 1.00x). This is the instant a crash point
    collapses the pillar and the instant an auto-cashout target is reached.
    """
    if multiplier <= ONE_X:
        return 0
    # The float guess lands within a millisecond or two; the neighbour checks
    # make the answer exact against multiplier_at itself.
    guess = max(0, math.ceil(math.log(multiplier / ONE_X) / GROWTH_RATE))
    while guess > 0 and multiplier_at(guess - 1) >= multiplier:
        guess -= 1
    while multiplier_at(guess) < multiplier:
        guess += 1
    return guess


def integrity_at(multiplier: int) -> int:
    """The pillar's integrity in hundredths of a percent at ``multiplier``.

    Promises: ``floor(1_000_000 / multiplier)``, so 10000 (100.00 %) at 1.00x,
    falling as the pillar grows; a function of the multiplier alone. A
    multiplier below 1.00x raises ``ValueError``.
    """
    if multiplier < ONE_X:
        raise ValueError(f"multiplier must be >= {ONE_X}, got {multiplier}")
    return (FULL_INTEGRITY * ONE_X) // multiplier
