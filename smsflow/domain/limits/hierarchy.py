"""Where each limit applies, and how the global cap is shared among throttle instances.

Placement
---------
* **Router** (``sms.submitted``, keyed by tenant): tenant rate and daily quota. One partition
  sees all of a tenant's traffic, so both are exact. :func:`router_config`.
* **Throttle** (``sms.routed``, keyed by route): route TPS (with headroom, tiers and AIMD) and
  per-destination anti-burst. A route — and so every number it serves — lives on one partition,
  so both are exact. The global cap is the only limit no single partition sees:
  :func:`throttle_config` gives the instance its share of it.

Global share arithmetic
-----------------------
``P`` partitions of ``sms.routed``, instance ``i`` owns ``o_i`` of them (``Σ o_i = P``), the
platform cap is ``G`` parts/s. Static share: ``s_i = G · o_i / P`` (:func:`global_share`).

* **Safety**: ``Σ s_i = G``, so the platform never exceeds ``G`` beyond bursts: over any window
  ``W`` the total is at most ``G·W + G·burst_s`` (each instance's bucket holds ``s_i·burst_s``).
  During a rebalance an old and a new owner may both hold a partition's share for up to the
  session timeout: at most ``G · moved/P`` extra for that time.
* **Efficiency (the error)**: with demand ``D_i`` per instance, the platform carries
  ``Σ min(D_i, s_i)`` instead of ``min(G, Σ D_i)``. The shortfall is at most
  ``Σ_i max(0, s_i - D_i)``, the share left unused by instances with less demand than share;
  at worst ``G · (1 - o_j/P)``, when all demand sits on one instance ``j``, which gets only its
  own share. Skewed route load is the normal case (a few hot routes), so static shares alone can
  waste much of ``G``.

Borrowing (:func:`borrow_shares`): every instance periodically publishes its demand (arrival
rate plus backlog to drain, :func:`demand_pps`); every instance computes the *same* allocation
from the same published demands: each keeps ``min(D_i, s_i)`` (never less than
``floor_fraction · s_i``, so an idle instance can still notice new traffic), and the spare is
water-filled to instances that want more, weighted by ``o_i``; what nobody wants goes back in
proportion to ``o_i``. The allocation always sums to exactly ``G``. Apply decreases at once and
increases one publication period later, so instances switching at slightly different times never
add up to more than ``G``; the remaining error is the demand measured one period ago.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from smsflow.domain.config_view import PlatformView, RouteView, TenantView
from smsflow.domain.limits.aimd import AimdParams
from smsflow.domain.limits.scheduler import DestinationLimit, RateLimit, SchedulerConfig
from smsflow.domain.limits.tiers import OffPeak, TierPolicy, parse_hhmm
from smsflow.domain.traffic import Tier

__all__ = [
    "DESTINATION_WINDOW_S",
    "ROUTE_BURST_S",
    "borrow_shares",
    "demand_pps",
    "global_share",
    "route_limit",
    "router_config",
    "tenant_limit",
    "throttle_config",
    "tier_policy",
]

#: A route may burst this many seconds' worth of its rate (as the walking-skeleton throttle did).
ROUTE_BURST_S = 1.0
#: ``per_destination_per_minute`` is a sliding one-minute window.
DESTINATION_WINDOW_S = 60.0


def global_share(global_pps: float, owned: int, total: int) -> float:
    """This instance's share of the platform cap: ``global_pps * owned / total``.

    >>> global_share(1000.0, owned=3, total=12)
    250.0
    """
    if total <= 0 or not 0 <= owned <= total:
        raise ValueError(f"need 0 <= owned <= total and total > 0, got {owned}/{total}")
    if not (global_pps > 0 and math.isfinite(global_pps)):
        raise ValueError("global_pps must be finite and > 0")
    return global_pps * owned / total


def demand_pps(arrival_pps: float, backlog_parts: float, drain_horizon_s: float = 10.0) -> float:
    """An instance's demand to publish: what arrives plus what it needs to drain its backlog."""
    if drain_horizon_s <= 0:
        raise ValueError("drain_horizon_s must be > 0")
    return max(0.0, arrival_pps) + max(0.0, backlog_parts) / drain_horizon_s


def borrow_shares(
    global_pps: float,
    owned: Mapping[str, int],
    demand: Mapping[str, float],
    floor_fraction: float = 0.1,
) -> dict[str, float]:
    """Shares of ``global_pps`` by demand (see module docstring); they sum to ``global_pps``.

    ``owned``: instance → partitions it owns; ``demand``: instance → parts/s it wants (missing:
    0). Every instance gets at least ``min(demand, static share)`` and ``floor_fraction`` of its
    static share.

    >>> borrow_shares(1000.0, {"a": 1, "b": 1}, {"a": 900.0, "b": 10.0}, floor_fraction=0.1)
    {'a': 925.0, 'b': 75.0}
    """
    total = sum(owned.values())
    if total <= 0 or any(o < 0 for o in owned.values()):
        raise ValueError("owned partition counts must be >= 0 and not all 0")
    if not 0 <= floor_fraction <= 1:
        raise ValueError("floor_fraction must be in [0, 1]")
    base = {i: global_pps * o / total for i, o in owned.items()}
    alloc = {
        i: max(min(max(0.0, demand.get(i, 0.0)), base[i]), floor_fraction * base[i])
        for i in owned
    }
    spare = global_pps - sum(alloc.values())
    wanting = {
        i: demand.get(i, 0.0) - alloc[i]
        for i in owned
        if owned[i] > 0 and demand.get(i, 0.0) - alloc[i] > 0
    }
    while spare > 1e-12 and wanting:
        weight = sum(owned[i] for i in wanting)
        level_step = min(spare / weight, min(want / owned[i] for i, want in wanting.items()))
        for i in list(wanting):
            give = level_step * owned[i]
            alloc[i] += give
            wanting[i] -= give
            if wanting[i] <= 1e-12:
                del wanting[i]
        spare -= level_step * weight
    if spare > 0:
        for i, o in owned.items():
            alloc[i] += spare * o / total
    return alloc


def tenant_limit(tenant: TenantView) -> RateLimit:
    """The router's lane limit for a tenant: its agreed rate, burst ``burst`` parts (or 1 s)."""
    burst_s = 1.0 if tenant.burst is None else tenant.burst / tenant.rate_limit_pps
    return RateLimit(pps=tenant.rate_limit_pps, burst_s=burst_s)


def route_limit(route: RouteView) -> RateLimit:
    """The throttle's lane limit for a route.

    Headroom is capacity only Premium may use, so a route that does not carry Premium has none.
    """
    headroom = route.headroom if Tier.PREMIUM in route.tiers else 0.0
    return RateLimit(
        pps=route.tps,
        burst_s=ROUTE_BURST_S,
        headroom=headroom,
        target_latency_s=route.target_latency_ms / 1000.0,
    )


def tier_policy(config: PlatformView) -> TierPolicy:
    limits = config.limits
    off_peak = None
    if limits.economy_off_peak:
        off_peak = OffPeak(
            tuple((parse_hhmm(w.start), parse_hhmm(w.end)) for w in limits.economy_off_peak),
            utc_offset_s=limits.off_peak_utc_offset_minutes * 60.0,
        )
    return TierPolicy(
        min_share={
            Tier.STANDARD: limits.standard_min_share,
            Tier.ECONOMY: limits.economy_min_share,
        },
        economy_off_peak=off_peak,
    )


def throttle_config(
    config: PlatformView,
    owned_partitions: int,
    total_partitions: int,
    global_pps_share: float | None = None,
) -> SchedulerConfig:
    """The throttle instance's limits: routes, destinations, tiers, AIMD and its global share.

    ``global_pps_share`` overrides the static share (e.g. from :func:`borrow_shares`).
    """
    limits = config.limits
    global_limit = None
    if limits.global_pps is not None and owned_partitions > 0:
        share = global_pps_share
        if share is None:
            share = global_share(limits.global_pps, owned_partitions, total_partitions)
        if share > 0:
            global_limit = RateLimit(pps=share)
    destination = None
    if limits.per_destination_per_minute is not None:
        destination = DestinationLimit(limits.per_destination_per_minute, DESTINATION_WINDOW_S)
    a = limits.adaptive
    adaptive = None
    if a.enabled:
        adaptive = AimdParams(
            ewma_alpha=a.ewma_alpha,
            min_decrease_factor=a.min_decrease_factor,
            backpressure_factor=a.backpressure_factor,
            floor_fraction=a.floor_fraction,
            increase_fraction_per_s=a.increase_fraction_per_s,
            min_decrease_interval_s=a.min_decrease_interval_s,
        )
    return SchedulerConfig(
        lane_by="route",
        lanes={route.id: route_limit(route) for route in config.routes},
        global_limit=global_limit,
        destination=destination,
        tiers=tier_policy(config),
        adaptive=adaptive,
    )


def router_config(config: PlatformView) -> SchedulerConfig:
    """The router's limits: one lane per tenant at its agreed rate, and daily quotas.

    No tier policy here: a tenant has one tier, and Economy holding happens at the throttle.
    """
    return SchedulerConfig(
        lane_by="tenant",
        lanes={tenant.id: tenant_limit(tenant) for tenant in config.tenants},
        tiers=TierPolicy(min_share={}),
        daily_quota={
            tenant.id: tenant.daily_quota
            for tenant in config.tenants
            if tenant.daily_quota is not None
        },
    )
