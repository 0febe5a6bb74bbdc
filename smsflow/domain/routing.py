"""Prefix routing: destination number → operator → cheapest eligible route.

A pure function over an immutable :class:`RoutingTable` built from a config snapshot; no I/O and
no clock. This is the walking skeleton's router: the cost/quality/tier/geography engine of the
routing issue replaces :func:`choose_route` behind the same signature.
"""

from __future__ import annotations

from dataclasses import dataclass

from smsflow.config.models import PlatformConfig, Route, Tenant

MIN_E164_DIGITS = 8
MAX_E164_DIGITS = 15


@dataclass(frozen=True, slots=True)
class RouteDecision:
    route_id: str
    smsc_id: str
    operator_id: str
    country: str


@dataclass(frozen=True, slots=True)
class RouteRejection:
    reason_code: str
    detail: str


@dataclass(frozen=True)
class RoutingTable:
    """Immutable lookup structures derived once per config snapshot."""

    operator_by_prefix: dict[str, tuple[str, str]]  # prefix → (operator id, country)
    prefix_lengths: tuple[int, ...]  # distinct prefix lengths, longest first
    routes_by_operator: dict[str, tuple[Route, ...]]  # cheapest first
    tenants: dict[str, Tenant]

    @classmethod
    def build(cls, config: PlatformConfig) -> RoutingTable:
        by_prefix = {
            prefix: (operator.id, operator.country)
            for operator in config.operators
            for prefix in operator.prefixes
        }
        routes: dict[str, list[Route]] = {}
        for route in config.routes:
            if route.enabled:
                for operator_id in route.operators:
                    routes.setdefault(operator_id, []).append(route)
        return cls(
            operator_by_prefix=by_prefix,
            prefix_lengths=tuple(sorted({len(p) for p in by_prefix}, reverse=True)),
            routes_by_operator={
                op: tuple(sorted(rs, key=lambda r: (r.cost, r.id))) for op, rs in routes.items()
            },
            tenants={t.id: t for t in config.tenants},
        )


def is_e164(number: str) -> bool:
    digits = number[1:]
    return (
        number.startswith("+")
        and digits.isdigit()
        and MIN_E164_DIGITS <= len(digits) <= MAX_E164_DIGITS
    )


def choose_route(
    table: RoutingTable, tenant_id: str, destination: str
) -> RouteDecision | RouteRejection:
    tenant = table.tenants.get(tenant_id)
    if tenant is None:
        return RouteRejection("UNKNOWN_TENANT", f"tenant {tenant_id!r} is not configured")
    if tenant.quarantined:
        return RouteRejection("TENANT_QUARANTINED", f"tenant {tenant_id!r} is quarantined")
    if not is_e164(destination):
        return RouteRejection("INVALID_NUMBER", f"{destination!r} is not E.164 (+ and 8-15 digits)")
    operator = None
    for length in table.prefix_lengths:
        operator = table.operator_by_prefix.get(destination[:length])
        if operator is not None:
            break
    if operator is None:
        return RouteRejection("UNKNOWN_OPERATOR", f"no operator owns a prefix of {destination}")
    operator_id, country = operator
    for route in table.routes_by_operator.get(operator_id, ()):
        if tenant.tier in route.tiers:
            return RouteDecision(route.id, route.smsc, operator_id, country)
    return RouteRejection(
        "NO_ROUTE", f"no enabled route to {operator_id} for tier {tenant.tier.value}"
    )
