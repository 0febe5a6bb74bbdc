"""Property tests of the scheduler in simulated time: limits hold over every window, nothing
offered is lost, commit offsets never pass a held record."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smsflow.config.models import Tier
from smsflow.domain.limits.aimd import AimdParams, SubmitSample
from smsflow.domain.limits.scheduler import (
    DestinationLimit,
    Item,
    RateLimit,
    Released,
    Scheduler,
    SchedulerConfig,
)
from smsflow.domain.limits.tiers import OffPeak, TierPolicy, in_off_peak
from smsflow.domain.smpp_status import StatusCategory

ROUTES = ("r1", "r2", "r3")
SLACK = 1e-3  # parts: float round-off at epoch-sized times


@dataclass(frozen=True)
class Scenario:
    config: SchedulerConfig
    start: float
    arrivals: list[tuple[float, Item]]


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    start = draw(st.sampled_from([0.0, 1_700_000_000.0]))
    lanes = {
        route: RateLimit(
            pps=draw(st.floats(1.0, 200.0)),
            burst_s=draw(st.floats(0.05, 2.0)),
            headroom=draw(st.sampled_from([0.0, 0.2, 0.3])),
        )
        for route in draw(st.lists(st.sampled_from(ROUTES), min_size=1, unique=True))
    }
    global_limit = draw(
        st.none() | st.builds(RateLimit, st.floats(2.0, 300.0), st.floats(0.1, 1.0))
    )
    destination = draw(
        st.none() | st.builds(DestinationLimit, st.integers(1, 5), st.floats(1.0, 30.0))
    )
    off_peak = draw(
        st.none()
        | st.builds(
            lambda a, b: OffPeak(((a * 3600.0, b * 3600.0),)) if a != b else None,
            st.integers(0, 23),
            st.integers(0, 23),
        )
    )
    config = SchedulerConfig(
        lanes=lanes,
        global_limit=global_limit,
        destination=destination,
        tiers=TierPolicy(economy_off_peak=off_peak, quantum_parts=draw(st.integers(1, 10))),
    )
    rows = draw(
        st.lists(
            st.tuples(
                st.floats(0.0, 20.0),
                st.sampled_from(ROUTES),
                st.sampled_from(list(Tier)),
                st.sampled_from(["a", "b", "c"]),
                st.sampled_from(["+1", "+2", "+3", "+4", "+5"]),
                st.integers(1, 4),
                st.integers(0, 1),
            ),
            max_size=120,
        )
    )
    rows.sort(key=lambda r: r[0])
    offsets: dict[int, int] = defaultdict(int)
    arrivals = []
    for n, (t, route, tier, tenant, number, parts, partition) in enumerate(rows):
        at = start + t
        offset = offsets[partition]
        offsets[partition] += 1
        arrivals.append(
            (at, Item(f"m{n}", tenant, tier, route, number, parts, at, partition, offset))
        )
    return Scenario(config, start, arrivals)


def _simulate(scenario: Scenario) -> list[Released]:
    scheduler = Scheduler(scenario.config, scenario.start)
    pending = scenario.arrivals
    held: dict[int, set[int]] = defaultdict(set)
    out: list[Released] = []
    now, i, wake = scenario.start, 0, None
    for _ in range(200_000):
        upcoming = pending[i][0] if i < len(pending) else None
        candidates = [t for t in (upcoming, wake) if t is not None]
        if not candidates:
            break
        assert min(candidates) >= now  # time only moves forward
        now = min(candidates)
        while i < len(pending) and pending[i][0] <= now:
            item = pending[i][1]
            assert scheduler.offer(item, now) is None
            held[item.partition].add(item.offset)
            i += 1
        released, wake = scheduler.poll(now)
        assert wake is None or wake > now
        for r in released:
            held[r.item.partition].discard(r.item.offset)
        out.extend(released)
        # Commit safety: the lowest held offset is exactly the oldest unreleased record.
        for partition, offsets in held.items():
            assert scheduler.lowest_held(partition) == (min(offsets) if offsets else None)
    else:
        raise AssertionError("did not settle")
    assert scheduler.queued == 0
    return out


def _assert_rate(releases: list[tuple[float, int]], rate: float, burst: float) -> None:
    """Parts released in any [t_i, t_j] <= burst + rate * (t_j - t_i) (+ a big message's debt)."""
    overshoot = max(0.0, max((p for _, p in releases), default=0) - burst)
    for i, (start, _) in enumerate(releases):
        used = 0
        for end, parts in releases[i:]:
            used += parts
            assert used <= burst + rate * (end - start) + overshoot + SLACK, (start, end, used)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(scenarios())
def test_every_limit_holds_and_nothing_is_lost(scenario: Scenario) -> None:
    released = _simulate(scenario)
    config = scenario.config

    # Nothing lost, nothing duplicated: every offered item is released exactly once.
    offered = sorted(item.message_id for _, item in scenario.arrivals)
    assert sorted(r.item.message_id for r in released) == offered
    assert all(r.released_at >= r.item.enqueued_at for r in released)

    # Lane (route) rate, over every window.
    for route, limit in config.lanes.items():
        lane = [(r.released_at, r.item.parts) for r in released if r.item.route_id == route]
        _assert_rate(lane, limit.pps, limit.burst)
        if limit.headroom > 0:  # Standard + Economy stay within (1 - headroom)
            keep = 1 - limit.headroom
            shared = [
                (r.released_at, r.item.parts)
                for r in released
                if r.item.route_id == route and r.item.tier is not Tier.PREMIUM
            ]
            _assert_rate(shared, keep * limit.pps, keep * limit.burst)

    # Global share, over every window, across all lanes.
    if config.global_limit is not None:
        g = config.global_limit
        _assert_rate([(r.released_at, r.item.parts) for r in released], g.pps, g.burst)

    # Destination: at most `parts` per number in any window (a bigger message alone).
    if config.destination is not None:
        d = config.destination
        by_number: dict[str, list[Released]] = defaultdict(list)
        for r in released:
            by_number[r.item.destination].append(r)
        for rows in by_number.values():
            for r in rows:
                # an entry counts while at + window_s > now (the limiter's own comparison)
                window = [x for x in rows
                          if x.released_at <= r.released_at < x.released_at + d.window_s]
                used = sum(x.item.parts for x in window)
                assert used <= d.parts or (len(window) == 1 and used == r.item.parts)

    # Economy only inside off-peak windows.
    off_peak = config.tiers.economy_off_peak
    if off_peak is not None:
        for r in released:
            if r.item.tier is Tier.ECONOMY:
                assert in_off_peak(off_peak, r.released_at)

    # Per route, number, tenant and tier, order is kept (the FIFO the scheduler promises).
    seen: dict[tuple[str, str, str, Tier], int] = {}
    for r in sorted(released, key=lambda r: r.released_at):
        key = (r.item.route_id, r.item.destination, r.item.tenant_id, r.item.tier)
        n = int(r.item.message_id[1:])
        assert seen.get(key, -1) < n
        seen[key] = n


# --- random operations: live reconfiguration, AIMD feedback and revocation mixed with traffic ---


@dataclass(frozen=True)
class Offer:
    route: str
    tier: Tier
    number: str
    parts: int
    partition: int


@dataclass(frozen=True)
class Advance:
    seconds: float


@dataclass(frozen=True)
class Retune:
    route: str
    pps: float
    per_number: int | None


@dataclass(frozen=True)
class Feedback:
    route: str
    latency_s: float
    throttled: bool


@dataclass(frozen=True)
class Revoke:
    partition: int


Op = Offer | Advance | Retune | Feedback | Revoke

OPS: st.SearchStrategy[Op] = st.one_of(
    st.builds(Offer, st.sampled_from(ROUTES), st.sampled_from(list(Tier)),
              st.sampled_from(["+1", "+2", "+3"]), st.integers(1, 3), st.integers(0, 2)),
    st.builds(Advance, st.floats(0.0, 5.0)),
    st.builds(Retune, st.sampled_from(ROUTES), st.floats(0.5, 50.0), st.none() | st.integers(1, 4)),
    st.builds(Feedback, st.sampled_from(ROUTES), st.floats(0.0, 3.0), st.booleans()),
    st.builds(Revoke, st.integers(0, 2)),
)


def _config(rates: dict[str, float], per_number: int | None) -> SchedulerConfig:
    return SchedulerConfig(
        lanes={route: RateLimit(pps, burst_s=0.5, headroom=0.2) for route, pps in rates.items()},
        global_limit=RateLimit(60.0),
        destination=None if per_number is None else DestinationLimit(per_number, 10.0),
        adaptive=AimdParams(target_latency_s=0.5),
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(OPS, max_size=80), st.sampled_from([0.0, 1_700_000_000.0]))
def test_random_operations_never_lose_or_duplicate(ops: list[Op], t0: float) -> None:
    rates = {"r1": 10.0, "r2": 5.0}
    per_number: int | None = 2
    scheduler = Scheduler(_config(rates, per_number), t0)
    now = t0
    offered: dict[str, Item] = {}
    done: set[str] = set()
    offsets: dict[int, int] = defaultdict(int)

    def poll() -> None:
        released, wake = scheduler.poll(now)
        assert wake is None or wake > now
        for r in released:
            assert r.item.message_id in offered and r.item.message_id not in done
            done.add(r.item.message_id)

    for n, op in enumerate(ops):
        if isinstance(op, Offer):
            offset = offsets[op.partition]
            offsets[op.partition] += 1
            item = Item(f"m{n}", "t", op.tier, op.route, op.number, op.parts, now, op.partition,
                        offset)
            assert scheduler.offer(item, now) is None
            offered[item.message_id] = item
        elif isinstance(op, Advance):
            now += op.seconds
        elif isinstance(op, Retune):
            rates[op.route] = op.pps
            per_number = op.per_number
            scheduler.reconfigure(_config(rates, per_number), now)
        elif isinstance(op, Feedback):
            category = StatusCategory.BACKPRESSURE if op.throttled else StatusCategory.OK
            scheduler.observe(op.route, SubmitSample(op.latency_s, category), now)
        else:
            for item in scheduler.revoke([op.partition], now):
                assert item.message_id not in done  # revoked, never also released
                done.add(item.message_id)
        poll()
        unfinished = [i for i in offered.values() if i.message_id not in done]
        for partition in range(3):
            held = [i.offset for i in unfinished if i.partition == partition]
            assert scheduler.lowest_held(partition) == (min(held) if held else None)
        assert scheduler.queued == len(unfinished)

    # Everything still queued is eventually released.
    for _ in range(100_000):
        wake = scheduler.next_wake_at()
        if wake is None:
            break
        now = max(now, wake)
        poll()
    assert done == set(offered)
    assert scheduler.queued == 0
