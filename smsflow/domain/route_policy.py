"""Route choice, inputs and weights: health reports, requests, penalty profiles, hysteresis.

The values :mod:`smsflow.domain.route_engine` is tuned with and fed; no logic beyond validation.
See the route engine's module docstring for what each weight means.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, NamedTuple

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
