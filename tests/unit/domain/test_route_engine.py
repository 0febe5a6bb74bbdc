"""The route engine (smsflow.domain.route_engine): eligibility, ranking factors, hysteresis,
failover, rejections, and properties over random catalogues. No timing assertions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsflow.config.models import BindClass, MessageType, PlatformConfig, Tier
from smsflow.domain.reasons import REASONS
from smsflow.domain.route_engine import (
    PROFILES,
    Decision,
    HealthReport,
    HysteresisPolicy,
    RouteRejection,
    RouteRequest,
    Snapshot,
    build_catalogue,
    build_snapshot,
    decide,
    explain,
    next_route,
    refresh,
    with_config,
    with_health,
)
from smsflow.domain.route_state import RouteState

NOW = 1_800_000_000.0
UK = "+447401234567"  # gb-ee by prefix
UK_VODAFONE = "+447701234567"  # gb-vodafone
DE = "+4915112345678"  # de-telekom
FR = "+33612345678"  # no FR operator configured

OPERATORS = [
    {"id": "gb-ee", "name": "EE", "country": "GB", "mcc_mnc": "23430", "prefixes": ["+44740"]},
    {"id": "gb-vodafone", "name": "Vodafone UK", "country": "GB", "mcc_mnc": "23415",
     "prefixes": ["+447701"]},
    {"id": "de-telekom", "name": "Telekom DE", "country": "DE", "mcc_mnc": "26201",
     "prefixes": ["+49151"]},
]
SMSCS = [
    {"id": "smsc-lon", "region": "eu-west"},
    {"id": "smsc-lon2", "region": "eu-west"},
    {"id": "smsc-fra", "region": "eu-central"},
    {"id": "smsc-nyc", "region": "us-east"},
]
TENANTS: list[dict[str, Any]] = [
    {"id": "prem", "tier": "premium"},
    {"id": "std", "tier": "standard"},
    {"id": "eco", "tier": "economy"},
    {"id": "frozen", "tier": "standard", "quarantined": True},
]
TIER_TENANT = {Tier.PREMIUM: "prem", Tier.STANDARD: "std", Tier.ECONOMY: "eco"}


def route(route_id: str, **fields: Any) -> dict[str, Any]:
    """A route to gb-ee on smsc-lon, shared binds, all tiers and types; override any field."""
    base: dict[str, Any] = {
        "id": route_id, "smsc": "smsc-lon", "operators": ["gb-ee"], "tps": 100, "cost": 0.03,
        "baseline_score": 0.95, "baseline_latency_ms": 500,
    }
    base.update(fields)
    return base


def config(
    routes: Sequence[dict[str, Any]], tenants: Sequence[dict[str, Any]] = ()
) -> PlatformConfig:
    return PlatformConfig.model_validate({
        "tenants": [
            {"name": t["id"], "rate_limit_pps": 10, **t} for t in (*TENANTS, *tenants)
        ],
        "operators": OPERATORS,
        "smscs": [
            {"host": "127.0.0.1", "port": 2775, "system_id": s["id"], "password": "pw", **s}
            for s in SMSCS
        ],
        "routes": list(routes),
    })


def snapshot(
    routes: Sequence[dict[str, Any]],
    health: Mapping[str, HealthReport] | None = None,
    tenants: Sequence[dict[str, Any]] = (),
    now: float = NOW,
    policy: HysteresisPolicy | None = None,
) -> Snapshot:
    catalogue = build_catalogue(config(routes, tenants), policy=policy or HysteresisPolicy())
    return build_snapshot(catalogue, health or {}, now)


def pick(
    snap: Snapshot,
    tier: Tier = Tier.STANDARD,
    kind: MessageType = MessageType.TRANSACTIONAL,
    to: str = UK,
    now: float = NOW,
    tenant: str | None = None,
) -> str:
    outcome = decide(snap, RouteRequest(tenant or TIER_TENANT[tier], to, kind), now)
    assert isinstance(outcome, Decision), outcome
    return outcome.route_id


ALL_PROFILES = sorted(PROFILES, key=lambda p: (p[0].value, p[1].value))


def healthy(score: float = 0.95, latency_ms: float | None = None) -> HealthReport:
    return HealthReport(RouteState.HEALTHY, score, latency_ms, NOW)


# --- each factor changes the pick when it should ------------------------------------------------


@pytest.mark.parametrize(("tier", "kind"), ALL_PROFILES)
@pytest.mark.parametrize(
    ("better", "worse", "health"),
    [
        pytest.param({"cost": 0.02}, {"cost": 0.03}, {}, id="cost"),
        pytest.param({}, {}, {"a": healthy(0.99), "b": healthy(0.80)}, id="quality"),
        pytest.param({}, {"smsc": "smsc-nyc"}, {}, id="geography"),
        pytest.param({}, {}, {"b": HealthReport(RouteState.DEGRADED, 0.99, 10, NOW),
                              "a": healthy(0.5, 5000)}, id="health-state"),
        pytest.param({"cost": 0.05}, {"cost": 0.01}, {"b": HealthReport(RouteState.DOWN)},
                     id="down-is-skipped"),
        pytest.param({"cost": 0.05}, {"cost": 0.01, "enabled": False}, {}, id="disabled"),
        pytest.param({"cost": 0.05}, {"cost": 0.01, "operators": ["gb-vodafone"]}, {},
                     id="coverage"),
    ],
)
def test_factor_decides_between_otherwise_equal_routes(
    tier: Tier, kind: MessageType, better: dict[str, Any], worse: dict[str, Any],
    health: dict[str, HealthReport],
) -> None:
    # Route ids are chosen so that the id tie-break would pick the worse route.
    snap = snapshot([route("b", **worse), route("a", **better)], health)
    assert pick(snap, tier, kind) == "a"
    swapped = snapshot([route("a", **worse), route("b", **better)],
                       {("b" if k == "a" else "a"): v for k, v in health.items()})
    assert pick(swapped, tier, kind) == "b"


@pytest.mark.parametrize(("tier", "kind"), [p for p in ALL_PROFILES if PROFILES[p].latency > 0])
def test_faster_route_wins_when_latency_counts(tier: Tier, kind: MessageType) -> None:
    snap = snapshot([route("b", baseline_latency_ms=900), route("a", baseline_latency_ms=200)])
    assert pick(snap, tier, kind) == "a"


@pytest.mark.parametrize(
    ("tier", "kind", "expected"),
    [
        # OTP: the fastest healthy route, even at twice the price (every tier)
        (Tier.PREMIUM, MessageType.OTP, "fast"),
        (Tier.STANDARD, MessageType.OTP, "fast"),
        (Tier.ECONOMY, MessageType.OTP, "fast"),
        # Marketing: the cheapest, even if four times slower (every tier)
        (Tier.PREMIUM, MessageType.MARKETING, "cheap"),
        (Tier.STANDARD, MessageType.MARKETING, "cheap"),
        (Tier.ECONOMY, MessageType.MARKETING, "cheap"),
        # Transactional: Economy takes the cheap one, Premium the fast one
        (Tier.ECONOMY, MessageType.TRANSACTIONAL, "cheap"),
        (Tier.PREMIUM, MessageType.TRANSACTIONAL, "fast"),
    ],
)
def test_message_type_trades_cost_against_speed(
    tier: Tier, kind: MessageType, expected: str
) -> None:
    snap = snapshot([
        route("fast", cost=0.04, baseline_latency_ms=200),
        route("cheap", cost=0.02, baseline_latency_ms=800),
    ])
    assert pick(snap, tier, kind) == expected


@pytest.mark.parametrize(
    ("tier", "expected"),
    [(Tier.PREMIUM, "dedicated"), (Tier.STANDARD, "shared"), (Tier.ECONOMY, "bulk")],
)
def test_tier_prefers_its_bind_class(tier: Tier, expected: str) -> None:
    snap = snapshot([
        route("dedicated", bind_class=BindClass.DEDICATED),
        route("shared", bind_class=BindClass.SHARED),
        route("bulk", bind_class=BindClass.BULK),
    ])
    for kind in MessageType:
        assert pick(snap, tier, kind) == expected


def test_premium_pays_for_quality_economy_does_not() -> None:
    snap = snapshot(
        [route("good", cost=0.06), route("cheap", cost=0.02)],
        {"good": healthy(0.99), "cheap": healthy(0.80)},
    )
    assert pick(snap, Tier.PREMIUM) == "good"
    assert pick(snap, Tier.ECONOMY) == "cheap"


@pytest.mark.parametrize(
    ("field", "value", "tier", "kind"),
    [
        ("tiers", ["economy"], Tier.PREMIUM, MessageType.OTP),
        ("tiers", ["premium", "standard"], Tier.ECONOMY, MessageType.MARKETING),
        ("message_types", ["marketing"], Tier.STANDARD, MessageType.OTP),
        ("message_types", ["OTP", "transactional"], Tier.ECONOMY, MessageType.MARKETING),
    ],
)
def test_tier_and_type_eligibility_are_hard_filters(
    field: str, value: list[str], tier: Tier, kind: MessageType
) -> None:
    snap = snapshot([route("a", cost=0.001, **{field: value}), route("b", cost=0.09)])
    assert pick(snap, tier, kind) == "b"
    only = snapshot([route("a", **{field: value})])
    outcome = decide(only, RouteRequest(TIER_TENANT[tier], UK, kind), NOW)
    assert isinstance(outcome, RouteRejection) and outcome.reason_code == "NO_ROUTE"
    assert "not allowed" in outcome.detail


def test_geography_prefers_the_smsc_nearest_the_destination_country() -> None:
    routes = [
        route("via-lon", smsc="smsc-lon", operators=["gb-ee", "de-telekom"]),
        route("via-fra", smsc="smsc-fra", operators=["gb-ee", "de-telekom"]),
        route("via-nyc", smsc="smsc-nyc", operators=["gb-ee", "de-telekom"]),
    ]
    snap = snapshot(routes)
    assert pick(snap, to=UK) == "via-lon"
    assert pick(snap, to=DE) == "via-fra"
    outcome = decide(snap, RouteRequest("std", UK), NOW)
    assert isinstance(outcome, Decision)
    assert [c.route_id for c in outcome.choices][-1] == "via-nyc"


def test_cost_overrides_by_country_and_operator() -> None:
    routes = [
        route("a", cost=0.03, operators=["gb-ee", "gb-vodafone"]),
        route("b", cost=0.04, operators=["gb-ee", "gb-vodafone"],
              cost_overrides={"GB": 0.035, "gb-vodafone": 0.02}),
    ]
    snap = snapshot(routes)
    assert pick(snap, Tier.ECONOMY, to=UK) == "a"  # b costs 0.035 in GB
    assert pick(snap, Tier.ECONOMY, to=UK_VODAFONE) == "b"  # operator override beats country
    outcome = decide(snap, RouteRequest("eco", UK_VODAFONE, parts=3), NOW)
    assert isinstance(outcome, Decision)
    assert outcome.route.cost_per_part == pytest.approx(0.02)
    assert outcome.cost == pytest.approx(0.06)


def test_country_wide_route_covers_unresolved_and_resolved_operators() -> None:
    snap = snapshot([route("fr-any", operators=["gb-ee"], countries=["FR"]),
                     route("gb-any", operators=["de-telekom"], countries=["GB"])])
    assert pick(snap, to=FR) == "fr-any"
    outcome = decide(snap, RouteRequest("std", FR), NOW)
    assert isinstance(outcome, Decision)
    assert outcome.operator_id is None and outcome.country == "FR"
    assert pick(snap, to=UK_VODAFONE) == "gb-any"  # gb-vodafone is only covered via GB


def test_tenant_allow_list_restricts_routes() -> None:
    routes = [route("cheap", cost=0.01), route("contracted", cost=0.05)]
    tenants = [{"id": "picky", "tier": "standard", "routes": ["contracted"]},
               {"id": "stranded", "tier": "standard", "routes": ["elsewhere"]}]
    snap = snapshot([*routes, route("elsewhere", operators=["de-telekom"])], tenants=tenants)
    assert pick(snap, tenant="std") == "cheap"
    assert pick(snap, tenant="picky") == "contracted"
    outcome = decide(snap, RouteRequest("stranded", UK), NOW)
    assert isinstance(outcome, RouteRejection) and outcome.reason_code == "NO_ROUTE"
    assert "allow-list" in outcome.detail


def _filtered_reference(
    snap: Snapshot, request: RouteRequest, now: float
) -> tuple[str, ...] | str:
    """What a tenant with an allow-list gets, by definition: the unrestricted candidates of its
    tier in rank order (healthy first, then penalty, cost, capacity, id), filtered to the list,
    then chained for SMSC diversity among the kept routes (route ids); or the rejection code."""
    tenant = snap.catalogue.tenants[request.tenant_id]
    unrestricted = decide(snap, RouteRequest("std", request.destination, request.message_type,
                                             request.parts, request.tier or tenant.tier), now)
    if isinstance(unrestricted, RouteRejection):
        return unrestricted.reason_code
    allowed = tenant.routes or frozenset()
    routes = snap.catalogue.routes
    remaining = sorted(
        (c for c in unrestricted.choices if c.route_id in allowed),
        key=lambda c: (c.state is RouteState.DEGRADED, c.penalty, c.cost_per_part,
                       -routes[c.route_id].tps, c.route_id),
    )
    chain: list[str] = []
    used: set[str] = set()
    while remaining:
        pick = next((c for c in remaining if c.smsc_id not in used), remaining[0])
        remaining.remove(pick)
        chain.append(pick.route_id)
        used.add(pick.smsc_id)
    return tuple(chain) or "NO_ROUTE"


def test_allow_lists_filter_the_tier_ranking_with_or_without_a_tier_override() -> None:
    routes = [route("cheap", cost=0.01), route("contracted", cost=0.05, smsc="smsc-fra"),
              route("premium-only", tiers=["premium"], cost=0.001),
              route("eco-only", tiers=["economy"], cost=0.002, smsc="smsc-lon2"),
              route("de", operators=["de-telekom"])]
    tenants = [
        {"id": "a", "tier": "standard", "routes": ["contracted", "premium-only"]},
        {"id": "b", "tier": "premium", "routes": ["contracted", "premium-only"]},  # same list
        {"id": "c", "tier": "premium", "routes": ["eco-only", "de"]},
        {"id": "d", "tier": "economy", "routes": ["cheap", "contracted", "eco-only", "de"]},
    ]
    snap = snapshot(routes, {"cheap": HealthReport(RouteState.DEGRADED, 0.5, None, NOW)}, tenants)
    assert snap.valid_until < NOW + 10**9
    for now in (NOW, NOW + 10**9):  # snapshot tables, then the per-call re-ranking path
        for tenant in ("a", "b", "c", "d"):
            for tier in (None, *Tier):
                for kind in MessageType:
                    for to in (UK, DE, FR):
                        request = RouteRequest(tenant, to, kind, 2, tier)
                        outcome = decide(snap, request, now)
                        got = (
                            tuple(c.route_id for c in outcome.choices)
                            if isinstance(outcome, Decision) else outcome.reason_code
                        )
                        assert got == _filtered_reference(snap, request, now), request
    stranded = decide(snap, RouteRequest("c", UK, MessageType.OTP), NOW)
    assert isinstance(stranded, RouteRejection)
    assert stranded.detail == (
        "none of the eligible routes to gb-ee (premium-only, contracted, cheap) is in tenant "
        "'c''s allow-list"
    )


def test_an_allow_list_never_puts_a_degraded_route_before_a_healthy_one() -> None:
    # The unrestricted chain is lead, elsewhere (DEGRADED, but on a new SMSC), backup: SMSC
    # diversity puts elsewhere before backup, which shares lead's SMSC. A tenant whose list
    # leaves lead out must still get its healthy route first, on every path of decide().
    # (Hypothesis' falsifying example: r4/r5 on smsc-lon, r0 DEGRADED on smsc-lon2, tenant
    # allowed r0 and r5.)
    routes = [route("lead", cost=0.01), route("backup", cost=0.02),
              route("elsewhere", cost=0.001, smsc="smsc-lon2")]
    tenants = [{"id": "picky", "tier": "standard", "routes": ["backup", "elsewhere"]},
               {"id": "picky-eco", "tier": "economy", "routes": ["backup", "elsewhere"]}]
    health = {"elsewhere": HealthReport(RouteState.DEGRADED, 0.9, None, NOW)}
    snap = snapshot(routes, health, tenants)
    full = decide(snap, RouteRequest("std", UK), NOW)
    assert isinstance(full, Decision)
    assert [c.route_id for c in full.choices] == ["lead", "elsewhere", "backup"]
    cases = [
        (RouteRequest("picky", UK), NOW),  # Snapshot.restricted
        (RouteRequest("picky-eco", UK, tier=Tier.STANDARD), NOW),  # tier override: per call
        (RouteRequest("picky", UK), NOW + 10**9),  # past valid_until: per-call re-rank
    ]
    assert snap.valid_until < NOW + 10**9
    for request, now in cases:
        outcome = decide(snap, request, now)
        assert isinstance(outcome, Decision), request
        assert [(c.route_id, c.state) for c in outcome.choices] == [
            ("backup", RouteState.HEALTHY), ("elsewhere", RouteState.DEGRADED),
        ], request
        assert explain(snap, request, now).outcome == outcome


def test_ties_break_on_cost_then_capacity_then_id() -> None:
    same = {"baseline_latency_ms": 500}
    assert pick(snapshot([route("b", **same), route("a", **same)])) == "a"
    assert pick(snapshot([route("a", tps=100), route("b", tps=500)])) == "b"


def test_request_tier_overrides_the_tenant_tier() -> None:
    snap = snapshot([route("eco-only", tiers=["economy"], cost=0.001), route("any")])
    outcome = decide(snap, RouteRequest("std", UK, tier=Tier.ECONOMY), NOW)
    assert isinstance(outcome, Decision) and outcome.route_id == "eco-only"


def test_message_type_may_be_given_as_the_wire_value() -> None:
    snap = snapshot([route("otp-only", message_types=["otp"], cost=0.001), route("any")])
    outcome = decide(snap, RouteRequest("std", UK, "OTP"), NOW)  # type: ignore[arg-type]
    assert isinstance(outcome, Decision) and outcome.route_id == "otp-only"


# --- health, hysteresis -------------------------------------------------------------------------


def test_incumbent_keeps_the_lead_unless_clearly_beaten() -> None:
    routes = [route("a"), route("b")]
    policy = HysteresisPolicy(incumbent_margin=0.15, score_deadband=0.0)
    first = snapshot(routes, {"a": healthy(0.95), "b": healthy(0.94)}, policy=policy)
    assert pick(first) == "a"
    # b is now slightly better (2 * log2(0.96/0.95) ≈ 0.03 < 0.15): a keeps the lead...
    slightly = build_snapshot(first.catalogue, {"a": healthy(0.95), "b": healthy(0.96)}, NOW,
                              first)
    assert pick(slightly) == "a"
    # ...and without the previous snapshot, b would lead.
    assert pick(build_snapshot(first.catalogue, slightly.reports, NOW)) == "b"
    # Clearly better (2 * log2(0.99/0.85) ≈ 0.44 > 0.15): b takes over and then keeps it.
    clearly = build_snapshot(first.catalogue, {"a": healthy(0.85), "b": healthy(0.99)}, NOW,
                             slightly)
    assert pick(clearly) == "b"
    back = build_snapshot(first.catalogue, {"a": healthy(0.86), "b": healthy(0.85)}, NOW, clearly)
    assert pick(back) == "b"


def test_small_health_changes_inside_the_deadband_are_ignored() -> None:
    policy = HysteresisPolicy(score_deadband=0.02, latency_deadband=0.25)
    first = snapshot([route("a")], {"a": healthy(0.90, 400)}, policy=policy)
    second = with_health(first, "a", healthy(0.91, 450), NOW + 1)
    assert (second.status["a"].score, second.status["a"].latency_ms) == (0.90, 400)
    third = with_health(second, "a", healthy(0.95, 600), NOW + 2)
    assert (third.status["a"].score, third.status["a"].latency_ms) == (0.95, 600)


def test_recovered_route_is_held_degraded_then_promoted() -> None:
    policy = HysteresisPolicy(recovery_hold_s=60, incumbent_margin=0.0)
    routes = [route("best", cost=0.01), route("backup", cost=0.05)]
    up = snapshot(routes, policy=policy)
    assert pick(up, Tier.ECONOMY) == "best"
    down = with_health(up, "best", HealthReport(RouteState.DOWN, 0.0, None, NOW), NOW)
    assert pick(down, Tier.ECONOMY) == "backup"
    recovered = with_health(down, "best", healthy(0.95), NOW + 10)
    assert recovered.status["best"].state is RouteState.DEGRADED
    assert recovered.valid_until == NOW + 70
    assert pick(recovered, Tier.ECONOMY, now=NOW + 20) == "backup"
    # Past the hold, decide() is right even on the old snapshot (per-call re-rank)...
    assert pick(recovered, Tier.ECONOMY, now=NOW + 71) == "best"
    # ...and refresh() brings the fast path back.
    refreshed = refresh(recovered, NOW + 71)
    assert refreshed.status["best"].state is RouteState.HEALTHY
    assert pick(refreshed, Tier.ECONOMY, now=NOW + 72) == "best"


def test_degraded_routes_are_fallbacks_behind_every_healthy_one() -> None:
    snap = snapshot(
        [route("cheap-but-degraded", cost=0.001), route("ok", cost=0.05),
         route("ok2", cost=0.06, smsc="smsc-fra")],
        {"cheap-but-degraded": HealthReport(RouteState.DEGRADED, 0.9, None, NOW)},
    )
    outcome = decide(snap, RouteRequest("eco", UK), NOW)
    assert isinstance(outcome, Decision)
    assert [c.route_id for c in outcome.choices] == ["ok", "ok2", "cheap-but-degraded"]


def test_stale_report_falls_back_to_baseline_and_down_becomes_degraded() -> None:
    policy = HysteresisPolicy(stale_after_s=300)
    down_long_ago = HealthReport(RouteState.DOWN, 0.0, None, NOW - 301)
    snap = snapshot([route("a")], {"a": down_long_ago}, policy=policy)
    assert snap.status["a"].state is RouteState.DEGRADED
    assert pick(snap) == "a"
    fresh_down = HealthReport(RouteState.DOWN, 0.0, None, NOW - 100)
    snap = snapshot([route("a")], {"a": fresh_down}, policy=policy)
    outcome = decide(snap, RouteRequest("std", UK), NOW)
    assert isinstance(outcome, RouteRejection) and "DOWN" in outcome.detail
    assert snap.valid_until == NOW + 200
    assert pick(snap, now=NOW + 200) == "a"  # it went stale meanwhile


def test_new_config_keeps_health_and_hysteresis() -> None:
    first = snapshot([route("a")], {"a": HealthReport(RouteState.DOWN, 0, None, NOW)})
    catalogue = build_catalogue(config([route("a"), route("b", cost=0.05)]))
    second = with_config(first, catalogue, NOW + 1)
    assert pick(second) == "b"
    assert second.status["a"].state is RouteState.DOWN


# --- failover ------------------------------------------------------------------------------------


def test_fallbacks_are_ordered_with_smsc_diversity_and_next_route_walks_them() -> None:
    snap = snapshot([
        route("lon-1", cost=0.010),
        route("lon-2", cost=0.011),
        route("lon2-1", cost=0.020, smsc="smsc-lon2"),
        route("fra-1", cost=0.030, smsc="smsc-fra"),
    ])
    decision = decide(snap, RouteRequest("eco", UK), NOW)
    assert isinstance(decision, Decision)
    # lon-2 ranks second but shares lon-1's SMSC: other SMSCs come first.
    assert [c.route_id for c in decision.choices] == ["lon-1", "lon2-1", "fra-1", "lon-2"]
    assert [c.route_id for c in decision.fallbacks] == ["lon2-1", "fra-1", "lon-2"]
    second = next_route(decision, "lon-1")
    assert isinstance(second, Decision)
    assert second.route_id == "lon2-1" and second.failed == ("lon-1",)
    assert "failing over from lon-1" in second.reason
    third = next_route(second, "lon2-1")
    assert isinstance(third, Decision) and third.route_id == "fra-1"
    assert next_route(third, "not-a-route") is third
    last = next_route(next_route(third, "fra-1"), "lon-2")  # type: ignore[arg-type]
    assert isinstance(last, RouteRejection) and last.reason_code == "ROUTES_EXHAUSTED"
    assert "lon-1, lon2-1, fra-1, lon-2" in last.detail


# --- rejections ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tenant", "destination", "routes", "code"),
    [
        ("nobody", UK, [route("a")], "UNKNOWN_TENANT"),
        ("frozen", UK, [route("a")], "TENANT_QUARANTINED"),
        ("std", "not-a-number", [route("a")], "INVALID_NUMBER"),
        ("std", "+4474012345", [route("a")], "INVALID_NUMBER"),
        ("std", "+442071234567", [route("a")], "UNSUPPORTED_DESTINATION"),
        ("std", "+448001234567", [route("a")], "UNSUPPORTED_DESTINATION"),
        ("std", FR, [route("a")], "UNKNOWN_OPERATOR"),
        ("std", DE, [route("a")], "NO_ROUTE"),  # operator known, no route covers it
        ("std", UK, [route("a", enabled=False)], "NO_ROUTE"),
        ("prem", UK, [route("a", tiers=["economy"])], "NO_ROUTE"),
    ],
)
def test_rejections_carry_precise_reason_codes(
    tenant: str, destination: str, routes: list[dict[str, Any]], code: str
) -> None:
    outcome = decide(snapshot(routes), RouteRequest(tenant, destination), NOW)
    assert isinstance(outcome, RouteRejection)
    assert outcome.reason_code == code
    assert code in REASONS
    assert outcome.detail


def test_no_route_detail_names_each_covering_route() -> None:
    snap = snapshot(
        [route("a", tiers=["economy"]), route("b", message_types=["marketing"]), route("c")],
        {"c": HealthReport(RouteState.DOWN, 0, None, NOW)},
    )
    outcome = decide(snap, RouteRequest("prem", UK, MessageType.OTP), NOW)
    assert isinstance(outcome, RouteRejection)
    assert "a tier premium not allowed" in outcome.detail
    assert "b message type otp not allowed" in outcome.detail
    assert "c DOWN (report)" in outcome.detail


# --- explanation and reason ----------------------------------------------------------------------


def test_reason_and_explanation() -> None:
    snap = snapshot([route("a"), route("b", smsc="smsc-fra", cost=0.05),
                     route("c", operators=["de-telekom"]), route("d", tiers=["economy"])])
    request = RouteRequest("prem", UK, MessageType.OTP)
    explanation = explain(snap, request, NOW)
    assert explanation.outcome == decide(snap, request, NOW)
    assert isinstance(explanation.outcome, Decision)
    reason = explanation.outcome.reason
    assert reason.startswith("premium otp to gb-ee (GB, +447401234567, operator by prefix): a")
    assert "fallback  b via smsc-fra" in reason
    assert {e.route_id: e.reason for e in explanation.excluded} == {
        "c": "does not cover gb-ee",
        "d": "tier premium not allowed (economy)",
    }


# --- properties ---------------------------------------------------------------------------------

_DESTINATIONS = (UK, UK_VODAFONE, DE, FR, "+447340123456", "+442071234567", "nonsense",
                 "+4474012345")


Case = tuple[list[dict[str, Any]], dict[str, HealthReport], list[dict[str, Any]],
             list[RouteRequest]]


@st.composite
def _catalogue_and_requests(draw: st.DrawFn) -> Case:
    """Inputs, not a snapshot: a failing example's repr stays readable."""
    operator_ids = [o["id"] for o in OPERATORS]
    routes = []
    for n in range(draw(st.integers(1, 7))):
        routes.append(route(
            f"r{n}",
            smsc=draw(st.sampled_from([s["id"] for s in SMSCS])),
            operators=draw(st.lists(st.sampled_from(operator_ids), min_size=1, max_size=3,
                                    unique=True)),
            countries=draw(st.lists(st.sampled_from(["GB", "FR", "DE"]), max_size=2,
                                    unique=True)),
            tiers=draw(st.lists(st.sampled_from([t.value for t in Tier]), min_size=1,
                                unique=True)),
            message_types=draw(st.lists(st.sampled_from([m.value for m in MessageType]),
                                        min_size=1, unique=True)),
            bind_class=draw(st.sampled_from([b.value for b in BindClass])),
            cost=draw(st.floats(0, 0.2)),
            tps=draw(st.integers(1, 1000)),
            enabled=draw(st.booleans()),
            baseline_score=draw(st.floats(0, 1)),
            baseline_latency_ms=draw(st.floats(1, 5000)),
        ))
    health = {
        f"r{n}": HealthReport(
            draw(st.sampled_from(list(RouteState))), draw(st.floats(0, 1)),
            draw(st.none() | st.floats(1, 5000)), NOW - draw(st.integers(0, 600)),
        )
        for n in range(len(routes)) if draw(st.booleans())
    }
    route_ids = [r["id"] for r in routes]
    tenants = [
        {"id": name, "tier": draw(st.sampled_from(list(Tier))).value,
         "routes": draw(st.lists(st.sampled_from(route_ids), unique=True))}
        for name in ("limited", "limited-too")
    ]
    requests = [
        RouteRequest(
            draw(st.sampled_from(
                ["prem", "std", "eco", "frozen", "limited", "limited-too", "nobody"]
            )),
            draw(st.sampled_from(_DESTINATIONS)),
            draw(st.sampled_from(list(MessageType))),
            draw(st.integers(1, 5)),
            draw(st.none() | st.sampled_from(list(Tier))),
        )
        for _ in range(8)
    ]
    return routes, health, tenants, requests


@settings(max_examples=300, deadline=None)
@given(_catalogue_and_requests(), st.integers(0, 400))
def test_every_decision_is_eligible_or_a_rejection_with_a_reason(case: Case, later: int) -> None:
    routes, health, tenants, requests = case
    snap = snapshot(routes, health, tenants)
    catalogue = snap.catalogue
    now = NOW + later  # past valid_until sometimes: the per-call re-rank must hold too
    for request in requests:
        outcome = decide(snap, request, now)
        assert outcome == decide(snap, request, now)  # deterministic
        assert explain(snap, request, now).outcome == outcome
        if isinstance(outcome, RouteRejection):
            assert outcome.reason_code in REASONS and outcome.detail
            continue
        tenant = catalogue.tenants[request.tenant_id]
        assert not tenant.quarantined
        assert outcome.tier is (request.tier or tenant.tier)
        destination = outcome.destination
        ids = [c.route_id for c in outcome.choices]
        assert len(ids) == len(set(ids)) >= 1
        states = [c.state for c in outcome.choices]
        for choice in outcome.choices:
            spec = catalogue.routes[choice.route_id]
            assert spec.enabled
            assert spec.covers(destination.operator_id, destination.country) or (
                destination.operator_id is not None
                and catalogue.key_target[destination.operator_id][1] in spec.countries
            )
            assert outcome.tier in spec.tiers
            assert request.message_type in spec.message_types
            assert choice.state is not RouteState.DOWN
            assert tenant.routes is None or choice.route_id in tenant.routes
        assert outcome.choices[0].state is RouteState.HEALTHY or all(
            s is RouteState.DEGRADED for s in states
        )


@settings(max_examples=60, deadline=None)
@given(st.lists(
    st.tuples(st.sampled_from(["a", "b", "c", "d"]), st.sampled_from(list(RouteState)),
              st.floats(0.5, 1.0), st.integers(0, 120)),
    min_size=1, max_size=8,
))
def test_incremental_snapshots_equal_full_re_ranking(
    changes: list[tuple[str, RouteState, float, int]],
) -> None:
    routes = [route("a", cost=0.02), route("b", cost=0.03, smsc="smsc-fra"),
              route("c", operators=["gb-ee", "de-telekom"], countries=["FR"]),
              route("d", operators=["gb-vodafone"], bind_class="bulk")]
    cfg = config(routes, [{"id": "ab", "tier": "standard", "routes": ["a", "b"]},
                          {"id": "cd", "tier": "economy", "routes": ["c", "d"]}])
    incremental = full = build_snapshot(build_catalogue(cfg), {}, NOW)
    now = NOW
    for route_id, state, score, elapsed in changes:
        now += elapsed
        report = HealthReport(state, score, None, now)
        incremental = with_health(incremental, route_id, report, now)
        # a new catalogue object each time: nothing can be reused, everything is re-ranked
        full = build_snapshot(build_catalogue(cfg), {**full.reports, route_id: report}, now, full)
        assert incremental.rankings == full.rankings
        assert incremental.restricted == full.restricted  # allow-lists' pre-filtered rankings
        assert incremental.refusals == full.refusals
        assert incremental.status == full.status
