"""The route catalogue: everything compiled from one configuration, before any health.

Built by :func:`build_catalogue` on every configuration change: the numbering plan, per-route
specs, tenant policies, which enabled routes cover each destination key, and the tenants'
(allow-list, tier) pairs. Also the slot layout of rankings: (tier, message type) → index.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from smsflow.domain.config_view import PlatformView, RouteView
from smsflow.domain.numbering import (
    NumberingPlan,
    build_numbering,
)
from smsflow.domain.route_geography import DEFAULT_GEOGRAPHY, Geography
from smsflow.domain.route_policy import (
    BIND_PENALTY,
    PROFILES,
    UNRESOLVED_PREFIX,
    HysteresisPolicy,
    Profile,
)
from smsflow.domain.traffic import BindClass, MessageType, Tier


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


DEFAULT_HYSTERESIS: Final = HysteresisPolicy()


def build_catalogue(
    config: PlatformView,
    *,
    geography: Geography = DEFAULT_GEOGRAPHY,
    profiles: Mapping[tuple[Tier, MessageType], Profile] = PROFILES,
    bind_penalty: Mapping[Tier, Mapping[BindClass, float]] = BIND_PENALTY,
    policy: HysteresisPolicy = DEFAULT_HYSTERESIS,
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
