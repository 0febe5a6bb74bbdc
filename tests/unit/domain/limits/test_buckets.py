from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsflow.domain.limits.buckets import Bucket, SlidingWindow, level, retune, take, wait_for


def test_full_bucket_admits_its_burst_then_paces_at_its_rate() -> None:
    bucket = Bucket.full(rate=10.0, burst=5.0, now=0.0)
    for _ in range(5):
        assert wait_for(bucket, 1, 0.0) == 0.0
        bucket = take(bucket, 1, 0.0)
    assert wait_for(bucket, 1, 0.0) == pytest.approx(0.1)
    assert wait_for(bucket, 3, 0.0) == pytest.approx(0.3)
    assert level(bucket, 0.25) == pytest.approx(2.5)


def test_a_cost_above_the_burst_waits_for_a_full_bucket_and_leaves_debt() -> None:
    bucket = Bucket.full(rate=2.0, burst=3.0, now=0.0)
    assert wait_for(bucket, 5, 0.0) == 0.0  # never starved by its own size
    bucket = take(bucket, 5, 0.0)
    assert level(bucket, 0.0) == pytest.approx(-2.0)
    # The debt is paid back at the bucket's rate: the long-run rate stays exact.
    assert wait_for(bucket, 1, 0.0) == pytest.approx(1.5)


def test_retune_keeps_accrued_tokens_capped_by_the_new_burst() -> None:
    bucket = take(Bucket.full(rate=10.0, burst=10.0, now=0.0), 4, 0.0)
    faster = retune(bucket, rate=100.0, burst=20.0, now=0.0)
    assert level(faster, 0.0) == pytest.approx(6.0)
    smaller = retune(bucket, rate=1.0, burst=2.0, now=0.0)
    assert level(smaller, 0.0) == pytest.approx(2.0)


def test_zero_rate_never_refills() -> None:
    bucket = Bucket.empty(rate=0.0, burst=1.0, now=0.0)
    assert wait_for(bucket, 1, 5.0) == math.inf


def test_clock_stepping_back_does_not_refill() -> None:
    bucket = take(Bucket.full(rate=1.0, burst=1.0, now=10.0), 1, 10.0)
    assert level(bucket, 5.0) == 0.0


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 0.0), (-1.0, 1.0), (1.0, math.inf)])
def test_invalid_buckets_are_refused(rate: float, burst: float) -> None:
    with pytest.raises(ValueError):
        Bucket.full(rate, burst, 0.0)


@settings(max_examples=200, deadline=None)
@given(
    rate=st.floats(min_value=0.5, max_value=500.0),
    burst_s=st.floats(min_value=0.05, max_value=2.0),
    costs=st.lists(st.integers(min_value=1, max_value=10), min_size=1, max_size=300),
)
def test_greedy_use_never_exceeds_rate_times_window_plus_burst(
    rate: float, burst_s: float, costs: list[int]
) -> None:
    burst = rate * burst_s
    bucket = Bucket.full(rate, burst, 0.0)
    now = 0.0
    times: list[tuple[float, int]] = []
    for cost in costs:
        now += wait_for(bucket, cost, now)
        bucket = take(bucket, cost, now)
        times.append((now, cost))
    overshoot = max(0.0, max(costs) - burst)
    for i, (start, _) in enumerate(times):
        used = 0
        for end, cost in times[i:]:
            used += cost
            assert used <= burst + rate * (end - start) + overshoot + 1e-6


def test_window_admits_the_limit_per_key_and_says_when_the_next_fits() -> None:
    window = SlidingWindow(limit=3, window_s=60.0)
    for t in (0.0, 10.0, 20.0):
        assert window.ready_at("+441", 1, t) == t
        window.take("+441", 1, t)
    assert window.ready_at("+441", 1, 30.0) == 60.0
    assert window.ready_at("+441", 2, 30.0) == 70.0
    assert window.ready_at("+442", 1, 30.0) == 30.0  # other numbers are independent
    assert window.used("+441", 60.0) == 2  # the 0.0 entry expired exactly at 60.0
    assert window.wait_for("+441", 1, 60.0) == 0.0


def test_window_cost_above_the_limit_needs_an_empty_window() -> None:
    window = SlidingWindow(limit=2, window_s=10.0)
    window.take("n", 1, 0.0)
    assert window.ready_at("n", 5, 1.0) == 10.0
    window.take("n", 5, 10.0)
    assert window.ready_at("n", 1, 15.0) == 20.0


def test_idle_keys_are_evicted_and_active_ones_kept() -> None:
    window = SlidingWindow(limit=1, window_s=10.0)
    for i in range(1000):
        window.take(f"k{i}", 1, i / 10)
        # swept a few times per window: never more than the keys of the last 1.25 windows
        assert len(window) <= 1.25 * 10 * 10 + 1
    window.evict(99.9)
    assert len(window) == 100  # exactly the keys taken in (89.9, 99.9]
    assert window.evicted_active == 0


def test_max_keys_evicts_the_least_recently_used_and_counts_it() -> None:
    window = SlidingWindow(limit=1, window_s=1000.0, max_keys=3)
    for i in range(5):
        window.take(f"k{i}", 1, float(i))
    assert len(window) == 3
    assert window.evicted_active == 2
    assert window.used("k0", 5.0) == 0


def test_window_retune_keeps_the_log() -> None:
    window = SlidingWindow(limit=1, window_s=60.0)
    window.take("n", 1, 0.0)
    window.retune(limit=2)
    assert window.ready_at("n", 1, 1.0) == 1.0
    window.retune(limit=1, window_s=30.0)
    assert window.ready_at("n", 1, 1.0) == 30.0
