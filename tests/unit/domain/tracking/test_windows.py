from __future__ import annotations

import math
from bisect import bisect_left
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsflow.domain.receipts import DeliveryStatus
from smsflow.domain.tracking import (
    DEFAULT_LATENCY_BOUNDS_MS,
    DEFAULT_WINDOW_SPEC,
    ERROR_CATEGORIES,
    NEUTRAL_STATUSES,
    TERMINAL_STATUSES,
    ErrorCategory,
    StateFormatError,
    SubmitEvent,
    TerminalEvent,
    WindowEvent,
    WindowSpec,
    WindowState,
    advance,
    latency_quantile,
    merge,
    stats,
    step,
    step_many,
    submit_event,
)

T0 = 1_700_000_040_000  # a bucket boundary (multiple of 60 s)
MIN = 60_000
D = DeliveryStatus


def delivered(ts: int) -> TerminalEvent:
    return TerminalEvent(ts, D.DELIVERED)


def run(
    events: Sequence[tuple[WindowEvent, int]], spec: WindowSpec = DEFAULT_WINDOW_SPEC
) -> WindowState:
    state = WindowState.empty(spec)
    for event, now in events:
        state = step(state, event, now)
    return state


# --- roll-over, late, skew -------------------------------------------------------------------


def test_empty_window_has_no_rates() -> None:
    s = stats(WindowState.empty(), T0)
    assert s.delivery_rate is None and s.error_rate is None
    assert s.latency_p50_ms is None and s.latency_p95_ms is None
    assert s.window_s == 900 and s.terminal_total == 0 and s.submits == 0


def test_delivery_and_error_rates() -> None:
    events: list[tuple[WindowEvent, int]] = [
        (delivered(T0), T0),
        (delivered(T0 + 1), T0 + 1),
        (TerminalEvent(T0 + 2, D.UNDELIVERABLE), T0 + 2),
        (TerminalEvent(T0 + 3, D.EXPIRED), T0 + 3),
        (SubmitEvent(T0, True, 10.0), T0 + 4),
        (SubmitEvent(T0, True, 20.0), T0 + 4),
        (SubmitEvent(T0, True, 30.0), T0 + 4),
        (SubmitEvent(T0, False, 40.0, ErrorCategory.PERMANENT), T0 + 4),
    ]
    s = stats(run(events), T0 + 5)
    assert s.delivery_rate == pytest.approx(0.5)
    assert s.error_rate == pytest.approx(0.25)
    assert s.terminal[D.UNDELIVERABLE] == 1 and s.terminal[D.EXPIRED] == 1
    assert s.errors[ErrorCategory.PERMANENT] == 1 and s.errors[ErrorCategory.TEMPORARY] == 0
    assert s.latency_count == 4


def test_window_rolls_over_bucket_by_bucket() -> None:
    # One delivered per minute for 20 minutes: a 15-minute window holds exactly 15 of them.
    state = WindowState.empty()
    for minute in range(20):
        now = T0 + minute * MIN
        state = step(state, delivered(now), now)
    assert stats(state, T0 + 19 * MIN).delivered == 15
    # Each further minute without traffic drops the oldest bucket...
    assert stats(state, T0 + 20 * MIN).delivered == 14
    assert stats(state, T0 + 25 * MIN).delivered == 9
    # ...and after a whole window nothing is left.
    assert stats(state, T0 + 34 * MIN).delivered == 0
    assert stats(state, T0 + 10 * 24 * 60 * MIN).terminal_total == 0


def test_bucket_boundaries_are_exact() -> None:
    state = step(WindowState.empty(), delivered(T0), T0)  # bucket T0 // MIN
    assert stats(state, T0 + 15 * MIN - 1).delivered == 1  # still the 15th bucket
    assert stats(state, T0 + 15 * MIN).delivered == 0  # its bucket just left


def test_out_of_order_events_inside_the_window_count() -> None:
    now = T0 + 14 * MIN
    events = [delivered(now - k * MIN) for k in (3, 0, 14, 7, 1)]
    state = step_many(WindowState.empty(), events, now)
    s = stats(state, now)
    assert s.delivered == 5 and s.late == 0


def test_late_events_are_dropped_and_counted() -> None:
    now = T0 + 30 * MIN
    state = step(WindowState.empty(), delivered(now - 15 * MIN), now)  # one bucket too old
    state = step(state, delivered(now - 2 * 60 * MIN), now)
    state = step(state, delivered(now - 14 * MIN), now)  # oldest bucket still in the window
    s = stats(state, now)
    assert s.delivered == 1
    assert s.late == 2 and state.late == 2


def test_events_from_the_future_land_in_the_head_bucket() -> None:
    state = step(WindowState.empty(), delivered(T0 + 60 * MIN), T0)
    s = stats(state, T0)
    assert s.delivered == 1 and s.skewed == 1
    # It ages like an event of the head bucket, not of its own (future) time.
    assert stats(state, T0 + 15 * MIN).delivered == 0


def test_head_never_moves_back() -> None:
    state = step(WindowState.empty(), delivered(T0 + 20 * MIN), T0 + 20 * MIN)
    older_now = step(state, delivered(T0 + 19 * MIN), T0)  # a stale now_ms is ignored
    assert older_now.head == state.head
    assert stats(older_now, T0 + 20 * MIN).delivered == 2


def test_step_returns_a_new_value_and_leaves_its_input_alone() -> None:
    before = step(WindowState.empty(), delivered(T0), T0)
    snapshot = before.to_bytes()
    after = step(before, TerminalEvent(T0, D.FAILED), T0)
    assert before.to_bytes() == snapshot
    assert after != before
    assert stats(before, T0).terminal_total == 1 and stats(after, T0).terminal_total == 2
    assert advance(before, T0) is before  # nothing to roll: same value


def test_bucket_view() -> None:
    state = step(WindowState.empty(), delivered(T0 + 5), T0 + 5)
    b = T0 // MIN
    assert state.bucket(b)[0] == 1
    assert state.bucket(b - 15) == (0,) * DEFAULT_WINDOW_SPEC.stride
    assert WindowState.empty().bucket(b) == (0,) * DEFAULT_WINDOW_SPEC.stride


# --- submit outcome mapping ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "category"),
    [
        (0x58, ErrorCategory.BACKPRESSURE),  # ESME_RTHROTTLED
        (0x14, ErrorCategory.BACKPRESSURE),  # ESME_RMSGQFUL
        (0x08, ErrorCategory.TEMPORARY),  # ESME_RSYSERR
        (0x0B, ErrorCategory.PERMANENT),  # ESME_RINVDSTADR
        (0x401, ErrorCategory.TEMPORARY),  # vendor specific
        (-(2**31), ErrorCategory.TEMPORARY),  # 0x80000000 read back from a signed Avro int
        (0, ErrorCategory.TEMPORARY),  # FAILED with ESME_ROK cannot be an SMSC verdict
        (-1, ErrorCategory.CONNECTION_LOST),  # no response
    ],
)
def test_submit_event_categories(status: int, category: ErrorCategory) -> None:
    event = submit_event(T0, accepted=False, command_status=status, latency_ms=12.0)
    assert event.error is category and not event.accepted
    if category is ErrorCategory.CONNECTION_LOST:
        assert event.latency_ms is None  # nothing to time
    else:
        assert event.latency_ms == 12.0


def test_accepted_submit_event_has_no_error() -> None:
    assert submit_event(T0, accepted=True, command_status=0, latency_ms=3.5) == SubmitEvent(
        T0, True, 3.5, None
    )


def test_nan_latency_is_not_timed() -> None:
    state = step(WindowState.empty(), SubmitEvent(T0, True, math.nan), T0)
    s = stats(state, T0)
    assert s.submits == 1 and s.latency_count == 0


# --- latency quantiles -----------------------------------------------------------------------


def test_quantile_interpolates_inside_the_bin() -> None:
    bounds = (10.0, 20.0, 40.0)
    # 10 values in (10, 20], 10 in (20, 40]
    hist = (0, 10, 10, 0)
    assert latency_quantile(hist, bounds, 0.5) == pytest.approx(20.0)
    assert latency_quantile(hist, bounds, 0.25) == pytest.approx(15.0)
    assert latency_quantile(hist, bounds, 0.95) == pytest.approx(38.0)
    assert latency_quantile((0, 0, 0, 3), bounds, 0.5) == 40.0  # overflow bin: the last bound
    assert latency_quantile((0, 0, 0, 0), bounds, 0.5) is None
    with pytest.raises(ValueError):
        latency_quantile(hist, bounds, 0.0)


def test_p95_of_a_realistic_spread() -> None:
    latencies = [float(x) for x in range(1, 201)]  # 1..200 ms
    state = step_many(WindowState.empty(), [SubmitEvent(T0, True, x) for x in latencies], T0)
    s = stats(state, T0)
    assert s.latency_p50_ms is not None and 70 < s.latency_p50_ms <= 100
    assert s.latency_p95_ms is not None and 150 < s.latency_p95_ms <= 200


# --- merge -----------------------------------------------------------------------------------


def test_merge_sums_and_aligns_heads() -> None:
    a = step(WindowState.empty(), delivered(T0), T0)
    b = step(WindowState.empty(), TerminalEvent(T0 + 10 * MIN, D.FAILED), T0 + 10 * MIN)
    m = merge(a, b)
    assert m.head == b.head
    s = stats(m, T0 + 10 * MIN)
    assert (s.delivered, s.terminal_total) == (1, 2)
    assert stats(merge(a, b), T0 + 15 * MIN).terminal_total == 1  # a's bucket left
    assert merge(a, WindowState.empty()) == a and merge(WindowState.empty(), a) == a
    with pytest.raises(ValueError):
        merge(a, WindowState.empty(WindowSpec(bucket_ms=30_000, buckets=30)))


# --- serialisation ---------------------------------------------------------------------------

# Bound from the format: 22-byte header + width byte + bitmap + 4 bytes per counter.
COUNTERS = DEFAULT_WINDOW_SPEC.buckets * DEFAULT_WINDOW_SPEC.stride
MAX_SIZE = 22 + 1 + math.ceil(COUNTERS / 8) + 4 * COUNTERS


def test_round_trip_and_sizes() -> None:
    empty = WindowState.empty()
    assert WindowState.from_bytes(empty.to_bytes()) == empty
    assert len(empty.to_bytes()) == 23

    # A busy route: 15 minutes at ~30 events/s, all statuses, spread latencies.
    events: list[WindowEvent] = []
    for i in range(27_000):
        ts = T0 + i * 33
        events.append(SubmitEvent(ts, i % 20 != 0, float(5 + (i * 7919) % 900),
                                  ErrorCategory.TEMPORARY if i % 20 == 0 else None))
        events.append(TerminalEvent(ts, TERMINAL_STATUSES[i % 7 % 5]))
    busy = step_many(WindowState.empty(), events, T0 + 27_000 * 33)
    data = busy.to_bytes()
    assert WindowState.from_bytes(data) == busy
    assert stats(WindowState.from_bytes(data), T0 + 27_000 * 33) == stats(busy, T0 + 27_000 * 33)
    assert len(data) < 1_200  # ~2 bytes per non-zero counter, 1 bit per zero


def test_worst_case_size_is_bounded() -> None:
    spec = DEFAULT_WINDOW_SPEC
    events: list[WindowEvent] = []
    for b in range(spec.buckets):
        ts = T0 + b * MIN
        for bound in (*spec.latency_bounds_ms, 10**9):
            for category in ERROR_CATEGORIES:
                events.append(SubmitEvent(ts, False, float(bound), category))
                events.append(SubmitEvent(ts, True, float(bound)))
        for status in TERMINAL_STATUSES:
            events.append(TerminalEvent(ts, status))
    state = step_many(WindowState.empty(), events, T0 + (spec.buckets - 1) * MIN)
    assert all(all(state.bucket(T0 // MIN + b)) for b in range(spec.buckets))  # all counters set
    data = state.to_bytes()
    assert len(data) <= MAX_SIZE
    assert WindowState.from_bytes(data) == state


def test_large_counts_round_trip() -> None:
    state = step(WindowState.empty(), delivered(T0), T0)
    big = step_many(state, [delivered(T0)] * 70_000, T0)  # needs 4-byte width
    assert WindowState.from_bytes(big.to_bytes()) == big


def test_from_bytes_rejects_another_spec_and_garbage() -> None:
    data = step(WindowState.empty(), delivered(T0), T0).to_bytes()
    with pytest.raises(StateFormatError):
        WindowState.from_bytes(data, WindowSpec(bucket_ms=30_000, buckets=30))
    with pytest.raises(StateFormatError):
        WindowState.from_bytes(data, WindowSpec(latency_bounds_ms=(1.0, 10.0)))
    for bad in (b"", b"W", b"X" + data[1:], data[:-1], data + b"\x01", data[:22] + b"\x09"):
        with pytest.raises(StateFormatError):
            WindowState.from_bytes(bad)


def test_spec_validation() -> None:
    for kwargs in ({"bucket_ms": 0}, {"buckets": 0}, {"latency_bounds_ms": ()},
                   {"latency_bounds_ms": (5.0, 5.0)}, {"latency_bounds_ms": (-1.0, 5.0)}):
        with pytest.raises(ValueError):
            WindowSpec(**kwargs)
    assert WindowSpec(bucket_ms=30_000, buckets=30).window_s == 900


# --- window arithmetic against a brute-force reference ----------------------------------------

SMALL_SPEC = WindowSpec(bucket_ms=1_000, buckets=5, latency_bounds_ms=(5.0, 10.0, 50.0, 200.0))


def _bin(bounds: Sequence[float], latency: float) -> int:
    return bisect_left(bounds, latency)


@dataclass(frozen=True)
class Ref:
    terminal: dict[DeliveryStatus, int]
    accepted: int
    failed: int
    errors: dict[ErrorCategory, int]
    histogram: tuple[int, ...]
    latencies: list[float]
    late: int
    skewed: int


def reference(
    stream: Sequence[tuple[WindowEvent, int]], spec: WindowSpec, final_now: int
) -> Ref:
    """Recompute a window from the raw events, with no ring, no running totals."""
    head: int | None = None
    late = skewed = 0
    kept: list[tuple[int, WindowEvent]] = []
    for event, now in stream:
        now_bucket = now // spec.bucket_ms
        head = now_bucket if head is None else max(head, now_bucket)
        if isinstance(event, TerminalEvent) and event.status in NEUTRAL_STATUSES:
            continue  # ACCEPTED: not a delivery outcome, counted nowhere
        bucket = event.ts_ms // spec.bucket_ms
        if bucket > head:
            bucket, skewed = head, skewed + 1
        elif bucket <= head - spec.buckets:
            late += 1
            continue
        kept.append((bucket, event))
    final_bucket = final_now // spec.bucket_ms
    final_head = final_bucket if head is None else max(head, final_bucket)
    live = [e for b, e in kept if b > final_head - spec.buckets]
    terminal = Counter(e.status for e in live if isinstance(e, TerminalEvent))
    submits = [e for e in live if isinstance(e, SubmitEvent)]
    latencies = sorted(e.latency_ms for e in submits if e.latency_ms is not None)
    histogram = Counter(_bin(spec.latency_bounds_ms, x) for x in latencies)
    return Ref(
        terminal={s: terminal.get(s, 0) for s in TERMINAL_STATUSES},
        accepted=sum(1 for e in submits if e.accepted),
        failed=sum(1 for e in submits if not e.accepted),
        errors={c: sum(1 for e in submits if e.error is c) for c in ERROR_CATEGORIES},
        histogram=tuple(histogram.get(i, 0) for i in range(len(spec.latency_bounds_ms) + 1)),
        latencies=latencies,
        late=late,
        skewed=skewed,
    )


_EVENT = st.tuples(
    st.sampled_from([0, 0, 0, 1, 50, 250, 999, 1_000, 3_000, 7_000]),  # clock advance
    st.integers(-1_500, 7_000),  # age of the event at that clock (negative: from the future)
    st.sampled_from([*TERMINAL_STATUSES, *NEUTRAL_STATUSES]) | st.none(),  # None: a submit
    st.booleans(),  # accepted
    st.none() | st.floats(0, 400, allow_nan=False),  # latency
    st.none() | st.sampled_from(ERROR_CATEGORIES),
)


@st.composite
def streams(draw: st.DrawFn) -> tuple[list[tuple[WindowEvent, int]], int]:
    """A processing clock that advances irregularly (sometimes by more than a window) and
    events stamped around it: mostly recent, some out of order, late or ahead of the clock."""
    now = draw(st.integers(0, 10_000))
    out: list[tuple[WindowEvent, int]] = []
    for advance_ms, age, status, accepted, latency, error in draw(st.lists(_EVENT, max_size=60)):
        now += advance_ms
        event: WindowEvent = (
            TerminalEvent(now - age, status) if status is not None
            else SubmitEvent(now - age, accepted, latency, None if accepted else error)
        )
        out.append((event, now))
    final_now = now + draw(st.sampled_from([0, 0, 500, 2_000, 4_999, 6_000]))
    return out, final_now


@settings(max_examples=300, deadline=None)
@given(streams())
def test_window_matches_brute_force_reference(
    data: tuple[list[tuple[WindowEvent, int]], int],
) -> None:
    stream, final_now = data
    state = run(stream, SMALL_SPEC)
    got = stats(state, final_now)
    want = reference(stream, SMALL_SPEC, final_now)
    assert dict(got.terminal) == want.terminal
    assert got.submits_accepted == want.accepted
    assert got.submits_failed == want.failed
    assert dict(got.errors) == want.errors
    assert got.latency_histogram == want.histogram
    assert got.late == want.late and got.skewed == want.skewed
    # The rates follow from the counts.
    terminal_total = sum(want.terminal.values())
    if terminal_total:
        assert got.delivery_rate == want.terminal[D.DELIVERED] / terminal_total
    else:
        assert got.delivery_rate is None
    # Percentiles: the estimate lies in the histogram bin that holds the true order statistic.
    latencies: list[float] = want.latencies
    bounds = SMALL_SPEC.latency_bounds_ms
    for q, estimate in ((0.5, got.latency_p50_ms), (0.95, got.latency_p95_ms)):
        if not latencies:
            assert estimate is None
            continue
        true = latencies[min(len(latencies), max(1, math.ceil(q * len(latencies) - 1e-9))) - 1]
        assert estimate is not None
        true_bin = _bin(bounds, true)
        if true_bin == len(bounds):
            assert estimate == bounds[-1]
        else:
            lower = bounds[true_bin - 1] if true_bin else 0.0
            assert lower <= estimate <= bounds[true_bin]
    # Serialisation round-trips every reachable state, within the size bound.
    blob = state.to_bytes()
    assert WindowState.from_bytes(blob, SMALL_SPEC) == state
    counters = SMALL_SPEC.buckets * SMALL_SPEC.stride
    assert len(blob) <= 22 + 1 + math.ceil(counters / 8) + 4 * counters
    # Batch stepping is the same arithmetic as one-by-one stepping when the clock is shared.
    if stream:
        last_now = stream[-1][1]
        batch = step_many(WindowState.empty(SMALL_SPEC), [e for e, _ in stream], last_now)
        one_by_one = run([(e, last_now) for e, _ in stream], SMALL_SPEC)
        assert batch == one_by_one


@settings(max_examples=100, deadline=None)
@given(streams(), streams())
def test_merge_equals_the_sum_of_both_references(
    a: tuple[list[tuple[WindowEvent, int]], int], b: tuple[list[tuple[WindowEvent, int]], int]
) -> None:
    final_now = max(a[1], b[1])
    merged = stats(merge(run(a[0], SMALL_SPEC), run(b[0], SMALL_SPEC)), final_now)
    ra, rb = reference(a[0], SMALL_SPEC, final_now), reference(b[0], SMALL_SPEC, final_now)
    assert merged.submits_accepted == ra.accepted + rb.accepted
    assert merged.latency_histogram == tuple(
        x + y for x, y in zip(ra.histogram, rb.histogram, strict=True)
    )
    for status in TERMINAL_STATUSES:
        assert merged.terminal[status] == ra.terminal[status] + rb.terminal[status]
    assert merged.late == ra.late + rb.late


def _true_quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered), max(1, math.ceil(q * len(ordered) - 1e-9))) - 1]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(0, 90_000, allow_nan=False), min_size=1, max_size=300),
    st.sampled_from([0.5, 0.9, 0.95, 0.99, 1.0]),
)
def test_quantile_lies_in_the_bin_of_the_true_value(latencies: list[float], q: float) -> None:
    state = step_many(WindowState.empty(), [SubmitEvent(T0, True, x) for x in latencies], T0)
    s = stats(state, T0)
    bounds = DEFAULT_LATENCY_BOUNDS_MS
    estimate = latency_quantile(s.latency_histogram, bounds, q)
    true_bin = _bin(bounds, _true_quantile(latencies, q))
    assert estimate is not None
    if true_bin == len(bounds):
        assert estimate == bounds[-1]
    else:
        assert (bounds[true_bin - 1] if true_bin else 0.0) <= estimate <= bounds[true_bin]


def test_default_bounds_are_used_by_default() -> None:
    assert DEFAULT_WINDOW_SPEC.latency_bounds_ms == DEFAULT_LATENCY_BOUNDS_MS
    assert DEFAULT_WINDOW_SPEC.stride == 5 + 2 + 4 + len(DEFAULT_LATENCY_BOUNDS_MS) + 1


# --- ACCEPTED (no receipt requested) is neutral ------------------------------------------------


def test_accepted_is_neither_delivered_nor_in_the_delivery_rate() -> None:
    """A message sent without a receipt request ends ACCEPTED: the window must not count it as
    a delivery failure (it would drag the route's delivery rate down and degrade a healthy
    route) nor as delivered (it would hide real failures)."""
    now = T0 + 30_000
    events: list[WindowEvent] = [
        *(delivered(T0 + i) for i in range(9)),
        TerminalEvent(T0 + 10, D.UNDELIVERABLE),
    ]
    base = step_many(WindowState.empty(), events, now)
    with_accepted = step_many(
        base, [TerminalEvent(T0 + 20 + i, D.ACCEPTED) for i in range(90)], now)
    got = stats(with_accepted, now)
    assert got.delivery_rate == pytest.approx(0.9)  # 9 / 10, not 9 / 100 nor 99 / 100
    assert got.terminal_total == 10
    assert D.ACCEPTED not in got.terminal
    assert with_accepted == base
    assert with_accepted.to_bytes() == base.to_bytes()  # the stored format is unchanged
    # Only ACCEPTED reports: nothing to judge the delivery rate on.
    only = step_many(WindowState.empty(), [TerminalEvent(T0, D.ACCEPTED)], now)
    assert stats(only, now).delivery_rate is None
    # Neither late nor skewed either: a neutral event is not looked at.
    far = step_many(WindowState.empty(), [TerminalEvent(T0 - 60 * MIN, D.ACCEPTED),
                                          TerminalEvent(T0 + 60 * MIN, D.ACCEPTED)], now)
    assert far.late == far.skewed == 0


def test_accepted_submits_still_count_as_accepted_submits() -> None:
    """The part's submit outcome (sms.sent) is what ACCEPTED traffic contributes."""
    now = T0 + 1_000
    state = step_many(WindowState.empty(), [
        submit_event(T0, accepted=True, command_status=0, latency_ms=12.0),
        TerminalEvent(T0, D.ACCEPTED),
    ], now)
    got = stats(state, now)
    assert got.submits_accepted == 1 and got.error_rate == 0.0
    assert got.terminal_total == 0
