"""A route's health state: one enum for the health evaluator, the route engine and the contract.

Values are the Avro symbols of ``RouteHealth.state`` (released: do not change).
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["RouteState"]


class RouteState(StrEnum):
    HEALTHY = "HEALTHY"
    DEGRADED = "DEGRADED"
    DOWN = "DOWN"
