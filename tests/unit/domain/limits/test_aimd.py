from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import pytest

from smsflow.config.models import Tier
from smsflow.domain.limits.aimd import AimdParams, AimdState, SubmitSample, observe, rate, retune
from smsflow.domain.limits.scheduler import Item, RateLimit, Scheduler, SchedulerConfig
from smsflow.domain.smpp_status import ESME_RMSGQFUL, ESME_ROK, ESME_RTHROTTLED, StatusCategory

PARAMS = AimdParams(target_latency_s=0.5)
THROTTLED = SubmitSample(0.01, StatusCategory.BACKPRESSURE)


def test_samples_classify_smpp_statuses() -> None:
    assert SubmitSample.from_status(0.1, ESME_RTHROTTLED).category is StatusCategory.BACKPRESSURE
    assert SubmitSample.from_status(0.1, ESME_RMSGQFUL).category is StatusCategory.BACKPRESSURE
    assert SubmitSample.from_status(0.1, ESME_ROK).category is StatusCategory.OK


def test_healthy_outcomes_keep_the_base_rate() -> None:
    state = AimdState.start(100.0)
    for i in range(100):
        state = observe(state, SubmitSample(0.1), i * 0.1, PARAMS)
    assert rate(state) == 100.0
    assert state.latency_ewma_s == pytest.approx(0.1)


def test_latency_over_target_cuts_in_proportion() -> None:
    state = AimdState.start(100.0)
    state = observe(state, SubmitSample(0.8), 0.0, PARAMS)  # EWMA starts at the first sample
    assert rate(state) == pytest.approx(100.0 * 0.5 / 0.8)
    slightly = observe(AimdState.start(100.0), SubmitSample(0.55), 0.0, PARAMS)
    assert rate(slightly) == pytest.approx(100.0 * 0.5 / 0.55)
    # A single cut is bounded by min_decrease_factor.
    terrible = observe(AimdState.start(100.0), SubmitSample(10.0), 0.0, PARAMS)
    assert rate(terrible) == pytest.approx(50.0)


def test_a_burst_of_throttling_errors_is_counted_once() -> None:
    state = AimdState.start(100.0)
    for i in range(50):  # 50 ESME_RTHROTTLED within 0.5 s: one overload episode
        state = observe(state, THROTTLED, i * 0.01, PARAMS)
    assert rate(state) == pytest.approx(70.0)
    assert state.decreases == 1
    state = observe(state, THROTTLED, 1.0, PARAMS)  # still throttled a second later
    assert rate(state) == pytest.approx(49.0)
    assert state.decreases == 2


def test_throttling_latency_is_not_folded_into_the_ewma() -> None:
    state = observe(AimdState.start(100.0), SubmitSample(0.3), 0.0, PARAMS)
    state = observe(state, SubmitSample(0.001, StatusCategory.BACKPRESSURE), 0.1, PARAMS)
    assert state.latency_ewma_s == pytest.approx(0.3)


def test_rate_never_falls_below_the_floor() -> None:
    state = AimdState.start(100.0)
    for i in range(100):
        state = observe(state, THROTTLED, float(i), PARAMS)
    assert rate(state) == pytest.approx(5.0)


def test_recovery_is_additive_and_waits_out_the_hold_off() -> None:
    state = observe(AimdState.start(100.0), THROTTLED, 0.0, PARAMS)
    assert rate(state) == pytest.approx(70.0)
    state = observe(state, SubmitSample(0.1), 0.5, PARAMS)  # within the hold-off: no growth
    assert rate(state) == pytest.approx(70.0)
    state = observe(state, SubmitSample(0.1), 3.0, PARAMS)  # 2 s healthy after the hold-off
    assert rate(state) == pytest.approx(80.0)  # + 5% of base per second
    for t in range(4, 20):
        state = observe(state, SubmitSample(0.1), float(t), PARAMS)
    assert rate(state) == 100.0  # capped at the base


def test_a_cut_that_works_is_not_repeated_while_latency_falls() -> None:
    state = observe(AimdState.start(100.0), SubmitSample(1.0), 0.0, PARAMS)
    assert rate(state) == pytest.approx(50.0)
    assert state.hold_until == pytest.approx(1.0)  # one round trip (the latency itself)
    # Still over target after the hold-off, but falling fast: the cut is working, hold the rate.
    for i in range(1, 20):
        state = observe(state, SubmitSample(0.6), 1.0 + i * 0.01, PARAMS)
    assert state.latency_ewma_s is not None and state.latency_ewma_s < 0.95
    assert rate(state) == pytest.approx(50.0)
    # Flat latency over target a round trip later: not working enough, cut again.
    for i in range(200):
        state = observe(state, SubmitSample(0.6), 3.0 + i * 0.01, PARAMS)
    assert rate(state) < 50.0


def test_retune_keeps_the_throttled_fraction() -> None:
    state = observe(AimdState.start(100.0), THROTTLED, 0.0, PARAMS)
    state = retune(state, 200.0)
    assert state.base_rate == 200.0
    assert rate(state) == pytest.approx(140.0)


def test_invalid_parameters_are_refused() -> None:
    with pytest.raises(ValueError):
        AimdParams(min_decrease_factor=1.0)
    with pytest.raises(ValueError):
        AimdParams(ewma_alpha=0.0)
    with pytest.raises(ValueError):
        AimdState.start(0.0)


# --- closed loop: scheduler + AIMD against a simulated SMSC ------------------------------------


@dataclass
class SimSmsc:
    """Fluid model of an SMSC: serves ``capacity`` parts/s from a queue; latency grows with the
    queue. With ``throttle_at`` it also answers ESME_RTHROTTLED above that many parts per second.
    """

    capacity: float
    base_latency: float = 0.05
    throttle_at: float | None = None
    backlog: float = 0.0
    last: float = 0.0
    accepted: list[float] = field(default_factory=list)

    def submit(self, now: float, parts: int) -> SubmitSample:
        self.backlog = max(0.0, self.backlog - self.capacity * (now - self.last))
        self.last = now
        if self.throttle_at is not None:
            while self.accepted and self.accepted[0] <= now - 1.0:
                self.accepted.pop(0)
            if len(self.accepted) + parts > self.throttle_at:
                return SubmitSample(0.01, StatusCategory.BACKPRESSURE)
            self.accepted.extend([now] * parts)
        self.backlog += parts
        return SubmitSample(self.base_latency + self.backlog / self.capacity)


def _closed_loop(
    smscs: dict[str, SimSmsc],
    base_tps: float,
    offered_pps: float,
    seconds: float,
    change: tuple[float, str, float] | None = None,
    tick: float = 0.01,
) -> tuple[dict[str, list[float]], dict[str, list[tuple[float, float]]], Scheduler]:
    """Drive the scheduler like the agent will: a timer tick offers arrivals, delivers outcomes
    when they are due (after their latency) and polls. Returns release times and
    (time, latency) per route, and the scheduler."""
    config = SchedulerConfig(
        lanes={route: RateLimit(base_tps, burst_s=0.1) for route in smscs},
        adaptive=AimdParams(target_latency_s=0.5),
    )
    scheduler = Scheduler(config, 0.0)
    released: dict[str, list[float]] = {route: [] for route in smscs}
    latencies: dict[str, list[tuple[float, float]]] = {route: [] for route in smscs}
    outcomes: list[tuple[float, int, str, SubmitSample]] = []
    seq = 0
    carry = 0.0
    for step in range(int(seconds / tick)):
        now = step * tick
        if change is not None and now >= change[0]:
            smscs[change[1]].capacity = change[2]
            if smscs[change[1]].throttle_at is not None:
                smscs[change[1]].throttle_at = change[2]
            change = None
        carry += offered_pps * tick
        while carry >= 1:
            carry -= 1
            for route in smscs:
                seq += 1
                scheduler.offer(
                    Item(str(seq), "t", Tier.PREMIUM, route, f"+{seq}", 1, now), now
                )
        while outcomes and outcomes[0][0] <= now:
            _, _, route, sample = heapq.heappop(outcomes)
            scheduler.observe(route, sample, now)
        for rel in scheduler.poll(now).released:
            route = rel.item.route_id
            sample = smscs[route].submit(now, rel.item.parts)
            released[route].append(now)
            latencies[route].append((now, sample.latency_s))
            seq += 1
            heapq.heappush(outcomes, (now + sample.latency_s, seq, route, sample))
    return released, latencies, scheduler


def _rate(times: list[float], start: float, end: float) -> float:
    return sum(1 for t in times if start <= t < end) / (end - start)


@pytest.mark.slow
def test_aimd_converges_down_under_latency_and_recovers() -> None:
    smscs = {"slow": SimSmsc(capacity=100.0), "fast": SimSmsc(capacity=1000.0)}
    released, latencies, scheduler = _closed_loop(
        smscs, base_tps=200.0, offered_pps=250.0, seconds=90.0, change=(45.0, "slow", 400.0)
    )
    # Saturated phase: the slow route's rate fell to about its SMSC's capacity, latency bounded.
    slow_rate = _rate(released["slow"], 20.0, 45.0)
    assert 0.5 * 100.0 <= slow_rate <= 1.05 * 100.0
    late = [lat for t, lat in latencies["slow"] if 20.0 <= t < 45.0]
    assert sum(late) / len(late) < 2 * 0.5
    # The other route on the same scheduler was unaffected: its configured rate, within 5%.
    assert _rate(released["fast"], 10.0, 45.0) == pytest.approx(200.0, rel=0.05)
    # Capacity restored: the rate recovered to the configured TPS.
    state = scheduler.adaptive_state("slow")
    assert state is not None and rate(state) == pytest.approx(200.0)
    assert _rate(released["slow"], 80.0, 90.0) == pytest.approx(200.0, rel=0.05)


@pytest.mark.slow
def test_aimd_converges_under_throttling_errors() -> None:
    smscs = {"r": SimSmsc(capacity=10_000.0, throttle_at=120.0)}
    released, _, scheduler = _closed_loop(smscs, base_tps=300.0, offered_pps=350.0, seconds=60.0)
    rate_late = _rate(released["r"], 30.0, 60.0)
    assert 0.5 * 120.0 <= rate_late <= 1.05 * 120.0
    state = scheduler.adaptive_state("r")
    assert state is not None and state.decreases >= 3
    assert rate(state) < 300.0
