"""Scheduler behaviour in simulated time: every test drives ``offer``/``poll`` with explicit
``now`` values (no sleeping, no wall clock)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import pytest

from smsflow.config.models import Tier
from smsflow.domain.limits.aimd import AimdParams, SubmitSample
from smsflow.domain.limits.quota import QUOTA_EXCEEDED, QuotaUsage
from smsflow.domain.limits.scheduler import (
    DestinationLimit,
    Item,
    RateLimit,
    Rejected,
    Released,
    Scheduler,
    SchedulerConfig,
)
from smsflow.domain.limits.tiers import OffPeak, TierPolicy
from smsflow.domain.smpp_status import StatusCategory

P, S, E = Tier.PREMIUM, Tier.STANDARD, Tier.ECONOMY
_ids = itertools.count()


def item(
    route: str = "r",
    tier: Tier = P,
    tenant: str = "t",
    destination: str | None = None,
    parts: int = 1,
    at: float = 0.0,
    partition: int = 0,
    offset: int = -1,
) -> Item:
    n = next(_ids)
    return Item(
        message_id=f"m{n}",
        tenant_id=tenant,
        tier=tier,
        route_id=route,
        destination=destination or f"+44{n:09d}",
        parts=parts,
        enqueued_at=at,
        partition=partition,
        offset=offset,
    )


def run(
    scheduler: Scheduler,
    arrivals: Iterable[tuple[float, Item]] = (),
    until: float = 1e12,
    start: float = 0.0,
) -> list[Released]:
    """Event-driven agent: offer each arrival at its time, poll at arrivals and wake-ups."""
    pending = sorted(arrivals, key=lambda a: a[0])
    out: list[Released] = []
    now, i, wake = start, 0, scheduler.next_wake_at()
    for _ in range(10_000_000):
        t_arrival = pending[i][0] if i < len(pending) else None
        candidates = [t for t in (t_arrival, wake) if t is not None]
        if not candidates or min(candidates) > until:
            return out
        now = max(now, min(candidates))
        while i < len(pending) and pending[i][0] <= now:
            scheduler.offer(pending[i][1], now)
            i += 1
        released, wake = scheduler.poll(now)
        out.extend(released)
    raise AssertionError("simulation did not settle")


def steady(
    rate: float, seconds: float, make: object = None, start: float = 0.0, **kw: object
) -> list[tuple[float, Item]]:
    """Arrivals at a steady rate."""
    n = round(rate * seconds)
    return [
        (start + k / rate, item(at=start + k / rate, **kw))  # type: ignore[arg-type]
        for k in range(n)
    ]


def parts_in(released: list[Released], start: float, end: float, route: str | None = None) -> int:
    return sum(
        r.item.parts
        for r in released
        if start <= r.released_at < end and (route is None or r.item.route_id == route)
    )


# --- each level enforces its rate within 5% over 10 s windows ----------------------------


def test_route_rate_within_5_percent_over_10s_windows() -> None:
    scheduler = Scheduler(SchedulerConfig(lanes={"r": RateLimit(50.0)}), 0.0)
    released = run(scheduler, steady(100.0, 60.0, route="r"), until=60.0)
    for start in range(10, 50, 10):  # steady state
        assert parts_in(released, start, start + 10) == pytest.approx(500, rel=0.05)
    # the first window also carries the initial burst (one second's worth), and no more
    assert 500 <= parts_in(released, 0, 10) <= 500 + 50


def test_multi_part_messages_are_counted_in_parts() -> None:
    scheduler = Scheduler(SchedulerConfig(lanes={"r": RateLimit(100.0)}), 0.0)
    released = run(scheduler, steady(100.0, 40.0, route="r", parts=3), until=40.0)
    for start in range(10, 40, 10):
        assert parts_in(released, start, start + 10) == pytest.approx(1000, rel=0.05)


def test_headroom_caps_standard_and_economy_but_not_premium() -> None:
    config = SchedulerConfig(lanes={"r": RateLimit(40.0, headroom=0.25)})
    standard = run(Scheduler(config, 0.0), steady(80.0, 30.0, route="r", tier=S), until=30.0)
    premium = run(Scheduler(config, 0.0), steady(80.0, 30.0, route="r", tier=P), until=30.0)
    for start in (10, 20):
        assert parts_in(standard, start, start + 10) == pytest.approx(300, rel=0.05)
        assert parts_in(premium, start, start + 10) == pytest.approx(400, rel=0.05)


def test_premium_burst_uses_the_headroom_without_waiting() -> None:
    scheduler = Scheduler(SchedulerConfig(lanes={"r": RateLimit(100.0, headroom=0.2)}), 0.0)
    # Standard saturates its 80 pps; a premium message arrives in the middle of it.
    urgent = item(route="r", tier=P, at=15.0)
    released = run(scheduler, [*steady(150.0, 30.0, route="r", tier=S), (15.0, urgent)], until=30)
    (premium,) = [r for r in released if r.item is urgent]
    assert premium.waited_s < 0.02


def test_premium_is_not_stuck_behind_a_large_lower_tier_message() -> None:
    scheduler = Scheduler(SchedulerConfig(lanes={"r": RateLimit(10.0)}), 0.0)
    bulk = [(0.0, item(route="r", tier=S, parts=10)) for _ in range(5)]
    urgent = item(route="r", tier=P, at=0.2)
    released = run(scheduler, [*bulk, (0.2, urgent)], until=10.0)
    (premium,) = [r for r in released if r.item is urgent]
    assert premium.released_at == 0.2  # 2 tokens had accrued: enough for it, not for the bulk


def test_tenant_rate_at_the_router_within_5_percent() -> None:
    config = SchedulerConfig(
        lane_by="tenant", lanes={"a": RateLimit(50.0), "b": RateLimit(20.0)},
        tiers=TierPolicy(min_share={}),
    )
    scheduler = Scheduler(config, 0.0)
    arrivals = steady(200.0, 40.0, tenant="a", route="r1") + steady(100.0, 40.0, tenant="b")
    released = run(scheduler, arrivals, until=40.0)
    for start in (10, 20, 30):
        window = [r.item.tenant_id for r in released if start <= r.released_at < start + 10]
        assert window.count("a") == pytest.approx(500, rel=0.05)
        assert window.count("b") == pytest.approx(200, rel=0.05)


def test_global_share_caps_all_routes_together() -> None:
    config = SchedulerConfig(
        lanes={"r1": RateLimit(100.0), "r2": RateLimit(100.0)}, global_limit=RateLimit(80.0)
    )
    scheduler = Scheduler(config, 0.0)
    arrivals = steady(100.0, 40.0, route="r1") + steady(100.0, 40.0, route="r2")
    released = run(scheduler, arrivals, until=40.0)
    for start in (10, 20, 30):
        assert parts_in(released, start, start + 10) == pytest.approx(800, rel=0.05)
        # shared fairly between the routes (they take turns), neither starved
        assert parts_in(released, start, start + 10, "r1") == pytest.approx(400, rel=0.05)


def test_destination_anti_burst_per_number_per_minute() -> None:
    config = SchedulerConfig(lanes={"r": RateLimit(1000.0)}, destination=DestinationLimit(6))
    scheduler = Scheduler(config, 0.0)
    hot = steady(2.0, 600.0, route="r", destination="+447700900123")
    released = run(scheduler, hot, until=600.0)
    times = [r.released_at for r in released]
    for i, t in enumerate(times):  # never more than 6 in any sliding minute
        assert sum(1 for u in times[: i + 1] if u > t - 60.0) <= 6
    assert len([t for t in times if 60 <= t < 600]) == pytest.approx(6 * 9, rel=0.05)


# --- no head-of-line blocking ----------------------------------------------------------------


def test_a_saturated_route_does_not_delay_another_route() -> None:
    config = SchedulerConfig(lanes={"busy": RateLimit(10.0), "quiet": RateLimit(100.0)})
    scheduler = Scheduler(config, 0.0)
    backlog = [(0.0, item(route="busy")) for _ in range(10_000)]  # 1000 s of backlog
    quiet = steady(5.0, 20.0, route="quiet")
    released = run(scheduler, backlog + quiet, until=20.0)
    quiet_released = [r for r in released if r.item.route_id == "quiet"]
    assert len(quiet_released) == len(quiet)
    assert max(r.waited_s for r in quiet_released) == 0.0
    assert parts_in(released, 0, 20, "busy") == pytest.approx(10 + 10 * 20, abs=1)


def test_a_number_over_its_limit_does_not_block_the_route() -> None:
    config = SchedulerConfig(lanes={"r": RateLimit(100.0)}, destination=DestinationLimit(1))
    scheduler = Scheduler(config, 0.0)
    spam = [(0.0, item(route="r", destination="+441")) for _ in range(5)]
    others = [(0.5, item(route="r", destination=f"+44{k}", at=0.5)) for k in range(2, 12)]
    released = run(scheduler, spam + others, until=1000.0)
    other_waits = [r.waited_s for r in released if r.item.destination != "+441"]
    assert other_waits == [0.0] * 10
    spam_times = [r.released_at for r in released if r.item.destination == "+441"]
    assert spam_times == [0.0, 60.0, 120.0, 180.0, 240.0]
    spam_ids = [r.item.message_id for r in released if r.item.destination == "+441"]
    assert spam_ids == [i.message_id for _, i in spam]  # per-number order kept


def test_a_bursting_tenant_does_not_queue_another_tenant_of_the_same_tier() -> None:
    scheduler = Scheduler(SchedulerConfig(lanes={"r": RateLimit(100.0)}), 0.0)
    burst = [(0.0, item(route="r", tenant="a")) for _ in range(3000)]
    steady_b = steady(10.0, 20.0, route="r", tenant="b")
    released = run(scheduler, burst + steady_b, until=20.0)
    b = [r for r in released if r.item.tenant_id == "b"]
    assert len(b) == len(steady_b)
    assert max(r.waited_s for r in b) < 0.15  # one DRR turn of A at most


# --- tiers ---------------------------------------------------------------------------------


def test_saturated_route_serves_premium_first_but_economy_keeps_its_minimum_share() -> None:
    config = SchedulerConfig(
        lanes={"r": RateLimit(100.0)},
        tiers=TierPolicy(min_share={S: 0.10, E: 0.05}),
    )
    scheduler = Scheduler(config, 0.0)
    arrivals = [(0.0, item(route="r", tier=tier)) for tier in (E, S, P) for _ in range(3000)]
    released = run(scheduler, arrivals, until=30.0)
    window = [r for r in released if 10 <= r.released_at < 30]
    tiers = [r.item.tier for r in window]
    share = {tier: tiers.count(tier) / len(window) for tier in (P, S, E)}
    assert share[E] == pytest.approx(0.05, abs=0.01)
    assert share[S] == pytest.approx(0.10, abs=0.01)
    assert share[P] == pytest.approx(0.85, abs=0.02)


def test_lower_tiers_take_all_capacity_premium_leaves() -> None:
    config = SchedulerConfig(lanes={"r": RateLimit(100.0)})
    scheduler = Scheduler(config, 0.0)
    arrivals = steady(30.0, 30.0, route="r", tier=P) + [
        (0.0, item(route="r", tier=E)) for _ in range(5000)
    ]
    released = run(scheduler, arrivals, until=30.0)
    assert parts_in(released, 10, 30) == pytest.approx(2000, rel=0.05)
    premium = [r for r in released if r.item.tier is P and r.released_at >= 10]
    assert max(r.waited_s for r in premium) < 0.1


def test_economy_is_held_until_off_peak_and_then_released() -> None:
    night = OffPeak.from_hhmm((("22:00", "06:00"),))
    config = SchedulerConfig(
        lanes={"r": RateLimit(100.0)}, tiers=TierPolicy(economy_off_peak=night)
    )
    noon = 12 * 3600.0
    scheduler = Scheduler(config, noon)
    bulk = [(noon, item(route="r", tier=E, at=noon)) for _ in range(50)]
    other = [(noon, item(route="r", tier=S, at=noon))]
    scheduler_out = run(scheduler, bulk + other, until=noon + 3600, start=noon)
    assert [r.item.tier for r in scheduler_out] == [S]
    assert scheduler.queued == 50
    assert scheduler.next_wake_at() == pytest.approx(22 * 3600.0, abs=1e-3)
    later = run(scheduler, until=23 * 3600.0, start=noon + 3600)
    assert len(later) == 50
    assert min(r.released_at for r in later) == pytest.approx(22 * 3600.0, abs=1e-3)


def test_held_economy_is_withdrawn_oldest_first_and_its_offsets_released() -> None:
    """At a window's end, queued Economy leaves the scheduler (the throttle parks it on
    sms.deferred) instead of pinning its records' offsets until the next window."""
    night = OffPeak.from_hhmm((("22:00", "06:00"),))
    config = SchedulerConfig(
        lanes={"r": RateLimit(1.0)}, tiers=TierPolicy(economy_off_peak=night)
    )
    late = 5 * 3600.0 + 3590.0  # 05:59:50, ten seconds before the window closes
    scheduler = Scheduler(config, late)
    bulk = [item(route="r", tier=E, at=late, partition=0, offset=o) for o in range(100, 130)]
    standard = item(route="r", tier=S, at=late, partition=0, offset=130)
    for one in [*bulk, standard]:
        assert scheduler.offer(one, late) is None
    assert scheduler.withdraw_held(late) == []  # inside the window: nothing is held
    released = run(scheduler, until=6 * 3600.0 + 5, start=late)
    assert released and len(released) < len(bulk)  # 1 part/s: most Economy still queued
    assert scheduler.lowest_held(0) is not None
    after = 6 * 3600.0 + 5
    withdrawn = scheduler.withdraw_held(after)
    sent = {r.item.offset for r in released}
    assert [w.offset for w in withdrawn] == [o for o in range(100, 130) if o not in sent]
    assert all(w.tier is E for w in withdrawn)
    assert scheduler.withdraw_held(after) == []
    rest = run(scheduler, until=after + 60, start=after)
    assert standard.offset in {r.item.offset for r in released + rest}  # Standard unaffected
    assert scheduler.lowest_held(0) is None and scheduler.queued == 0


# --- quota ---------------------------------------------------------------------------------


def test_tenant_past_its_daily_quota_is_rejected_with_quota_exceeded() -> None:
    config = SchedulerConfig(
        lane_by="tenant", lanes={"a": RateLimit(1000.0)}, daily_quota={"a": 10},
        tiers=TierPolicy(min_share={}),
    )
    scheduler = Scheduler(config, 0.0)
    assert scheduler.offer(item(tenant="a", parts=4), 0.0) is None
    assert scheduler.offer(item(tenant="a", parts=6), 1.0) is None
    rejected = scheduler.offer(item(tenant="a", parts=1), 2.0)
    assert isinstance(rejected, Rejected)
    assert rejected.reason_code == QUOTA_EXCEEDED == "QUOTA_EXCEEDED"
    assert scheduler.offer(item(tenant="b", parts=50), 2.0) is None  # no quota configured
    assert scheduler.offer(item(tenant="a", parts=1), 86_400.0) is None  # next UTC day
    assert scheduler.metrics(2.0).limiters["tenant:a"].rejected_messages == 1
    assert len(scheduler.poll(86_400.0).released) == 4


def test_quota_usage_can_be_persisted_and_restored() -> None:
    config = SchedulerConfig(lane_by="tenant", daily_quota={"a": 10})
    first = Scheduler(config, 0.0)
    first.offer(item(tenant="a", parts=8), 0.0)
    usage = first.quota_usage("a")
    assert usage == QuotaUsage(day=0, used=8)
    second = Scheduler(config, 0.0)
    second.restore_quota("a", usage)
    assert isinstance(second.offer(item(tenant="a", parts=3), 1.0), Rejected)


# --- commit safety -------------------------------------------------------------------------


def test_lowest_held_offset_per_partition() -> None:
    config = SchedulerConfig(lanes={"slow": RateLimit(1.0, burst_s=1.0), "fast": RateLimit(100.0)})
    scheduler = Scheduler(config, 0.0)
    assert scheduler.lowest_held(0) is None
    scheduler.offer(item(route="slow", partition=0, offset=10), 0.0)
    scheduler.offer(item(route="slow", partition=0, offset=11), 0.0)
    scheduler.offer(item(route="fast", partition=0, offset=12), 0.0)
    scheduler.offer(item(route="fast", partition=1, offset=7), 0.0)
    released, _ = scheduler.poll(0.0)
    assert {r.item.offset for r in released} == {10, 12, 7}
    assert scheduler.lowest_held(0) == 11  # 11 still waits: commit at most 11
    assert scheduler.lowest_held(1) is None
    assert scheduler.held() == {0: 11}
    scheduler.poll(1.0)
    assert scheduler.lowest_held(0) is None


def test_revoked_partitions_are_dropped() -> None:
    config = SchedulerConfig(lanes={"r": RateLimit(1.0)}, destination=DestinationLimit(1))
    scheduler = Scheduler(config, 0.0)
    for offset in range(5):
        scheduler.offer(item(route="r", partition=offset % 2, offset=offset, destination="+1"), 0.0)
    scheduler.poll(0.0)
    dropped = scheduler.revoke([1], 0.0)
    assert sorted(i.offset for i in dropped) == [1, 3]
    assert scheduler.held() == {0: 2}
    released = run(scheduler, start=0.0)
    assert [r.item.offset for r in released] == [2, 4]


# --- live reconfiguration and adaptive rate ------------------------------------------------


def test_reconfigure_keeps_queues_and_applies_the_new_rate() -> None:
    scheduler = Scheduler(SchedulerConfig(lanes={"r": RateLimit(10.0)}), 0.0)
    backlog = [(0.0, item(route="r")) for _ in range(1000)]
    first = run(scheduler, backlog, until=10.0)
    assert len(first) == pytest.approx(110, abs=1)
    scheduler.reconfigure(SchedulerConfig(lanes={"r": RateLimit(50.0)}), 10.0)
    second = run(scheduler, until=20.0, start=10.0)
    assert len(second) == pytest.approx(500, rel=0.05)  # no new burst: accrued state kept
    assert len(first) + len(second) + scheduler.queued == 1000


def test_a_route_removed_from_config_drains_at_its_last_rate() -> None:
    scheduler = Scheduler(SchedulerConfig(lanes={"r": RateLimit(10.0)}), 0.0)
    backlog = [(0.0, item(route="r")) for _ in range(100)]
    run(scheduler, backlog, until=1.0)
    scheduler.reconfigure(SchedulerConfig(), 1.0)
    released = run(scheduler, start=1.0)
    assert len(released) == 100 - 20
    assert max(r.released_at for r in released) == pytest.approx(9.0)


def test_observe_lowers_only_that_routes_rate() -> None:
    config = SchedulerConfig(
        lanes={"a": RateLimit(100.0), "b": RateLimit(100.0)},
        adaptive=AimdParams(target_latency_s=0.5),
    )
    scheduler = Scheduler(config, 0.0)
    assert scheduler.observe("a", SubmitSample(0.01, StatusCategory.BACKPRESSURE), 0.0) == 70.0
    arrivals = steady(200.0, 10.0, route="a") + steady(200.0, 10.0, route="b")
    released = run(scheduler, arrivals, until=10.0)
    assert parts_in(released, 2, 10, "a") == pytest.approx(70 * 8, rel=0.05)
    assert parts_in(released, 2, 10, "b") == pytest.approx(100 * 8, rel=0.05)
    metrics = scheduler.metrics(10.0)
    assert metrics.adaptive_rate_pps == {"a": 70.0, "b": 100.0}
    assert metrics.limiters["route:a"].rate_pps == 70.0
    assert scheduler.observe("unknown", SubmitSample(5.0), 0.0) is None


# --- metrics ------------------------------------------------------------------------------------


def test_metrics_count_allowed_waiting_and_blocked() -> None:
    config = SchedulerConfig(
        lanes={"r": RateLimit(10.0)}, global_limit=RateLimit(1000.0),
        destination=DestinationLimit(1),
    )
    scheduler = Scheduler(config, 0.0)
    for _ in range(30):
        scheduler.offer(item(route="r"), 0.0)
    scheduler.offer(item(route="r", destination="+1"), 0.0)
    scheduler.offer(item(route="r", destination="+1"), 0.0)
    scheduler.poll(0.0)
    metrics = scheduler.metrics(2.0)
    lane = metrics.limiters["route:r"]
    assert lane.allowed_messages == 10
    assert lane.waiting_messages + metrics.limiters["destination"].waiting_messages == 22
    assert lane.blocked >= 1
    assert metrics.limiters["global"].allowed_parts == 10
    assert metrics.queued_messages == 22
    assert metrics.oldest_wait_s == 2.0
    assert metrics.tracked_destinations >= 1


def test_unconfigured_lane_without_default_is_unlimited_and_dropped_when_idle() -> None:
    scheduler = Scheduler(SchedulerConfig(), 0.0)
    for _ in range(1000):
        scheduler.offer(item(route="new"), 0.0)
    released, wake = scheduler.poll(0.0)
    assert len(released) == 1000 and wake is None
    assert scheduler.metrics(0.0).limiters == {}


def test_default_lane_limit_applies_to_unlisted_lanes() -> None:
    scheduler = Scheduler(SchedulerConfig(default_lane=RateLimit(5.0)), 0.0)
    released = run(scheduler, [(0.0, item(route="x")) for _ in range(20)])
    assert max(r.released_at for r in released) == pytest.approx(3.0)


def test_items_need_at_least_one_part() -> None:
    with pytest.raises(ValueError):
        Scheduler(SchedulerConfig(), 0.0).offer(item(parts=0), 0.0)
