from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smsflow.config.models import PlatformConfig, Tier
from smsflow.domain.limits.hierarchy import (
    borrow_shares,
    demand_pps,
    global_share,
    route_limit,
    router_config,
    tenant_limit,
    throttle_config,
)
from smsflow.domain.limits.scheduler import Item, RateLimit, Scheduler, SchedulerConfig

CONFIG = PlatformConfig.model_validate(
    {
        "tenants": [
            {"id": "bank", "name": "Bank", "tier": "premium", "rate_limit_pps": 500,
             "daily_quota": 1000},
            {"id": "shop", "name": "Shop", "rate_limit_pps": 100, "burst": 400},
        ],
        "operators": [
            {"id": "op", "name": "Op", "country": "GB", "mcc_mnc": "23430",
             "prefixes": ["+4474"]},
        ],
        "smscs": [
            {"id": "smsc", "host": "127.0.0.1", "port": 2775, "system_id": "s",
             "password": "p", "region": "eu"},
        ],
        "routes": [
            {"id": "direct", "smsc": "smsc", "operators": ["op"], "tps": 200, "cost": 0.03,
             "headroom": 0.3, "target_latency_ms": 250},
            {"id": "bulk", "smsc": "smsc", "operators": ["op"], "tps": 100, "cost": 0.01,
             "tiers": ["economy"]},
        ],
        "limits": {
            "global_pps": 1200,
            "per_destination_per_minute": 5,
            "economy_off_peak": [{"start": "22:00", "end": "06:00"}],
            "off_peak_utc_offset_minutes": 60,
            "adaptive": {"floor_fraction": 0.1},
        },
    }
)


def test_static_share_is_global_times_owned_over_total() -> None:
    assert global_share(1200.0, owned=3, total=12) == 300.0
    assert global_share(1200.0, owned=0, total=12) == 0.0
    with pytest.raises(ValueError):
        global_share(1200.0, owned=13, total=12)


def test_static_shares_sum_to_the_cap_and_skew_wastes_it() -> None:
    owned = {"a": 5, "b": 4, "c": 3}
    shares = {i: global_share(1200.0, o, 12) for i, o in owned.items()}
    assert sum(shares.values()) == pytest.approx(1200.0)
    # All demand on "c": the platform carries only c's share: the documented worst case.
    demand = {"a": 0.0, "b": 0.0, "c": 5000.0}
    carried = sum(min(demand[i], shares[i]) for i in owned)
    assert carried == pytest.approx(1200.0 * (1 - 9 / 12))


def test_borrowing_moves_unused_share_to_where_the_demand_is() -> None:
    shares = borrow_shares(1200.0, {"a": 5, "b": 4, "c": 3}, {"a": 0.0, "b": 0.0, "c": 5000.0})
    assert sum(shares.values()) == pytest.approx(1200.0)
    # a and b keep their floor (10% of their static share) to notice new traffic.
    assert shares["a"] == pytest.approx(50.0)
    assert shares["b"] == pytest.approx(40.0)
    assert shares["c"] == pytest.approx(1110.0)


def test_demand_counts_arrivals_and_backlog() -> None:
    assert demand_pps(100.0, backlog_parts=500.0, drain_horizon_s=10.0) == 150.0


@given(
    owned=st.dictionaries(st.sampled_from("abcdef"), st.integers(0, 8), min_size=1).filter(
        lambda o: sum(o.values()) > 0
    ),
    demand=st.dictionaries(st.sampled_from("abcdef"), st.floats(0.0, 5000.0)),
    cap=st.floats(1.0, 10_000.0),
    floor=st.floats(0.0, 1.0),
)
def test_borrowed_shares_sum_to_the_cap_and_keep_what_is_needed(
    owned: dict[str, int], demand: dict[str, float], cap: float, floor: float
) -> None:
    shares = borrow_shares(cap, owned, demand, floor_fraction=floor)
    assert set(shares) == set(owned)
    assert sum(shares.values()) == pytest.approx(cap, rel=1e-9)
    total = sum(owned.values())
    for i, o in owned.items():
        static = cap * o / total
        assert shares[i] >= min(demand.get(i, 0.0), static) - 1e-6 * cap
        assert shares[i] >= floor * static - 1e-6 * cap


def test_limits_from_config() -> None:
    direct = route_limit(CONFIG.routes[0])
    assert direct == RateLimit(pps=200.0, burst_s=1.0, headroom=0.3, target_latency_s=0.25)
    # A route without Premium has no headroom: nobody could use it.
    assert route_limit(CONFIG.routes[1]).headroom == 0.0
    assert tenant_limit(CONFIG.tenants[0]).burst == 500.0
    assert tenant_limit(CONFIG.tenants[1]).burst == 400.0


def test_throttle_config_places_route_destination_global_and_tiers() -> None:
    config = throttle_config(CONFIG, owned_partitions=3, total_partitions=12)
    assert config.lane_by == "route"
    assert set(config.lanes) == {"direct", "bulk"}
    assert config.global_limit is not None and config.global_limit.pps == 300.0
    assert config.destination is not None and config.destination.parts == 5
    assert config.destination.window_s == 60.0
    assert config.adaptive is not None and config.adaptive.floor_fraction == 0.1
    off_peak = config.tiers.economy_off_peak
    assert off_peak is not None and off_peak.utc_offset_s == 3600.0
    assert config.tiers.min_share == {Tier.STANDARD: 0.10, Tier.ECONOMY: 0.05}
    assert not config.daily_quota  # quotas are the router's
    borrowed = throttle_config(CONFIG, 3, 12, global_pps_share=900.0)
    assert borrowed.global_limit is not None and borrowed.global_limit.pps == 900.0


def test_router_config_places_tenant_rates_and_quotas() -> None:
    config = router_config(CONFIG)
    assert config.lane_by == "tenant"
    assert config.lanes["bank"].pps == 500.0
    assert dict(config.daily_quota) == {"bank": 1000}
    assert config.global_limit is None and config.destination is None
    assert config.adaptive is None


def test_defaults_add_no_new_limit() -> None:
    bare = PlatformConfig()
    config = throttle_config(bare, 1, 1)
    assert config.global_limit is None and config.destination is None
    assert config.tiers.economy_off_peak is None


def test_lanes_take_turns_at_a_binding_global_cap() -> None:
    """A lane of 10-part messages is not starved by a lane of 1-part messages."""
    config = SchedulerConfig(
        lanes={"small": RateLimit(1000.0), "big": RateLimit(1000.0)},
        global_limit=RateLimit(100.0, burst_s=0.2),
    )
    scheduler = Scheduler(config, 0.0)
    for n in range(3000):
        scheduler.offer(Item(f"s{n}", "t", Tier.PREMIUM, "small", f"+1{n}", 1, 0.0), 0.0)
    for n in range(300):
        scheduler.offer(Item(f"b{n}", "t", Tier.PREMIUM, "big", f"+2{n}", 10, 0.0), 0.0)
    released = []
    now: float | None = 0.0
    while now is not None and now <= 30.0:
        result = scheduler.poll(now)
        released.extend(result.released)
        now = result.next_wake_at
    in_window = [r for r in released if 10.0 <= r.released_at < 30.0]
    parts = sum(r.item.parts for r in in_window)
    assert parts == pytest.approx(100.0 * 20, rel=0.05)
    big = sum(r.item.parts for r in in_window if r.item.route_id == "big")
    assert big >= 0.5 * parts  # turns are per message: the big lane gets most of the parts
