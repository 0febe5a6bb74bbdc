"""Route ranking: route health with hysteresis, penalties, and the ranked snapshot.

:func:`build_snapshot` folds health reports into a :class:`RouteStatus` per route and ranks the
candidates of every (destination key, tier, message type) once, so the hot path
(:func:`smsflow.domain.route_engine.decide`) is a look-up. The rules are in the route engine's
module docstring.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from smsflow.domain.route_catalogue import (
    _PROFILE_OF_SLOT,
    _TIER_SLOT,
    _TYPES,
    Catalogue,
    _RouteSpec,
    _slot,
)
from smsflow.domain.route_policy import (
    _INFINITY,
    COST_EPSILON,
    MIN_LATENCY_MS,
    MIN_SCORE,
    HealthReport,
    HysteresisPolicy,
    Profile,
)
from smsflow.domain.route_state import RouteState
from smsflow.domain.traffic import BindClass, MessageType, Tier


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
