"""The one backoff of syncd: growth, cap, jitter within bounds, any attempt number."""

from __future__ import annotations

import random
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.backoff import backoff

pytestmark = pytest.mark.unit


def test_the_ceiling_doubles_from_base_up_to_cap() -> None:
    ceilings = [backoff(n, 1.0, 30.0, jitter=False) for n in range(1, 9)]
    assert ceilings == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert backoff(0, 1.0, 30.0, jitter=False) == 1.0  # "no failure yet" waits like the first
    assert backoff(1, 50.0, 30.0, jitter=False) == 30.0  # a base beyond the cap is capped


def test_equal_jitter_draws_between_half_the_ceiling_and_the_ceiling() -> None:
    lows = [backoff(n, 0.5, 5.0, rng=lambda: 0.0) for n in range(1, 7)]
    highs = [backoff(n, 0.5, 5.0, rng=lambda: 1.0) for n in range(1, 7)]
    assert lows == [0.25, 0.5, 1.0, 2.0, 2.5, 2.5]
    assert highs == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


def test_jitter_spreads_callers_that_failed_together() -> None:
    rng = random.Random(15)
    waits = [backoff(4, 1.0, 600.0, rng=rng.random) for _ in range(1000)]
    assert all(4.0 <= w <= 8.0 for w in waits)
    assert len(set(waits)) == len(waits)  # no two callers come back at the same moment
    assert min(waits) < 4.2 and max(waits) > 7.8  # the whole half of the ceiling is used
    assert statistics.mean(waits) == pytest.approx(6.0, abs=0.2)


def test_a_given_rng_makes_the_waits_reproducible() -> None:
    first = [backoff(n, 1.0, 60.0, rng=random.Random(7).random) for n in range(1, 10)]
    again = [backoff(n, 1.0, 60.0, rng=random.Random(7).random) for n in range(1, 10)]
    assert first == again


@pytest.mark.parametrize("attempt", [1023, 1024, 1025, 10**6, 10**30])
def test_huge_attempts_give_the_cap_without_overflow(attempt: int) -> None:
    assert backoff(attempt, 1.0, 300.0, jitter=False) == 300.0
    assert 150.0 <= backoff(attempt, 1e-300, 300.0) <= 300.0


@given(
    attempt=st.integers(min_value=-5, max_value=10**6),
    base=st.floats(min_value=1e-6, max_value=1e6),
    cap=st.floats(min_value=1e-6, max_value=1e6),
    r=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
)
def test_bounds(attempt: int, base: float, cap: float, r: float) -> None:
    ceiling = backoff(attempt, base, cap, jitter=False)
    wait = backoff(attempt, base, cap, rng=lambda: r)
    assert min(base, cap) <= ceiling <= cap
    assert ceiling / 2 <= wait <= ceiling
    assert backoff(attempt + 1, base, cap, jitter=False) >= ceiling  # never shrinks
