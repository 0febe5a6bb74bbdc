from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.models import RouteHealth
from smsflow.domain.receipts import DeliveryStatus
from smsflow.domain.tracking import (
    DEFAULT_HEALTH_POLICY,
    DEFAULT_LATENCY_BOUNDS_MS,
    ErrorCategory,
    HealthPolicy,
    HealthReason,
    HealthState,
    PublishPolicy,
    RouteHealthReport,
    RouteState,
    StateFormatError,
    SubmitEvent,
    TerminalEvent,
    WindowState,
    WindowStats,
    evaluate,
    observe_bind,
    publish_decision,
    route_score,
    stats,
    step_many,
)

T0 = 1_700_000_000_000
SEC = 1_000
MIN = 60 * SEC
H, DG, DN = RouteState.HEALTHY, RouteState.DEGRADED, RouteState.DOWN
POLICY = DEFAULT_HEALTH_POLICY


def window(
    *,
    delivered: int = 0,
    terminal: int = 0,
    submits: int = 0,
    failed: int = 0,
    p95_ms: float | None = None,
) -> WindowStats:
    """Window figures as the health code sees them (latency: every submit timed at p95)."""
    undelivered = terminal - delivered
    histogram = [0] * (len(DEFAULT_LATENCY_BOUNDS_MS) + 1)
    if p95_ms is not None:
        histogram[0] = submits
    return WindowStats(
        window_s=900,
        as_of_ms=0,
        terminal={
            DeliveryStatus.DELIVERED: delivered,
            DeliveryStatus.UNDELIVERABLE: undelivered,
            DeliveryStatus.EXPIRED: 0,
            DeliveryStatus.REJECTED: 0,
            DeliveryStatus.FAILED: 0,
        },
        submits_accepted=submits - failed,
        submits_failed=failed,
        errors={c: 0 for c in ErrorCategory},
        latency_histogram=tuple(histogram),
        latency_p50_ms=p95_ms,
        latency_p95_ms=p95_ms,
        late=0,
        skewed=0,
    )


def rate(dr: float, n: int = 1_000) -> WindowStats:
    """A window with delivery rate ``dr`` over ``n`` terminal outcomes, clean submits."""
    return window(delivered=round(dr * n), terminal=n, submits=n, failed=0, p95_ms=100.0)


def drive(
    rates: list[float], *, start: HealthState | None = None, every_ms: int = 10 * SEC
) -> list[tuple[HealthState, RouteHealthReport]]:
    state = start or HealthState.initial(T0)
    out = []
    for i, dr in enumerate(rates):
        state, report = evaluate(state, rate(dr), "r1", T0 + i * every_ms)
        out.append((state, report))
    return out


def states(results: list[tuple[HealthState, RouteHealthReport]]) -> list[RouteState]:
    return [r.state for _, r in results]


def transitions(results: list[tuple[HealthState, RouteHealthReport]]) -> int:
    seq = states(results)
    return sum(1 for a, b in pairwise(seq) if a is not b)


# --- score -----------------------------------------------------------------------------------


def test_score_formula_with_all_components() -> None:
    # delivery 0.9; latency 500/1000 = 0.5; errors 1 - 0.05/0.25 = 0.8
    s = window(delivered=900, terminal=1_000, submits=1_000, failed=50, p95_ms=1_000.0)
    assert route_score(s) == pytest.approx(0.6 * 0.9 + 0.2 * 0.5 + 0.2 * 0.8)


def test_score_renormalises_over_judged_components() -> None:
    s = window(delivered=80, terminal=100, submits=10, failed=10)  # too few submits to judge
    assert route_score(s) == pytest.approx(0.8)
    assert route_score(window()) is None


def test_score_is_clamped_and_latency_under_target_is_perfect() -> None:
    s = window(delivered=100, terminal=100, submits=100, failed=100, p95_ms=1.0)
    assert route_score(s) == pytest.approx(0.6 * 1 + 0.2 * 1 + 0.2 * 0)


# --- hysteresis ------------------------------------------------------------------------------


def test_enters_degraded_below_090_at_once() -> None:
    results = drive([0.97, 0.93, 0.899])
    assert states(results) == [H, H, DG]
    assert results[-1][0].reason is HealthReason.DELIVERY_RATE_LOW
    assert results[-1][0].since_ms == T0 + 2 * 10 * SEC


def test_no_flapping_around_the_threshold() -> None:
    # Oscillating just around 0.90 for an hour: one transition, never back to HEALTHY.
    results = drive([0.97] + [0.89, 0.91] * 180)
    assert transitions(results) == 1
    assert states(results)[-1] is DG
    assert results[-1][0].reason in (HealthReason.DELIVERY_RATE_LOW, HealthReason.NOT_RECOVERED)


def test_between_thresholds_stays_degraded() -> None:
    results = drive([0.85] + [0.94] * 200)  # 0.94 < 0.95 never recovers
    assert set(states(results)[1:]) == {DG}
    assert results[-1][0].reason is HealthReason.NOT_RECOVERED


def test_recovery_needs_the_dwell_time() -> None:
    dwell = POLICY.recover_dwell_ms
    results = drive([0.85] + [0.96] * (dwell // (10 * SEC) + 1))
    seq = states(results)
    # Good from evaluation 1 on; HEALTHY exactly once the dwell has elapsed (t1 + dwell).
    first_healthy = seq.index(H)
    assert (first_healthy - 1) * 10 * SEC == dwell
    assert results[first_healthy][0].reason is HealthReason.RECOVERED
    assert all(r[0].reason is HealthReason.RECOVERING for r in results[1:first_healthy])


def test_a_dip_restarts_the_dwell_clock() -> None:
    steps_to_dwell = POLICY.recover_dwell_ms // (10 * SEC)
    pattern = [0.85] + [0.96] * (steps_to_dwell - 1) + [0.93] + [0.96] * steps_to_dwell
    results = drive(pattern)
    assert H not in states(results)  # the dip reset the clock just before the dwell was reached
    results = drive([*pattern, 0.96])
    assert states(results)[-1] is H


def test_minimum_sample_size_before_judging() -> None:
    state = HealthState.initial(T0)
    tiny = window(delivered=0, terminal=POLICY.min_terminal - 1, submits=49, failed=49)
    state, report = evaluate(state, tiny, "r1", T0)
    assert report.state is H and report.score == 1.0
    assert state.reason is HealthReason.NO_DATA
    assert report.delivery_rate == 0.0 and report.error_rate == 1.0  # raw figures still shown
    enough = window(delivered=0, terminal=POLICY.min_terminal, submits=0)
    _, report = evaluate(state, enough, "r1", T0 + SEC)
    assert report.state is DG


def test_error_rate_and_latency_degrade_too() -> None:
    state = HealthState.initial(T0)
    s1, r1 = evaluate(state, window(delivered=100, terminal=100, submits=100, failed=11), "r",
                      T0)
    assert r1.state is DG and s1.reason is HealthReason.ERROR_RATE_HIGH
    s2, r2 = evaluate(state, window(delivered=100, terminal=100, submits=100, p95_ms=2_500.0),
                      "r", T0)
    assert r2.state is DG and s2.reason is HealthReason.LATENCY_HIGH


def test_probe_returns_a_starved_degraded_route_to_healthy() -> None:
    degraded, _ = evaluate(HealthState.initial(T0), rate(0.5), "r1", T0)
    assert degraded.state is DG
    state = degraded
    for i in range(1, 200):
        state, report = evaluate(state, window(), "r1", T0 + i * 10 * SEC)
        if report.state is H:
            break
    assert state.reason is HealthReason.PROBE
    assert (i - 1) * 10 * SEC == POLICY.probe_after_ms  # quiet since the first empty window
    assert report.score == 1.0
    # Disabled probing keeps it DEGRADED, with its last judged score.
    no_probe = replace(POLICY, probe_after_ms=None)
    state = degraded
    for i in range(1, 200):
        state, report = evaluate(state, window(), "r1", T0 + i * 10 * SEC, no_probe)
    assert report.state is DG and report.score == pytest.approx(degraded.score)


# --- DOWN ------------------------------------------------------------------------------------


def test_down_on_bind_loss_and_back_through_degraded() -> None:
    state, _ = evaluate(HealthState.initial(T0), rate(0.99), "r1", T0)
    state = observe_bind(state, False)
    state, report = evaluate(state, rate(0.99), "r1", T0 + SEC)
    assert report.state is DN and report.score == 0.0 and state.reason is HealthReason.BIND_LOST
    # Still DOWN while the bind is lost, whatever the window says.
    state, report = evaluate(state, rate(1.0), "r1", T0 + 2 * SEC)
    assert report.state is DN and state.since_ms == T0 + SEC
    # Bind back: DOWN for the exit dwell, then DEGRADED (never straight to HEALTHY).
    state = observe_bind(state, True)
    t = T0 + 3 * SEC
    state, report = evaluate(state, rate(1.0), "r1", t)
    assert report.state is DN and state.reason is HealthReason.DOWN_CLEARING
    state, report = evaluate(state, rate(1.0), "r1", t + POLICY.down_exit_dwell_ms - 1)
    assert report.state is DN
    state, report = evaluate(state, rate(1.0), "r1", t + POLICY.down_exit_dwell_ms)
    assert report.state is DG and state.reason is HealthReason.DOWN_CLEARED
    # Then the usual recovery dwell.
    t2 = t + POLICY.down_exit_dwell_ms
    state, _ = evaluate(state, rate(1.0), "r1", t2 + SEC)
    state, report = evaluate(state, rate(1.0), "r1", t2 + SEC + POLICY.recover_dwell_ms)
    assert report.state is H


def test_down_on_very_high_error_rate_with_hysteresis() -> None:
    def err(failed: int) -> WindowStats:
        return window(delivered=100, terminal=100, submits=100, failed=failed)

    state, report = evaluate(HealthState.initial(T0), err(50), "r1", T0)
    assert report.state is DN and state.reason is HealthReason.ERROR_RATE_CRITICAL
    # Between the exit (0.25) and entry (0.50) thresholds it stays DOWN for good.
    for i in range(1, 50):
        state, report = evaluate(state, err(30 if i % 2 else 49), "r1", T0 + i * 10 * SEC)
        assert report.state is DN
    state, _ = evaluate(state, err(20), "r1", T0 + 1_000 * SEC)
    state, report = evaluate(state, err(20), "r1", T0 + 1_000 * SEC + POLICY.down_exit_dwell_ms)
    assert report.state is DG


def test_bind_flap_inside_the_exit_dwell_keeps_it_down() -> None:
    state = observe_bind(HealthState.initial(T0), False)
    state, _ = evaluate(state, rate(1.0), "r1", T0)
    for i in range(1, 40):  # the bind flaps every 10 s for ~6 minutes
        state = observe_bind(state, i % 2 == 0)
        state, report = evaluate(state, rate(1.0), "r1", T0 + i * 10 * SEC)
        assert report.state is DN


# --- report ----------------------------------------------------------------------------------


def test_report_matches_the_route_health_contract() -> None:
    events = [TerminalEvent(T0, DeliveryStatus.DELIVERED)] * 60 + [SubmitEvent(T0, True, 40.0)] * 60
    figures = stats(step_many(WindowState.empty(), events, T0), T0)
    _, report = evaluate(HealthState.initial(T0), figures, "route-7", T0)
    assert report.updated_at == datetime.fromtimestamp(T0 / 1000, tz=UTC)
    record = RouteHealth(**report.as_record())
    assert record.state.value == "HEALTHY" and record.window_s == 900
    assert RouteHealth.from_avro(record.to_avro()) == record
    _, empty = evaluate(HealthState.initial(T0), stats(WindowState.empty(), T0), "r", T0)
    assert empty.delivery_rate is None and empty.error_rate is None
    assert empty.submit_latency_p95_ms is None


def test_policy_validation() -> None:
    for kwargs in (
        {"weight_delivery": -1.0},
        {"weight_delivery": 0.0, "weight_latency": 0.0, "weight_errors": 0.0},
        {"recover_delivery_rate": 0.85},
        {"recover_error_rate": 0.2},
        {"down_exit_error_rate": 0.6},
        {"recover_latency_ms": 5_000.0},
        {"min_terminal": 0},
        {"probe_after_ms": -1},
        {"latency_target_ms": 0.0},
    ):
        with pytest.raises(ValueError):
            HealthPolicy(**kwargs)


# --- publishing ------------------------------------------------------------------------------


def test_publish_decision_rules() -> None:
    policy = PublishPolicy(min_score_delta=0.05, min_interval_ms=10 * SEC, max_interval_ms=MIN)
    state, report = evaluate(HealthState.initial(T0), rate(0.99), "r1", T0)
    state, first = publish_decision(state, report, T0, policy)
    assert first and state.published_at_ms == T0 and state.published_state is H

    small = replace(report, score=report.score - 0.01)
    assert not publish_decision(state, small, T0 + 30 * SEC, policy)[1]  # small move
    big = replace(report, score=report.score - 0.2)
    assert not publish_decision(state, big, T0 + 5 * SEC, policy)[1]  # big, but too soon
    assert publish_decision(state, big, T0 + 10 * SEC, policy)[1]
    changed = replace(report, state=DG)
    assert publish_decision(state, changed, T0 + 1, policy)[1]  # state change: at once
    assert publish_decision(state, report, T0 + MIN, policy)[1]  # heartbeat
    unchanged, published = publish_decision(state, report, T0 + 30 * SEC, policy)
    assert not published and unchanged is state


def test_publishing_is_throttled_over_an_hour() -> None:
    # Evaluated every second for an hour with a noisy but steady route and one outage.
    state = HealthState.initial(T0)
    published = []
    for i in range(3_600):
        now = T0 + i * SEC
        state = observe_bind(state, not 1_000 <= i < 1_030)
        dr = 0.97 + (0.01 if i % 2 else -0.01)
        state, report = evaluate(state, rate(dr), "r1", now)
        state, yes = publish_decision(state, report, now)
        if yes:
            published.append((i, report.state))
    assert len(published) <= 3_600 // 60 + 6  # heartbeats plus the state changes
    assert (1_000, DN) in published  # the outage was published the second it happened
    assert any(s is DG for _, s in published)


# --- serialisation ---------------------------------------------------------------------------

_health_states = st.builds(
    HealthState,
    state=st.sampled_from(RouteState),
    reason=st.sampled_from(HealthReason),
    since_ms=st.integers(0, 2**62),
    score=st.floats(0, 1),
    bind_up=st.booleans(),
    exit_since_ms=st.none() | st.integers(0, 2**62),
    quiet_since_ms=st.none() | st.integers(0, 2**62),
    published_state=st.none() | st.sampled_from(RouteState),
    published_score=st.floats(0, 1),
    published_at_ms=st.none() | st.integers(0, 2**62),
)


@settings(max_examples=200, deadline=None)
@given(_health_states)
def test_health_state_round_trip(state: HealthState) -> None:
    if state.published_at_ms is None:
        state = replace(state, published_state=None)  # the memo is all-or-nothing
    elif state.published_state is None:
        state = replace(state, published_state=H)
    data = state.to_bytes()
    assert len(data) == 54
    assert HealthState.from_bytes(data) == state


def test_health_state_rejects_garbage() -> None:
    good = HealthState.initial(T0).to_bytes()
    for bad in (b"", good[:-1], b"X" + good[1:], good[:2] + b"\x09" + good[3:]):
        with pytest.raises(StateFormatError):
            HealthState.from_bytes(bad)
