"""The growth curve and integrity (engine/growth.py)."""

from __future__ import annotations

import math
from decimal import Decimal, localcontext

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pillarpayout_ws.engine.growth import (
    _multiplier_exact,
    elapsed_for,
    integrity_at,
    multiplier_at,
)


def _reference(elapsed_ms: int) -> int:
    # An independent exact reference: 80 digits, the rate written as 0.00006.
    with localcontext() as ctx:
        ctx.prec = 80
        return int((Decimal("0.00006") * elapsed_ms).exp() * 100)


def test_starts_at_one() -> None:
    assert multiplier_at(0) == 100
    assert multiplier_at(1) == 100  # 100 * e^0.00006 = 100.006


@pytest.mark.parametrize(
    ("elapsed", "m"),
    [(11_552, 199), (11_553, 200), (38_376, 999), (38_377, 1000), (76_752, 9999), (76_753, 10000)],
)
def test_known_points(elapsed: int, m: int) -> None:
    assert multiplier_at(elapsed) == m


def test_matches_exact_reference_densely() -> None:
    for elapsed in range(0, 160_000, 13):
        assert multiplier_at(elapsed) == _reference(elapsed)


@pytest.mark.parametrize("elapsed", [232_168, 287_349, 400_000, 600_000, 650_000])
def test_far_out_values_use_exact_arithmetic(elapsed: int) -> None:
    # 232168 ms is the first time whose float value sits within noise of an
    # integer; past 2**40 hundredths the float has no fraction bits to trust.
    assert multiplier_at(elapsed) == _reference(elapsed) == _multiplier_exact(elapsed)


@given(st.integers(min_value=0, max_value=700_000))
def test_fast_path_agrees_with_exact(elapsed: int) -> None:
    assert multiplier_at(elapsed) == _multiplier_exact(elapsed)


def test_monotonic() -> None:
    previous = 100
    for elapsed in range(0, 120_000):
        m = multiplier_at(elapsed)
        assert m >= previous
        previous = m


def test_negative_time_refused() -> None:
    with pytest.raises(ValueError, match="elapsed_ms"):
        multiplier_at(-1)


def test_elapsed_for_is_the_exact_inverse() -> None:
    for m in range(100, 20_001):
        t = elapsed_for(m)
        assert multiplier_at(t) >= m
        assert t == 0 or multiplier_at(t - 1) < m


@given(st.integers(min_value=-5, max_value=10**17))
def test_elapsed_for_inverse_property(m: int) -> None:
    t = elapsed_for(m)
    assert t >= 0
    assert multiplier_at(t) >= m
    assert t == 0 or multiplier_at(t - 1) < m


def test_elapsed_for_at_and_below_one() -> None:
    assert elapsed_for(100) == 0
    assert elapsed_for(1) == 0
    assert elapsed_for(101) == math.ceil(math.log(1.01) / 0.00006)


def test_two_x_and_ten_x_times() -> None:
    assert elapsed_for(200) == 11_553
    assert elapsed_for(1000) == 38_377


@pytest.mark.parametrize(
    ("m", "integrity"),
    [(100, 10_000), (101, 9_900), (200, 5_000), (300, 3_333), (400, 2_500), (10_000, 100)],
)
def test_integrity_rule(m: int, integrity: int) -> None:
    assert integrity_at(m) == integrity


def test_integrity_falls_with_the_multiplier() -> None:
    values = [integrity_at(m) for m in range(100, 5000)]
    assert values == sorted(values, reverse=True)
    assert all(value >= 0 for value in values)


def test_integrity_refuses_below_one() -> None:
    with pytest.raises(ValueError, match="multiplier"):
        integrity_at(99)
