from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsflow.domain.tracking import StateFormatError, TimerWheel

T0 = 1_700_000_000_000
SEC = 1_000
DAY = 86_400 * SEC


def drain(wheel: TimerWheel, now_ms: int, limit: int = 1_000) -> list[str]:
    out: list[str] = []
    for _ in range(100_000):
        got = wheel.pop_due(now_ms, limit)
        out += got
        if not got and not wheel.behind(now_ms):
            return out
    raise AssertionError("pop_due made no progress")


def test_fires_at_due_time_never_before() -> None:
    wheel = TimerWheel(tick_ms=SEC, slots=64, now_ms=T0)
    wheel.schedule("a", T0 + 2_500)
    assert wheel.pop_due(T0 + 2_499) == []
    assert "a" in wheel and wheel.due_ms("a") == T0 + 2_500
    assert wheel.pop_due(T0 + 2_500) == ["a"]
    assert "a" not in wheel and len(wheel) == 0
    assert wheel.pop_due(T0 + 10 * SEC) == []


def test_past_due_keys_fire_on_the_next_call() -> None:
    wheel = TimerWheel(now_ms=T0)
    wheel.pop_due(T0 + 5 * SEC)
    wheel.schedule("late", T0)  # already past
    assert wheel.pop_due(T0 + 5 * SEC) == ["late"]


def test_reschedule_and_cancel() -> None:
    wheel = TimerWheel(tick_ms=SEC, slots=16, now_ms=T0)
    wheel.schedule("k", T0 + SEC)
    wheel.schedule("k", T0 + 10 * SEC)  # moved later
    assert drain(wheel, T0 + 5 * SEC) == []
    assert drain(wheel, T0 + 10 * SEC) == ["k"]
    wheel.schedule("x", T0 + 20 * SEC)
    assert wheel.cancel("x") and not wheel.cancel("x")
    assert drain(wheel, T0 + 30 * SEC) == [] and len(wheel) == 0


def test_far_future_keys_go_through_the_overflow_and_fire_on_time() -> None:
    wheel = TimerWheel(tick_ms=SEC, slots=8, now_ms=T0)  # the slots span 8 s only
    wheel.schedule("hour", T0 + 3_600 * SEC)
    wheel.schedule("soon", T0 + 3 * SEC)
    assert drain(wheel, T0 + 3 * SEC) == ["soon"]
    assert drain(wheel, T0 + 3_599 * SEC) == []
    assert drain(wheel, T0 + 3_600 * SEC) == ["hour"]


def test_cost_per_call_is_bounded() -> None:
    wheel = TimerWheel(tick_ms=SEC, slots=256, now_ms=T0)
    keys = [f"k{i}" for i in range(10_000)]
    for i, key in enumerate(keys):
        wheel.schedule(key, T0 + (i % 50) * SEC)
    batches = []
    while True:
        got = wheel.pop_due(T0 + 60 * SEC, limit=100)
        if not got and not wheel.behind(T0 + 60 * SEC):
            break
        assert len(got) <= 100
        batches.append(got)
    popped = [k for batch in batches for k in batch]
    assert sorted(popped) == sorted(keys) and len(set(popped)) == len(popped)
    assert len(batches) <= 10_000 // 100 + 50 + 2  # keys, plus one unit per tick walked


def test_an_idle_wheel_jumps_instead_of_walking_every_tick() -> None:
    wheel = TimerWheel(tick_ms=SEC, slots=64, now_ms=T0)
    wheel.schedule("tomorrow", T0 + DAY)
    calls = 0
    popped: list[str] = []
    while not popped:
        popped = wheel.pop_due(T0 + DAY, limit=10)
        calls += 1
        assert calls < 20  # not 86,400 ticks of walking
    assert popped == ["tomorrow"]
    assert not wheel.behind(T0 + DAY)


def test_overflow_heap_stays_compact_under_cancellation() -> None:
    wheel = TimerWheel(tick_ms=SEC, slots=8, now_ms=T0)
    for round_ in range(50):
        for i in range(100):
            wheel.schedule(f"k{i}", T0 + (1_000 + round_) * SEC)  # reschedule: old entries stale
    assert len(wheel) == 100
    assert len(wheel._heap) <= 2 * 100 + 130  # stale entries are compacted away
    assert sorted(drain(wheel, T0 + 2_000 * SEC)) == sorted(f"k{i}" for i in range(100))


def test_round_trip_and_rebuild() -> None:
    wheel = TimerWheel(tick_ms=500, slots=32, now_ms=T0)
    entries = {f"smsc:{i}": T0 + i * 777 for i in range(200)}
    for key, due in entries.items():
        wheel.schedule(key, due)
    wheel.pop_due(T0 + 10 * SEC)
    left = dict(wheel.items())
    copy = TimerWheel.from_bytes(wheel.to_bytes())
    assert dict(copy.items()) == left and copy.tick_ms == 500
    rebuilt = TimerWheel.from_entries(left.items(), now_ms=T0 + 10 * SEC, tick_ms=500, slots=32)
    now = T0 + 200 * SEC
    assert sorted(drain(copy, now)) == sorted(drain(rebuilt, now)) == sorted(left)


def test_from_bytes_rejects_garbage() -> None:
    good = TimerWheel(now_ms=T0).to_bytes()
    wheel = TimerWheel(now_ms=T0)
    wheel.schedule("k", T0)
    one = wheel.to_bytes()
    for bad in (b"", good[:-1], b"X" + good[1:], good + b"x", one[:-1]):
        with pytest.raises(StateFormatError):
            TimerWheel.from_bytes(bad)
    with pytest.raises(ValueError):
        TimerWheel(tick_ms=0)
    with pytest.raises(ValueError):
        wheel.pop_due(T0, limit=0)


_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("schedule"), st.integers(0, 30), st.integers(-5_000, 120_000)),
        st.tuples(st.just("cancel"), st.integers(0, 30), st.just(0)),
        st.tuples(
            st.just("pop"), st.integers(1, 8), st.sampled_from([0, 1, 400, 1_000, 7_000, 60_000])
        ),
    ),
    max_size=120,
)


@settings(max_examples=300, deadline=None)
@given(_OPS, st.sampled_from([(1_000, 4), (1_000, 64), (250, 16)]))
def test_wheel_agrees_with_a_dict_model(
    ops: list[tuple[str, int, int]], shape: tuple[int, int]
) -> None:
    tick_ms, slots = shape
    wheel = TimerWheel(tick_ms=tick_ms, slots=slots, now_ms=T0)
    model: dict[str, int] = {}
    now = T0
    for op, a, b in ops:
        if op == "schedule":
            key, due = f"k{a}", now + b
            wheel.schedule(key, due)
            # A key scheduled in the past is due now: it joins the current tick (found by
            # this test: it used to be expected out with its own, earlier tick).
            model[key] = max(due, now)
        elif op == "cancel":
            assert wheel.cancel(f"k{a}") == (model.pop(f"k{a}", None) is not None)
        else:
            now += b
            got = wheel.pop_due(now, limit=a)
            assert len(got) == len(set(got)) <= a
            for key in got:
                assert model.pop(key) <= now  # never early
        assert len(wheel) == len(model)
    # Drained: everything due in an earlier tick is out; due keys of the current tick may
    # wait for the next one.
    for key in drain(wheel, now, limit=3):
        assert model.pop(key) <= now
    for due in model.values():
        assert due > now or due // tick_ms == now // tick_ms
    # And one tick later every due key is out.
    later = (now // tick_ms + 1) * tick_ms
    for key in drain(wheel, later, limit=3):
        assert model.pop(key) <= later
    assert all(due > later for due in model.values())
