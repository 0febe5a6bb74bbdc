"""The scheduler's values: what it is configured with, what goes in and what comes out.

Limits (:class:`RateLimit`, :class:`DestinationLimit`, :class:`SchedulerConfig`), queued
:class:`Item` s, the results of an offer or a poll (:class:`Released`, :class:`Rejected`,
:class:`Poll`) and its metrics. All frozen; :mod:`smsflow.domain.limits.scheduler` does the work.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, NamedTuple

from smsflow.domain.limits.aimd import AimdParams
from smsflow.domain.limits.tiers import TierPolicy
from smsflow.domain.traffic import Tier

LaneBy = Literal["route", "tenant"]


@dataclass(frozen=True, slots=True)
class Item:
    """One message waiting for the limits: ids, what limits apply, size, and its source."""

    message_id: str
    tenant_id: str
    tier: Tier
    route_id: str
    destination: str
    parts: int
    enqueued_at: float
    partition: int = 0
    offset: int = -1  # source offset; negative: not tracked for commits


@dataclass(frozen=True, slots=True)
class Released:
    item: Item
    released_at: float

    @property
    def waited_s(self) -> float:
        """Time the item spent waiting: from ``enqueued_at`` to its release."""
        return max(0.0, self.released_at - self.item.enqueued_at)


@dataclass(frozen=True, slots=True)
class Rejected:
    item: Item
    reason_code: str
    detail: str


class Poll(NamedTuple):
    released: list[Released]
    next_wake_at: float | None  # None: nothing queued that time alone will release


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A rate in parts/s with its burst (seconds' worth); for routes also headroom and target."""

    pps: float
    burst_s: float = 1.0
    headroom: float = 0.0
    target_latency_s: float | None = None  # AIMD target for this lane (routes)

    def __post_init__(self) -> None:
        if not (self.pps > 0 and math.isfinite(self.pps)):
            raise ValueError(f"pps must be finite and > 0, got {self.pps}")
        if not (self.burst_s > 0 and math.isfinite(self.burst_s)):
            raise ValueError(f"burst_s must be finite and > 0, got {self.burst_s}")
        if not 0 <= self.headroom < 1:
            raise ValueError(f"headroom must be in [0, 1), got {self.headroom}")

    @property
    def burst(self) -> float:
        return self.pps * self.burst_s


@dataclass(frozen=True, slots=True)
class DestinationLimit:
    """At most ``parts`` per destination number in any ``window_s`` seconds."""

    parts: int
    window_s: float = 60.0
    max_keys: int = 1_000_000

    def __post_init__(self) -> None:
        if self.parts <= 0 or self.window_s <= 0 or self.max_keys <= 0:
            raise ValueError("parts, window_s and max_keys must be positive")


def _no_entries() -> Mapping[str, RateLimit]:
    return MappingProxyType({})


def _no_quotas() -> Mapping[str, int]:
    return MappingProxyType({})


@dataclass(frozen=True)
class SchedulerConfig:
    """Everything the scheduler enforces; build it with :mod:`smsflow.domain.limits.hierarchy`.

    ``lanes``: limit per lane key (route id or tenant id). ``default_lane``: limit for a key that
    is not listed (None: such a lane has no lane limit; a lane whose key *leaves* the config keeps
    its last limit until it drains). ``daily_quota``: parts per UTC day per tenant id.
    ``adaptive``: AIMD parameters for every limited lane (None: no adaptive rate).
    """

    lane_by: LaneBy = "route"
    lanes: Mapping[str, RateLimit] = field(default_factory=_no_entries)
    default_lane: RateLimit | None = None
    global_limit: RateLimit | None = None
    destination: DestinationLimit | None = None
    tiers: TierPolicy = field(default_factory=TierPolicy)
    daily_quota: Mapping[str, int] = field(default_factory=_no_quotas)
    adaptive: AimdParams | None = None


@dataclass(frozen=True, slots=True)
class LimiterStats:
    """Plain counters for one limiter (metrics-ready).

    ``allowed_*``: released through it since start. ``waiting_*``: queued now behind it (for a
    lane: its queue depth, parked items excepted; for ``global``: the queues of lanes waiting for
    global tokens; for ``destination``: the parked items). ``rejected``: refused (quota).
    ``blocked``: times it was the limit that stopped a lane.
    ``rate_pps``: its current rate (adaptive for routes), None if unlimited.
    """

    name: str
    allowed_messages: int
    allowed_parts: int
    waiting_messages: int
    waiting_parts: int
    rejected_messages: int
    blocked: int
    rate_pps: float | None


@dataclass(frozen=True, slots=True)
class SchedulerMetrics:
    limiters: Mapping[str, LimiterStats]  # "global", "destination", "route:<id>"/"tenant:<id>"
    adaptive_rate_pps: Mapping[str, float]  # lane → current AIMD rate
    queued_messages: int
    queued_parts: int
    oldest_wait_s: float  # age of the oldest item still queued (0 if none)
    released_messages: int
    released_wait_total_s: float  # sum of waited_s over released items
    released_wait_max_s: float
    tracked_destinations: int
    destinations_evicted_active: int
