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

The modules: :mod:`~smsflow.domain.route_policy` (inputs, weights, hysteresis settings),
:mod:`~smsflow.domain.route_geography`, :mod:`~smsflow.domain.route_catalogue` (per
configuration), :mod:`~smsflow.domain.route_ranking` (health, penalties, snapshots) and this one
(decisions, fail-over, explanations), which re-exports the others' public names.

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

from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

from smsflow.domain.numbering import (
    Destination,
    NumberRejection,
    resolve,
)
from smsflow.domain.route_catalogue import (  # re-exported: the engine's public surface
    _PROFILE_OF_SLOT,
    _TIER_SLOT,
    _TYPE_SLOT,
    Catalogue,
    build_catalogue,
    destination_key,
)
from smsflow.domain.route_geography import (  # re-exported: the engine's public surface
    COUNTRY_REGION,
    DEFAULT_GEOGRAPHY,
    REGION_COORDS,
    Geography,
)
from smsflow.domain.route_policy import (  # re-exported: the engine's public surface
    BIND_PENALTY,
    COST_EPSILON,
    MIN_LATENCY_MS,
    MIN_SCORE,
    PROFILES,
    UNRESOLVED_PREFIX,
    HealthReport,
    HysteresisPolicy,
    Profile,
    RouteRequest,
)
from smsflow.domain.route_ranking import (  # re-exported: the engine's public surface
    HealthSource,
    PenaltyTerms,
    Ranking,
    RouteChoice,
    RouteStatus,
    Snapshot,
    _exclusion,
    _kept,
    _rank,
    _refusal_detail,
    _status,
    build_snapshot,
    refresh,
    with_config,
    with_health,
)
from smsflow.domain.route_state import RouteState
from smsflow.domain.traffic import MessageType, Tier

__all__ = [
    "BIND_PENALTY",
    "COST_EPSILON",
    "COUNTRY_REGION",
    "DEFAULT_GEOGRAPHY",
    "MIN_LATENCY_MS",
    "MIN_SCORE",
    "PROFILES",
    "REGION_COORDS",
    "UNRESOLVED_PREFIX",
    "Catalogue",
    "Decision",
    "Exclusion",
    "Explanation",
    "Geography",
    "HealthReport",
    "HealthSource",
    "HysteresisPolicy",
    "PenaltyTerms",
    "Profile",
    "Ranking",
    "RouteChoice",
    "RouteRejection",
    "RouteRequest",
    "RouteStatus",
    "Snapshot",
    "build_catalogue",
    "build_snapshot",
    "decide",
    "destination_key",
    "explain",
    "next_route",
    "refresh",
    "with_config",
    "with_health",
]


class RouteRejection(NamedTuple):
    """Why a message is not routed: a reason code (``sms.rejected``) and a text for people.

    Also the router agent's value for the checks it makes before routing (empty body ...).
    """

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


def _refused(
    snapshot: Snapshot,
    destination: Destination,
    key: str,
    slot: int,
    status: Mapping[str, RouteStatus],
) -> RouteRejection:
    catalogue = snapshot.catalogue
    operator, country = destination.operator_id, destination.country
    if key not in catalogue.coverage:
        if operator is None:
            return RouteRejection(
                "UNKNOWN_OPERATOR",
                f"no configured operator owns {destination.e164} ({country}) and no route "
                f"covers {country}",
            )
        return RouteRejection("NO_ROUTE", f"no enabled route covers {operator} ({country})")
    if status is snapshot.status:
        return RouteRejection("NO_ROUTE", snapshot.refusals[key][slot])
    tier, message_type = _PROFILE_OF_SLOT[slot]
    return RouteRejection("NO_ROUTE", _refusal_detail(catalogue, key, tier, message_type, status))


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


def decide(snapshot: Snapshot, request: RouteRequest, now: float) -> Decision | RouteRejection:
    """Route one message. Pure: same snapshot, request and ``now`` → same answer."""
    catalogue = snapshot.catalogue
    tenant = catalogue.tenants.get(request.tenant_id)
    if tenant is None:
        return RouteRejection("UNKNOWN_TENANT", f"tenant {request.tenant_id!r} is not configured")
    if tenant.quarantined:
        return RouteRejection("TENANT_QUARANTINED", f"tenant {request.tenant_id!r} is quarantined")
    destination = resolve(catalogue.numbering, request.destination)
    if isinstance(destination, NumberRejection):
        return _new_rejection(RouteRejection, destination)  # the same two fields
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


def _allow_list_refusal(key: str, names: str, tenant_id: str) -> RouteRejection:
    return _new_rejection(RouteRejection, (
        "NO_ROUTE",
        f"none of the eligible routes to {key} ({names}) is in tenant '{tenant_id}''s allow-list",
    ))


_new_decision = _new_rejection = tuple.__new__  # skip NamedTuple's Python-level __new__


def next_route(decision: Decision, failed_route_id: str) -> Decision | RouteRejection:
    """Fail over: the same decision without ``failed_route_id`` (fallback order kept).

    A route not in the decision changes nothing. When no route is left the message is out of
    options: ``ROUTES_EXHAUSTED``.
    """
    remaining = tuple(c for c in decision.choices if c.route_id != failed_route_id)
    if len(remaining) == len(decision.choices):
        return decision
    failed = (*decision.failed, failed_route_id)
    if not remaining:
        return RouteRejection(
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
    outcome: Decision | RouteRejection
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
