"""The router agent's refusal value. Route choice itself lives in ``route_engine``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RouteRejection:
    reason_code: str
    detail: str
