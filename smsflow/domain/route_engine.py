"""Route choice: a pure function over an immutable snapshot of routes, costs, health and tenants.

Theory of operation
-------------------
Three values, rebuilt by the caller when their inputs change; nothing here reads a clock or does
I/O (``now`` is Unix seconds, passed in):

* :func:`build_catalogue` (on every configuration change) compiles the numbering plan
  (:mod:`smsflow.domain.numbering`), tenant policies, and the *coverage* of every destination
  key: which enabled routes serve operator ``gb-ee`` (listed in ``Route.operators``, or its
  country in ``Route.countries``), and which serve an unresolved number in country ``FR``
  (key ``@FR``: routes whose ``countries`` include FR).
* :func:`build_snapshot` (on health changes, and from a timer via :func:`refresh`) folds route
  health into an effective :class:`RouteStatus` per route, with hysteresis, then ranks the
  candidates of every (destination key, tier, message type) once. A ranking is a tuple of
  :class:`RouteChoice`: the chosen route first, then the fallbacks. Tenants' route allow-lists
  are applied here too: each key's rankings filtered once per (allow-list, tier) and re-chained
  as if the other routes did not exist (``Snapshot.restricted``).
* :func:`decide` is the hot path: tenant look-up, :func:`~smsflow.domain.numbering.resolve`, one
  dict look-up of the precomputed ranking (the allow-list's, if the tenant has one), and a
  :class:`Decision` that references it. The human-readable ``Decision.reason`` is built lazily,
  only when read.

Eligibility (hard filters): the route is enabled, covers the destination, allows the tenant's
tier (``Route.tiers``) and the message type (``Route.message_types``), is not DOWN, and is in
the tenant's ``routes`` allow-list if it has one. Nothing eligible → ``NO_ROUTE`` (or
``UNKNOWN_OPERATOR`` when the operator is unresolved and no route covers the country).

Ranking (soft factors): healthy routes before DEGRADED ones; within each class the lowest
penalty wins, a weighted sum whose weights come from :data:`PROFILES` by (tier, message type)::

    cost       w_cost    * log2(cost per part + 0.0001)    one unit = twice the price
    quality    w_quality * -log2(score)                     one unit = half the score
    latency    w_latency * log2(latency ms)                 one unit = twice as slow
    geography  w_geo     * distance(SMSC region, destination country) / 1000 km
    bind class w_bind    * BIND_PENALTY[tier][Route.bind_class]
    incumbency -HysteresisPolicy.incumbent_margin for the previous snapshot's leader of this key

Logarithms make every factor scale-free: a route's penalty does not depend on which other
routes exist, so adding a route never changes how the others rank against each other. Ties
break on cost per part, then higher ``tps``, then route id, so every decision is deterministic.

Fallbacks are the remaining eligible routes, ordered greedily for SMSC diversity: after each
route, the best-ranked route on an SMSC not yet in the chain comes next, then the rest in rank
order (a lost bind takes every route of its SMSC down at once).

Hysteresis, exactly: (1) the health producer's ``state`` carries its own hysteresis and is used
as is; (2) a route leaving DOWN stays DEGRADED (usable, demoted) for ``recovery_hold_s``;
(3) score and latency changes smaller than ``score_deadband`` (absolute) and
``latency_deadband`` (relative) are ignored against the previous snapshot's values; (4) the
previous leader of a key keeps ``incumbent_margin`` penalty units of advantage, so a challenger
must be clearly better to take over. A report older than ``stale_after_s`` is no longer
evidence: the route falls back to its configured baseline, and a stale DOWN or DEGRADED report
counts as DEGRADED.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, NamedTuple

from smsflow.domain.config_view import PlatformView, RouteView
from smsflow.domain.numbering import (
    Destination,
    NumberingPlan,
    NumberRejection,
    build_numbering,
    resolve,
)
from smsflow.domain.route_state import RouteState
from smsflow.domain.traffic import BindClass, MessageType, Tier

COST_EPSILON: Final = 0.0001
MIN_SCORE: Final = 0.01
MIN_LATENCY_MS: Final = 1.0
UNRESOLVED_PREFIX: Final = "@"  # coverage key of a number whose operator is unknown: "@FR"

_INFINITY: Final = math.inf


# --- inputs ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HealthReport:
    """One route's latest health (a ``RouteHealth`` record, or an operator's override)."""

    state: RouteState
    score: float = 1.0  # 0 (unusable) .. 1 (perfect)
    latency_ms: float | None = None  # submit latency p95; None → the route's baseline
    updated_at: float | None = None  # Unix seconds; None → never goes stale


class RouteRequest(NamedTuple):
    tenant_id: str
    destination: str
    message_type: MessageType = MessageType.TRANSACTIONAL
    parts: int = 1
    tier: Tier | None = None  # None → the tenant's configured tier


# --- policy tables -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Profile:
    """Weights of the penalty terms (see the module docstring for units)."""

    cost: float
    quality: float
    latency: float
    geography: float  # per 1000 km
    bind: float


PROFILES: Final[Mapping[tuple[Tier, MessageType], Profile]] = {
    #                                               cost  quality latency geo   bind
    (Tier.PREMIUM, MessageType.OTP): Profile(0.25, 4.0, 2.0, 0.10, 1.0),
    (Tier.PREMIUM, MessageType.TRANSACTIONAL): Profile(0.25, 4.0, 0.5, 0.10, 1.0),
    (Tier.PREMIUM, MessageType.MARKETING): Profile(1.0, 2.0, 0.0, 0.05, 1.0),
    (Tier.STANDARD, MessageType.OTP): Profile(0.5, 2.0, 2.0, 0.10, 1.0),
    (Tier.STANDARD, MessageType.TRANSACTIONAL): Profile(1.0, 2.0, 0.5, 0.10, 1.0),
    (Tier.STANDARD, MessageType.MARKETING): Profile(2.0, 1.0, 0.0, 0.05, 1.0),
    (Tier.ECONOMY, MessageType.OTP): Profile(1.0, 1.0, 2.0, 0.05, 1.0),
    (Tier.ECONOMY, MessageType.TRANSACTIONAL): Profile(3.0, 1.0, 0.25, 0.05, 1.0),
    (Tier.ECONOMY, MessageType.MARKETING): Profile(4.0, 0.5, 0.0, 0.02, 1.0),
}

BIND_PENALTY: Final[Mapping[Tier, Mapping[BindClass, float]]] = {
    Tier.PREMIUM: {BindClass.DEDICATED: 0.0, BindClass.SHARED: 1.0, BindClass.BULK: 2.0},
    Tier.STANDARD: {BindClass.SHARED: 0.0, BindClass.DEDICATED: 1.0, BindClass.BULK: 1.0},
    Tier.ECONOMY: {BindClass.BULK: 0.0, BindClass.SHARED: 1.0, BindClass.DEDICATED: 2.0},
}


@dataclass(frozen=True, slots=True)
class HysteresisPolicy:
    stale_after_s: float = 300.0
    recovery_hold_s: float = 60.0
    score_deadband: float = 0.02
    latency_deadband: float = 0.25
    incumbent_margin: float = 0.15


# Region centroids (lat, lon). Smsc.region names one of these; unknown names count as far.
REGION_COORDS: Final[Mapping[str, tuple[float, float]]] = {
    "eu-west": (51.5, -0.1),  # London / Dublin
    "eu-central": (50.1, 8.7),  # Frankfurt
    "eu-north": (59.3, 18.1),  # Stockholm
    "eu-south": (45.5, 9.2),  # Milan
    "eu-southwest": (40.4, -3.7),  # Madrid
    "eu-east": (52.2, 21.0),  # Warsaw
    "me-central": (25.2, 55.3),  # Dubai
    "af-north": (30.0, 31.2),  # Cairo
    "af-west": (6.5, 3.4),  # Lagos
    "af-east": (-1.3, 36.8),  # Nairobi
    "af-south": (-26.2, 28.0),  # Johannesburg
    "us-east": (39.0, -77.5),  # Virginia
    "us-central": (41.9, -87.6),  # Chicago
    "us-west": (37.4, -122.0),  # California
    "ca-central": (45.5, -73.6),  # Montreal
    "mx-central": (19.4, -99.1),  # Mexico City
    "sa-east": (-23.5, -46.6),  # São Paulo
    "sa-west": (-12.0, -77.0),  # Lima
    "ap-south": (19.1, 72.9),  # Mumbai
    "ap-southeast": (1.35, 103.8),  # Singapore
    "ap-east": (22.3, 114.2),  # Hong Kong
    "cn-east": (31.2, 121.5),  # Shanghai
    "ap-northeast": (35.7, 139.7),  # Tokyo
    "au-southeast": (-33.9, 151.2),  # Sydney
}

_REGION_COUNTRIES: Final[Mapping[str, str]] = {
    "eu-west": "GB IE IS FR BE NL LU GG JE IM FO",
    "eu-central": "DE AT CH LI CZ SK HU SI HR",
    "eu-north": "SE NO DK FI EE LV LT AX GL",
    "eu-south": "IT MT SM VA MC GR CY AL MK ME BA RS XK",
    "eu-southwest": "ES PT AD GI",
    "eu-east": "PL RO BG MD UA BY RU GE AM AZ TR KZ",
    "me-central": "AE SA QA BH KW OM YE IQ IR JO LB SY IL PS",
    "af-north": "EG LY TN DZ MA SD",
    "af-west": "NG GH CI SN ML BF NE TG BJ GM GN GW SL LR MR CV CM",
    "af-east": "KE UG TZ RW BI ET SO DJ ER SS",
    "af-south": "ZA NA BW ZW ZM MZ MW LS SZ AO MG MU CD CG GA",
    "us-central": "US PR VI",
    "ca-central": "CA",
    "mx-central": "MX GT BZ SV HN NI CR PA CU JM HT DO BS BB TT",
    "sa-east": "BR AR UY PY",
    "sa-west": "CL PE BO EC CO VE",
    "ap-south": "IN PK BD LK NP BT MV AF",
    "ap-southeast": "SG MY ID TH VN PH KH LA MM BN TL",
    "ap-east": "HK MO TW",
    "cn-east": "CN",
    "ap-northeast": "JP KR MN",
    "au-southeast": "AU NZ PG FJ",
}

COUNTRY_REGION: Final[Mapping[str, str]] = {
    country: region
    for region, countries in _REGION_COUNTRIES.items()
    for country in countries.split()
}


def _great_circle_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * 6371.0 * math.asin(min(1.0, math.sqrt(h)))


@dataclass(frozen=True, slots=True)
class Geography:
    region_coords: Mapping[str, tuple[float, float]] = field(default_factory=lambda: REGION_COORDS)
    country_region: Mapping[str, str] = field(default_factory=lambda: COUNTRY_REGION)
    unknown_region_km: float = 8000.0

    def distance_km(self, smsc_region: str, country: str) -> float | None:
        """SMSC region → destination country's region; None if the country has no region."""
        home = self.region_coords.get(self.country_region.get(country, ""))
        if home is None:
            return None
        if self.country_region.get(country) == smsc_region:
            return 0.0
        there = self.region_coords.get(smsc_region)
        if there is None:
            return self.unknown_region_km
        return round(_great_circle_km(there, home), 1)


DEFAULT_GEOGRAPHY: Final = Geography()


# --- catalogue (per configuration) -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _RouteSpec:
    id: str
    smsc_id: str
    region: str
    operators: frozenset[str]
    countries: frozenset[str]
    tiers: frozenset[Tier]
    message_types: frozenset[MessageType]
    bind_class: BindClass
    cost: float
    cost_overrides: Mapping[str, float]
    tps: float
    baseline_score: float
    baseline_latency_ms: float
    enabled: bool

    def cost_for(self, operator_id: str | None, country: str) -> float:
        overrides = self.cost_overrides
        if operator_id is not None and operator_id in overrides:
            return overrides[operator_id]
        return overrides.get(country, self.cost)

    def covers(self, operator_id: str | None, country: str) -> bool:
        return (operator_id is not None and operator_id in self.operators) or (
            country in self.countries
        )


@dataclass(frozen=True, slots=True)
class _TenantPolicy:
    tier: Tier
    tier_slot: int
    quarantined: bool
    routes: frozenset[str] | None
    # index of (routes, tier) in Catalogue.allow_lists (and so of its pre-filtered rankings in
    # Snapshot.restricted); -1 without an allow-list
    allow_index: int = -1


# Rankings of one destination key sit in a tuple indexed by tier and message type. Enum members
# hash in Python (Enum.__hash__), ints and ids in C: the hot path never hashes an enum.
_TIERS: Final[tuple[Tier, ...]] = tuple(Tier)
_TYPES: Final[tuple[MessageType, ...]] = tuple(MessageType)
_TIER_SLOT: Final[dict[int, int]] = {id(t): i * len(_TYPES) for i, t in enumerate(_TIERS)}
_TYPE_SLOT: Final[dict[int, int]] = {id(m): i for i, m in enumerate(_TYPES)}


def _slot(tier: Tier, message_type: MessageType) -> int:
    return _TIER_SLOT[id(Tier(tier))] + _TYPE_SLOT[id(MessageType(message_type))]


_PROFILE_OF_SLOT: Final[tuple[tuple[Tier, MessageType], ...]] = tuple(
    (tier, message_type) for tier in _TIERS for message_type in _TYPES
)


@dataclass(frozen=True, slots=True)
class Catalogue:
    """Everything derived from one configuration snapshot. Build with :func:`build_catalogue`."""

    config: PlatformView
    numbering: NumberingPlan
    routes: Mapping[str, _RouteSpec]  # every configured route, disabled ones included
    tenants: Mapping[str, _TenantPolicy]
    coverage: Mapping[str, tuple[str, ...]]  # destination key → enabled covering route ids
    # (route allow-list, tier) of the tenants that have an allow-list, each pair once, by tier:
    # tenants sharing both share pre-filtered rankings (Snapshot.restricted)
    allow_lists: tuple[tuple[frozenset[str], Tier], ...]
    key_target: Mapping[str, tuple[str | None, str]]  # destination key → (operator, country)
    geography: Geography
    profiles: Mapping[tuple[Tier, MessageType], Profile]
    bind_penalty: Mapping[Tier, Mapping[BindClass, float]]
    policy: HysteresisPolicy


def _spec(route: RouteView, region: str) -> _RouteSpec:
    return _RouteSpec(
        id=route.id,
        smsc_id=route.smsc,
        region=region,
        operators=frozenset(route.operators),
        countries=frozenset(route.countries),
        tiers=frozenset(route.tiers),
        message_types=frozenset(route.message_types),
        bind_class=route.bind_class,
        cost=route.cost,
        cost_overrides=dict(route.cost_overrides),
        tps=route.tps,
        baseline_score=route.baseline_score,
        baseline_latency_ms=route.baseline_latency_ms,
        enabled=route.enabled,
    )


def destination_key(operator_id: str | None, country: str) -> str:
    return operator_id if operator_id is not None else UNRESOLVED_PREFIX + country


def build_catalogue(
    config: PlatformView,
    *,
    geography: Geography = DEFAULT_GEOGRAPHY,
    profiles: Mapping[tuple[Tier, MessageType], Profile] = PROFILES,
    bind_penalty: Mapping[Tier, Mapping[BindClass, float]] = BIND_PENALTY,
    policy: HysteresisPolicy = HysteresisPolicy(),
) -> Catalogue:
    regions = {smsc.id: smsc.region for smsc in config.smscs}
    routes = {r.id: _spec(r, regions.get(r.smsc, "")) for r in config.routes}
    route_countries = sorted({c for r in config.routes for c in r.countries})
    targets: dict[str, tuple[str | None, str]] = {
        o.id: (o.id, o.country) for o in config.operators
    }
    for country in route_countries:
        targets[destination_key(None, country)] = (None, country)
    enabled = sorted((r for r in routes.values() if r.enabled), key=lambda r: r.id)
    coverage = {
        key: covering
        for key, (operator, country) in targets.items()
        if (covering := tuple(r.id for r in enabled if r.covers(operator, country)))
    }
    allow_lists = tuple(sorted(
        {(frozenset(t.routes), t.tier) for t in config.tenants if t.routes},
        key=lambda pair: (_TIERS.index(pair[1]), sorted(pair[0])),
    ))
    allow_index = {pair: index for index, pair in enumerate(allow_lists)}
    return Catalogue(
        config=config,
        numbering=build_numbering(config.operators, route_countries),
        routes=routes,
        tenants={
            t.id: _TenantPolicy(
                t.tier, _TIER_SLOT[id(t.tier)], t.quarantined,
                frozenset(t.routes) if t.routes else None,
                allow_index[(frozenset(t.routes), t.tier)] if t.routes else -1,
            )
            for t in config.tenants
        },
        coverage=coverage,
        allow_lists=allow_lists,
        key_target=targets,
        geography=geography,
        profiles=profiles,
        bind_penalty=bind_penalty,
        policy=policy,
    )


# --- route status (health with hysteresis) -----------------------------------------------------


class HealthSource(StrEnum):
    REPORT = "report"
    BASELINE = "baseline"  # no report yet: the route's configured baseline
    STALE = "stale"  # report older than stale_after_s: baseline, DOWN/DEGRADED → DEGRADED


@dataclass(frozen=True, slots=True)
class RouteStatus:
    """A route's effective health in one snapshot; the next snapshot builds on it."""

    state: RouteState  # what ranking uses
    raw: RouteState  # the report's state after staleness, before recovery hold
    score: float
    latency_ms: float
    source: HealthSource
    stale_at: float | None  # when the report goes stale
    recovering_until: float | None  # DEGRADED (recovery hold) until then


def _status(
    spec: _RouteSpec,
    report: HealthReport | None,
    previous: RouteStatus | None,
    now: float,
    policy: HysteresisPolicy,
) -> RouteStatus:
    stale_at: float | None = None
    if report is None:
        raw, score, latency = RouteState.HEALTHY, spec.baseline_score, spec.baseline_latency_ms
        source = HealthSource.BASELINE
    else:
        if report.updated_at is not None:
            stale_at = report.updated_at + policy.stale_after_s
        if stale_at is not None and now >= stale_at:
            healthy = report.state is RouteState.HEALTHY
            raw = RouteState.HEALTHY if healthy else RouteState.DEGRADED
            score, latency = spec.baseline_score, spec.baseline_latency_ms
            source = HealthSource.STALE
        else:
            raw, score = report.state, report.score
            latency = report.latency_ms if report.latency_ms is not None else (
                spec.baseline_latency_ms
            )
            source = HealthSource.REPORT
    recovering_until: float | None = None
    if previous is not None:
        if previous.source is source:
            if abs(score - previous.score) < policy.score_deadband:
                score = previous.score
            if abs(latency - previous.latency_ms) < policy.latency_deadband * previous.latency_ms:
                latency = previous.latency_ms
        if raw is not RouteState.DOWN:
            if previous.raw is RouteState.DOWN:
                recovering_until = now + policy.recovery_hold_s
            elif previous.recovering_until is not None and now < previous.recovering_until:
                recovering_until = previous.recovering_until
    state = raw
    if state is RouteState.HEALTHY and recovering_until is not None and now < recovering_until:
        state = RouteState.DEGRADED
    return RouteStatus(state, raw, score, latency, source, stale_at, recovering_until)


# --- ranking -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PenaltyTerms:
    """Why a route ranks where it does: the weighted terms and the inputs behind them."""

    cost: float
    quality: float
    latency: float
    geography: float
    bind: float
    incumbency: float
    score: float
    latency_ms: float
    distance_km: float | None
    bind_class: BindClass
    health_source: HealthSource


@dataclass(frozen=True, slots=True)
class RouteChoice:
    route_id: str
    smsc_id: str
    cost_per_part: float
    penalty: float
    state: RouteState
    terms: PenaltyTerms


def _choice(
    catalogue: Catalogue,
    spec: _RouteSpec,
    status: RouteStatus,
    target: tuple[str | None, str],
    profile: Profile,
    tier: Tier,
    incumbent: bool,
) -> RouteChoice:
    operator, country = target
    cost = spec.cost_for(operator, country)
    distance = catalogue.geography.distance_km(spec.region, country)
    terms = PenaltyTerms(
        cost=profile.cost * math.log2(cost + COST_EPSILON),
        quality=profile.quality * -math.log2(max(status.score, MIN_SCORE)),
        latency=profile.latency * math.log2(max(status.latency_ms, MIN_LATENCY_MS)),
        geography=profile.geography * (distance or 0.0) / 1000.0,
        bind=profile.bind * catalogue.bind_penalty[tier][spec.bind_class],
        incumbency=-catalogue.policy.incumbent_margin if incumbent else 0.0,
        score=status.score,
        latency_ms=status.latency_ms,
        distance_km=distance,
        bind_class=spec.bind_class,
        health_source=status.source,
    )
    penalty = (
        terms.cost + terms.quality + terms.latency + terms.geography + terms.bind
        + terms.incumbency
    )
    return RouteChoice(spec.id, spec.smsc_id, cost, round(penalty, 9), status.state, terms)


def _diversified(ranked: list[RouteChoice]) -> tuple[RouteChoice, ...]:
    """Greedy SMSC diversity: next comes the best route on an SMSC not yet in the chain."""
    remaining = list(ranked)
    chain: list[RouteChoice] = []
    used: set[str] = set()
    while remaining:
        pick = next((c for c in remaining if c.smsc_id not in used), remaining[0])
        remaining.remove(pick)
        chain.append(pick)
        used.add(pick.smsc_id)
    return tuple(chain)


def _eligible(spec: _RouteSpec, tier: Tier, message_type: MessageType, status: RouteStatus) -> bool:
    return (
        tier in spec.tiers
        and message_type in spec.message_types
        and status.state is not RouteState.DOWN
    )


def _rank(
    catalogue: Catalogue,
    key: str,
    tier: Tier,
    message_type: MessageType,
    status: Mapping[str, RouteStatus],
    incumbent: str | None,
) -> tuple[RouteChoice, ...]:
    target = catalogue.key_target[key]
    profile = catalogue.profiles[(tier, message_type)]
    candidates = []
    for route_id in catalogue.coverage.get(key, ()):
        spec = catalogue.routes[route_id]
        route_status = status[route_id]
        if _eligible(spec, tier, message_type, route_status):
            candidates.append(
                _choice(catalogue, spec, route_status, target, profile, tier,
                        route_id == incumbent)
            )
    return _ordered(catalogue, candidates)


def _ordered(catalogue: Catalogue, candidates: list[RouteChoice]) -> tuple[RouteChoice, ...]:
    """Rank order (healthy before DEGRADED, then penalty and the tie-breaks), then the SMSC-
    diversity chain. Sorts ``candidates`` in place."""
    routes = catalogue.routes
    candidates.sort(
        key=lambda c: (
            c.state is RouteState.DEGRADED, c.penalty, c.cost_per_part, -routes[c.route_id].tps,
            c.route_id,
        )
    )
    return _diversified(candidates)


def _kept(
    catalogue: Catalogue, ranked: tuple[RouteChoice, ...], kept: list[RouteChoice]
) -> tuple[RouteChoice, ...]:
    """``ranked`` restricted to ``kept`` (a subsequence of it), as if the others did not exist.

    Not the chain with routes taken out: its SMSC-diversity order depends on which routes are in
    it, and can put a DEGRADED route on a new SMSC before a healthy one on an SMSC already used.
    Taking the leader out of such a chain would promote the DEGRADED route to first choice.
    Penalties do not depend on the other candidates, so re-ordering the kept choices is exact.
    """
    if len(kept) == len(ranked):
        return ranked
    if len(kept) <= 1:
        return tuple(kept)
    return _ordered(catalogue, kept)


# --- snapshot ----------------------------------------------------------------------------------

Ranking = tuple[RouteChoice, ...]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Catalogue + health, ranked. Build with :func:`build_snapshot`; never mutate."""

    catalogue: Catalogue
    reports: Mapping[str, HealthReport]
    status: Mapping[str, RouteStatus]
    # destination key → one ranking per (tier, message type) slot; () when nothing is eligible
    rankings: Mapping[str, tuple[Ranking, ...]]
    # per slot: the NO_ROUTE detail of an empty ranking, or the ranked route ids, comma-joined
    refusals: Mapping[str, tuple[str, ...]]
    built_at: float
    valid_until: float  # from then on decide() re-ranks per call: call refresh() before
    # destination key → per Catalogue.allow_lists entry (allow-list, tier) → per message type:
    # the tier's ranking of the routes in the allow-list, re-chained for SMSC diversity as if
    # the others did not exist (the same tuple where the list keeps all of them), so a tenant
    # with an allow-list costs decide() a look-up, not a filter
    restricted: Mapping[str, tuple[tuple[Ranking, ...], ...]] = field(default_factory=dict)

    def ranking(self, key: str, tier: Tier, message_type: MessageType) -> Ranking:
        slots = self.rankings.get(key)
        return slots[_slot(tier, message_type)] if slots is not None else ()


def build_snapshot(
    catalogue: Catalogue,
    health: Mapping[str, HealthReport],
    now: float,
    previous: Snapshot | None = None,
) -> Snapshot:
    """Rank every destination key for every tier and message type.

    ``previous`` carries the hysteresis (deadbands, recovery hold, incumbent leaders); pass the
    snapshot this one replaces. Reports for unknown routes are ignored.
    """
    policy = catalogue.policy
    old_status = previous.status if previous is not None else {}
    status = {
        route_id: _status(spec, health.get(route_id), old_status.get(route_id), now, policy)
        for route_id, spec in catalogue.routes.items()
    }
    same_catalogue = previous is not None and previous.catalogue is catalogue
    rankings: dict[str, tuple[Ranking, ...]] = {}
    refusals: dict[str, tuple[str, ...]] = {}
    for key, covering in catalogue.coverage.items():
        if (
            same_catalogue and previous is not None
            and all(status[r] == old_status[r] for r in covering)
        ):
            old_slots = previous.rankings[key]
            if all(not ranked or ranked[0].terms.incumbency for ranked in old_slots):
                # Same inputs, and every leader already ranked as the incumbent it is now:
                # ranking again would give the same result.
                rankings[key], refusals[key] = old_slots, previous.refusals[key]
                continue
        slots: list[Ranking] = []
        details: list[str] = []
        for tier, message_type in _PROFILE_OF_SLOT:
            leader = previous.ranking(key, tier, message_type) if previous else ()
            ranked = _rank(
                catalogue, key, tier, message_type, status, leader[0].route_id if leader else None
            )
            slots.append(ranked)
            details.append(
                ", ".join(c.route_id for c in ranked) if ranked
                else _refusal_detail(catalogue, key, tier, message_type, status)
            )
        rankings[key] = tuple(slots)
        refusals[key] = tuple(details)
    restricted = _restricted(catalogue, rankings, previous if same_catalogue else None)
    deadlines = [
        moment
        for s in status.values()
        for moment in (
            s.stale_at if s.source is HealthSource.REPORT else None,
            s.recovering_until,
        )
        if moment is not None and moment > now
    ]
    return Snapshot(
        catalogue=catalogue,
        reports={k: v for k, v in health.items() if k in catalogue.routes},
        status=status,
        rankings=rankings,
        refusals=refusals,
        built_at=now,
        valid_until=min(deadlines, default=_INFINITY),
        restricted=restricted,
    )


def _restricted(
    catalogue: Catalogue,
    rankings: Mapping[str, tuple[Ranking, ...]],
    previous: Snapshot | None,
) -> dict[str, tuple[tuple[Ranking, ...], ...]]:
    """Each key's rankings for each (allow-list, tier): only the list's routes (:func:`_kept`).

    Bit masks over the catalogue's routes: a ranking is kept whole when the list has all of its
    routes, dropped when none, else filtered and re-chained once per distinct subset (rank
    order, healthy first, then SMSC diversity among the kept routes). A key whose rankings the
    previous snapshot of the same catalogue shares keeps its filtered copies.
    """
    if not catalogue.allow_lists:
        return {}
    bit = {route_id: 1 << n for n, route_id in enumerate(sorted(catalogue.routes))}
    # Catalogue.allow_lists is ordered by tier: one run of list masks per tier.
    by_tier: dict[int, list[int]] = {}
    for allowed, tier in catalogue.allow_lists:
        by_tier.setdefault(_TIER_SLOT[id(tier)], []).append(
            sum(bit[r] for r in allowed if r in bit)
        )
    runs = sorted(by_tier.items())
    restricted: dict[str, tuple[tuple[Ranking, ...], ...]] = {}
    for key, slots in rankings.items():
        if previous is not None and previous.rankings.get(key) is slots:
            restricted[key] = previous.restricted[key]
            continue
        row: list[tuple[Ranking, ...]] = []
        for tier_slot, masks in runs:
            columns = []
            for ranked in slots[tier_slot:tier_slot + len(_TYPES)]:
                mask = sum(bit[c.route_id] for c in ranked)
                copies: dict[int, Ranking] = {mask: ranked, 0: ()}
                for kept in {allowed & mask for allowed in masks}:
                    if kept not in copies:
                        copies[kept] = _kept(
                            catalogue, ranked, [c for c in ranked if bit[c.route_id] & kept]
                        )
                columns.append([copies[allowed & mask] for allowed in masks])
            row += zip(*columns, strict=True)
        restricted[key] = tuple(row)
    return restricted


def refresh(snapshot: Snapshot, now: float) -> Snapshot:
    """The same inputs re-evaluated at ``now`` (stale reports, ended recovery holds)."""
    return build_snapshot(snapshot.catalogue, snapshot.reports, now, snapshot)


def with_health(snapshot: Snapshot, route_id: str, report: HealthReport, now: float) -> Snapshot:
    """A snapshot with one route's report replaced (one ``sms.route-health`` record)."""
    return build_snapshot(snapshot.catalogue, {**snapshot.reports, route_id: report}, now, snapshot)


def with_config(snapshot: Snapshot, catalogue: Catalogue, now: float) -> Snapshot:
    """A new configuration, keeping health reports and hysteresis of routes that remain."""
    return build_snapshot(catalogue, snapshot.reports, now, snapshot)


# --- decisions ---------------------------------------------------------------------------------


class Rejection(NamedTuple):
    reason_code: str
    detail: str


def _describe_choice(choice: RouteChoice) -> str:
    t = choice.terms
    where = "distance unknown" if t.distance_km is None else f"{t.distance_km:.0f} km"
    health = choice.state.value.lower()
    if t.health_source is not HealthSource.REPORT:
        health += f" ({t.health_source.value})"
    return (
        f"{choice.route_id} via {choice.smsc_id}: penalty {choice.penalty:.2f} — "
        f"{choice.cost_per_part:g}/part, score {t.score:.2f}, {t.latency_ms:.0f} ms, {where}, "
        f"{t.bind_class.value} binds, {health}"
        + (", incumbent" if t.incumbency else "")
    )


class Decision(NamedTuple):
    """The chosen route, its ordered fallbacks and (lazily) why. Immutable (a NamedTuple)."""

    destination: Destination
    tier: Tier
    message_type: MessageType
    parts: int
    choices: tuple[RouteChoice, ...]  # never empty: [0] is the route, the rest the fallbacks
    failed: tuple[str, ...] = ()  # routes this message already failed over from

    @property
    def route(self) -> RouteChoice:
        return self.choices[0]

    @property
    def fallbacks(self) -> tuple[RouteChoice, ...]:
        return self.choices[1:]

    @property
    def route_id(self) -> str:
        return self.choices[0].route_id

    @property
    def smsc_id(self) -> str:
        return self.choices[0].smsc_id

    @property
    def operator_id(self) -> str | None:
        return self.destination.operator_id

    @property
    def country(self) -> str:
        return self.destination.country

    @property
    def cost(self) -> float:
        """Estimated cost of the whole message on the chosen route."""
        return self.choices[0].cost_per_part * self.parts

    @property
    def reason(self) -> str:
        d = self.destination
        operator = d.operator_id or "an unresolved operator"
        head = (
            f"{self.tier.value} {self.message_type.label} to {operator} ({d.country}, {d.e164}, "
            f"operator by {d.operator_source.value})"
        )
        if self.failed:
            head += f", after failing over from {', '.join(self.failed)}"
        chosen = self.choices[0]
        why = "healthy" if chosen.state is RouteState.HEALTHY else "no healthy route left"
        lines = [f"{head}: {chosen.route_id} — lowest penalty among {why} routes",
                 f"  chosen    {_describe_choice(chosen)}"]
        lines += [f"  fallback  {_describe_choice(c)}" for c in self.choices[1:]]
        return "\n".join(lines)


def _refusal_detail(
    catalogue: Catalogue,
    key: str,
    tier: Tier,
    message_type: MessageType,
    status: Mapping[str, RouteStatus],
) -> str:
    why = "; ".join(
        f"{route_id} "
        + _exclusion(catalogue.routes[route_id], tier, message_type, status[route_id], None)
        for route_id in catalogue.coverage.get(key, ())
    )
    return f"no eligible route to {key} for {tier.value} {message_type.label}: {why}"


def _refused(
    snapshot: Snapshot,
    destination: Destination,
    key: str,
    slot: int,
    status: Mapping[str, RouteStatus],
) -> Rejection:
    catalogue = snapshot.catalogue
    operator, country = destination.operator_id, destination.country
    if key not in catalogue.coverage:
        if operator is None:
            return Rejection(
                "UNKNOWN_OPERATOR",
                f"no configured operator owns {destination.e164} ({country}) and no route "
                f"covers {country}",
            )
        return Rejection("NO_ROUTE", f"no enabled route covers {operator} ({country})")
    if status is snapshot.status:
        return Rejection("NO_ROUTE", snapshot.refusals[key][slot])
    tier, message_type = _PROFILE_OF_SLOT[slot]
    return Rejection("NO_ROUTE", _refusal_detail(catalogue, key, tier, message_type, status))


def _exclusion(
    spec: _RouteSpec,
    tier: Tier,
    message_type: MessageType,
    status: RouteStatus,
    allowed: frozenset[str] | None,
) -> str:
    if not spec.enabled:
        return "disabled"
    if tier not in spec.tiers:
        return f"tier {tier.value} not allowed ({', '.join(sorted(t.value for t in spec.tiers))})"
    if message_type not in spec.message_types:
        return f"message type {message_type.label} not allowed"
    if status.state is RouteState.DOWN:
        return f"DOWN ({status.source.value})"
    if allowed is not None and spec.id not in allowed:
        return "not in the tenant's route allow-list"
    return "eligible"


def _ranking_at(
    snapshot: Snapshot, key: str, tier: Tier, message_type: MessageType, now: float
) -> tuple[tuple[RouteChoice, ...], Mapping[str, RouteStatus]]:
    """Slow path past ``valid_until``: this key's ranking with health evaluated at ``now``."""
    catalogue = snapshot.catalogue
    covering = catalogue.coverage.get(key)
    if covering is None:
        return (), snapshot.status
    status = {
        route_id: _status(
            catalogue.routes[route_id], snapshot.reports.get(route_id),
            snapshot.status[route_id], now, catalogue.policy,
        )
        for route_id in covering
    }
    leader = snapshot.ranking(key, tier, message_type)
    incumbent = leader[0].route_id if leader else None
    return _rank(catalogue, key, tier, message_type, status, incumbent), status


def decide(snapshot: Snapshot, request: RouteRequest, now: float) -> Decision | Rejection:
    """Route one message. Pure: same snapshot, request and ``now`` → same answer."""
    catalogue = snapshot.catalogue
    tenant = catalogue.tenants.get(request.tenant_id)
    if tenant is None:
        return Rejection("UNKNOWN_TENANT", f"tenant {request.tenant_id!r} is not configured")
    if tenant.quarantined:
        return Rejection("TENANT_QUARANTINED", f"tenant {request.tenant_id!r} is quarantined")
    destination = resolve(catalogue.numbering, request.destination)
    if isinstance(destination, NumberRejection):
        return _new_rejection(Rejection, destination)  # the same two fields
    tier = request.tier
    if tier is None:
        tier, slot = tenant.tier, tenant.tier_slot
    else:
        tier = Tier(tier)
        slot = _TIER_SLOT[id(tier)]
    message_type = request.message_type
    type_slot = _TYPE_SLOT.get(id(message_type))
    if type_slot is None:  # a plain string
        message_type = MessageType(message_type)
        type_slot = _TYPE_SLOT[id(message_type)]
    operator = destination.operator_id
    key = operator if operator is not None else UNRESOLVED_PREFIX + destination.country
    slot += type_slot
    if now < snapshot.valid_until:
        index = tenant.allow_index
        if index >= 0 and tier is tenant.tier:
            # The allow-list was applied at snapshot build time (Snapshot.restricted).
            rows = snapshot.restricted.get(key)
            choices = rows[index][type_slot] if rows is not None else None
        else:
            slots = snapshot.rankings.get(key)
            choices = slots[slot] if slots is not None else None
            if choices and tenant.routes is not None:  # another tier asked for: filter now
                allowed = tenant.routes
                choices = _kept(
                    catalogue, choices, [c for c in choices if c.route_id in allowed]
                )
        if choices:
            return _new_decision(
                Decision, (destination, tier, message_type, request.parts, choices, ())
            )
        if index >= 0 and key in snapshot.rankings and snapshot.rankings[key][slot]:
            return _allow_list_refusal(key, snapshot.refusals[key][slot], request.tenant_id)
        return _refused(snapshot, destination, key, slot, snapshot.status)
    choices, status = _ranking_at(snapshot, key, tier, message_type, now)
    if not choices:
        return _refused(snapshot, destination, key, slot, status)
    if tenant.routes is not None:
        allowed = tenant.routes
        kept = [c for c in choices if c.route_id in allowed]
        if not kept:
            names = ", ".join([c.route_id for c in choices])
            return _allow_list_refusal(key, names, request.tenant_id)
        choices = _kept(catalogue, choices, kept)
    return _new_decision(Decision, (destination, tier, message_type, request.parts, choices, ()))


def _allow_list_refusal(key: str, names: str, tenant_id: str) -> Rejection:
    return _new_rejection(Rejection, (
        "NO_ROUTE",
        f"none of the eligible routes to {key} ({names}) is in tenant '{tenant_id}''s allow-list",
    ))


_new_decision = _new_rejection = tuple.__new__  # skip NamedTuple's Python-level __new__


def next_route(decision: Decision, failed_route_id: str) -> Decision | Rejection:
    """Fail over: the same decision without ``failed_route_id`` (fallback order kept).

    A route not in the decision changes nothing. When no route is left the message is out of
    options: ``ROUTES_EXHAUSTED``.
    """
    remaining = tuple(c for c in decision.choices if c.route_id != failed_route_id)
    if len(remaining) == len(decision.choices):
        return decision
    failed = (*decision.failed, failed_route_id)
    if not remaining:
        return Rejection(
            "ROUTES_EXHAUSTED", f"every eligible route failed for {decision.destination.e164}: "
            f"{', '.join(failed)}",
        )
    return Decision(
        decision.destination, decision.tier, decision.message_type, decision.parts, remaining,
        failed,
    )


# --- explanations (slow; CLI and logs) -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Exclusion:
    route_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Explanation:
    request: RouteRequest
    outcome: Decision | Rejection
    destination: Destination | NumberRejection | None
    tier: Tier | None
    profile: Profile | None
    excluded: tuple[Exclusion, ...]  # every configured route not among the choices, and why


def explain(snapshot: Snapshot, request: RouteRequest, now: float) -> Explanation:
    """:func:`decide`, plus why every other configured route was not a candidate."""
    catalogue = snapshot.catalogue
    outcome = decide(snapshot, request, now)
    tenant = catalogue.tenants.get(request.tenant_id)
    if tenant is None or tenant.quarantined:
        return Explanation(request, outcome, None, None, None, ())
    destination = resolve(catalogue.numbering, request.destination)
    tier = request.tier or tenant.tier
    message_type = MessageType(request.message_type)
    profile = catalogue.profiles[(tier, message_type)]
    if isinstance(destination, NumberRejection):
        return Explanation(request, outcome, destination, tier, profile, ())
    chosen = {c.route_id for c in outcome.choices} if isinstance(outcome, Decision) else set()
    key = destination_key(destination.operator_id, destination.country)
    status = dict(snapshot.status)
    if now >= snapshot.valid_until:
        status.update(_ranking_at(snapshot, key, tier, message_type, now)[1])
    covering = set(catalogue.coverage.get(key, ()))
    operator, country = destination.operator_id, destination.country
    excluded = []
    for route_id in sorted(catalogue.routes):
        if route_id in chosen:
            continue
        spec = catalogue.routes[route_id]
        if spec.enabled and route_id not in covering:
            target = operator if operator is not None else f"unresolved operators in {country}"
            excluded.append(Exclusion(route_id, f"does not cover {target}"))
            continue
        excluded.append(
            Exclusion(
                route_id, _exclusion(spec, tier, message_type, status[route_id], tenant.routes)
            )
        )
    return Explanation(request, outcome, destination, tier, profile, tuple(excluded))
