"""The capacity plan: what to run for ``growth x`` the current peak plus headroom.

Every figure carries the arithmetic that produced it (``PlannedFigure.arithmetic``), so the plan
can be checked by hand and argued with. The per-process capacities are measurements from this
repository's benchmarks (see :data:`DEFAULT_PROCESS_CAPACITY`); pass your own on other hardware.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from smsflow.domain.capacity.history import HistoryError
from smsflow.domain.capacity.patterns import KnownEvent, VolumePatterns

#: Pre-provision this long before a known event starts (scale-out, SMSC tps negotiations).
PROVISION_LEAD = timedelta(days=14)
#: The config model's upper bound on binds per SMSC account (smsflow/config/models.py Smsc.binds).
MAX_BINDS = 32


@dataclass(frozen=True)
class ProcessCapacity:
    """What one process carries, measured. Defaults and their sources:

    * worker 1,000 msg/s (per replica of each role, routing and delivery):
      ``bench/results/e2e.json`` scenario ``open-loop-1000-s24`` (commit 4db4b80): one worker of
      each role carried a steady 987 msg/s, 1.25 parts per message, receipts on, each at ~0.4 of
      a core on a 2-core machine it shared with the sender and the broker (bursts: ~1,900).
    * sender 4,407 parts/s: ``bench/results/sender.json`` (commit aa86c29), single-part messages
      with the ledger and receipts, the simulator on the same machine.
    * API 3,000 requests/s: docs/performance.md "HTTP API" (session 25, wrk as the load), the
      low end of 3,012-4,306 single POSTs/s in the full stack with the pipeline at equal
      priority on the same 2 cores (5,550-7,200/s with the API at a higher priority).
    """

    worker_msgs_per_s: float = 1000.0
    sender_parts_per_s: float = 4407.0
    api_requests_per_s: float = 3000.0
    #: submit_sm_resp wait assumed per PDU when sizing binds: the routes' default
    #: ``target_latency_ms`` (above it the adaptive limiter slows the route down).
    submit_latency_s: float = 0.5

    def __post_init__(self) -> None:
        for name in ("worker_msgs_per_s", "sender_parts_per_s", "api_requests_per_s",
                     "submit_latency_s"):
            if getattr(self, name) <= 0:
                raise HistoryError(f"{name} must be > 0")


DEFAULT_PROCESS_CAPACITY = ProcessCapacity()


@dataclass(frozen=True)
class PlanTarget:
    growth: float = 2.0
    headroom: float = 0.25

    def __post_init__(self) -> None:
        if self.growth <= 0:
            raise HistoryError("growth must be > 0")
        if not 0 <= self.headroom < 1:
            raise HistoryError("headroom is a fraction: 0 <= headroom < 1 (0.25 = 25%)")

    @property
    def factor(self) -> float:
        return self.growth * (1 + self.headroom)


@dataclass(frozen=True)
class RouteLink:
    route_id: str
    operators: tuple[str, ...]
    tps: float


@dataclass(frozen=True)
class SmscLink:
    """An SMSC account as the plan needs it: window per bind, binds today, routes over it."""

    smsc_id: str
    window: int
    binds: int
    routes: tuple[RouteLink, ...]

    @property
    def contracted_tps(self) -> float:
        return sum(route.tps for route in self.routes)


@dataclass(frozen=True)
class PlannedFigure:
    name: str
    value: int
    current: int | None
    arithmetic: str


@dataclass(frozen=True)
class SmscPlan:
    smsc_id: str
    share: float
    planned_parts_per_s: float
    per_bind_parts_per_s: float
    binds: PlannedFigure
    contracted_tps: float
    notes: tuple[str, ...]


@dataclass(frozen=True)
class EventProvision:
    name: str
    start: datetime
    provision_by: datetime
    multiplier: float | None
    multiplier_source: str
    expected_parts_per_s: float | None
    figures: tuple[PlannedFigure, ...]
    exceeds_plan: bool


@dataclass(frozen=True)
class CapacityPlan:
    target: PlanTarget
    capacity: ProcessCapacity
    peak_msgs_per_s: float
    peak_parts_per_s: float
    planned_msgs_per_s: float
    planned_parts_per_s: float
    figures: tuple[PlannedFigure, ...]
    smscs: tuple[SmscPlan, ...]
    events: tuple[EventProvision, ...]
    notes: tuple[str, ...] = field(default=())


def _replicas(
    name: str, demand: float, unit: str, per_process: float, current: int | None = None,
) -> PlannedFigure:
    value = max(1, math.ceil(demand / per_process))
    return PlannedFigure(
        name, value, current,
        f"ceil({demand:.1f} {unit} / {per_process:g} {unit} per process) = {value}",
    )


def _process_figures(
    msgs_per_s: float, parts_per_s: float, capacity: ProcessCapacity, partitions_now: int,
) -> tuple[PlannedFigure, ...]:
    workers = _replicas("worker_replicas", msgs_per_s, "msg/s", capacity.worker_msgs_per_s)
    senders = _replicas("sender_replicas", parts_per_s, "parts/s", capacity.sender_parts_per_s)
    api = _replicas("api_replicas", msgs_per_s, "req/s", capacity.api_requests_per_s)
    consumers = max(workers.value, senders.value)
    partitions = max(partitions_now, 2 * consumers)
    partition_figure = PlannedFigure(
        "flow_topic_partitions", partitions, partitions_now,
        f"max(current {partitions_now}, 2 x max(workers {workers.value}, senders "
        f"{senders.value})) = {partitions}: one partition per consumer, doubled so replicas "
        "can double again without adding partitions (which moves keys)",
    )
    return partition_figure, workers, senders, api


def _smsc_shares(
    patterns: VolumePatterns, smscs: Sequence[SmscLink],
) -> tuple[dict[str, float], list[str]]:
    """Each SMSC's share of all parts: an operator's share split over its routes by their tps."""
    routes_of: dict[str, list[tuple[str, float]]] = {}
    for smsc in smscs:
        for route in smsc.routes:
            for operator_id in route.operators:
                routes_of.setdefault(operator_id, []).append((smsc.smsc_id, route.tps))
    shares = {smsc.smsc_id: 0.0 for smsc in smscs}
    notes: list[str] = []
    for operator in patterns.operators:
        links = routes_of.get(operator.name)
        if not links:
            notes.append(
                f"operator {operator.name} ({operator.share:.1%} of parts) has no route: "
                "not counted in any SMSC's binds"
            )
            continue
        tps_total = sum(tps for _smsc, tps in links)
        for smsc_id, tps in links:
            shares[smsc_id] += operator.share * tps / tps_total
    return shares, notes


def _smsc_plan(
    smsc: SmscLink, share: float, parts_per_s: float, capacity: ProcessCapacity,
) -> SmscPlan:
    planned = parts_per_s * share
    per_bind = smsc.window / capacity.submit_latency_s
    binds = max(1, math.ceil(planned / per_bind))
    notes: list[str] = []
    if binds > MAX_BINDS:
        notes.append(f"{binds} binds exceed the {MAX_BINDS} per account the config allows: "
                     "ask the SMSC for a larger window or a second account")
    if planned > smsc.contracted_tps:
        notes.append(f"planned {planned:.1f} parts/s exceeds the routes' tps "
                     f"{smsc.contracted_tps:g}: negotiate more throughput with the SMSC")
    figure = PlannedFigure(
        "binds", binds, smsc.binds,
        f"{parts_per_s:.1f} parts/s x share {share:.4f} = {planned:.1f} parts/s; per bind "
        f"window {smsc.window} / {capacity.submit_latency_s:g} s submit_sm_resp = "
        f"{per_bind:g} parts/s; ceil({planned:.1f} / {per_bind:g}) = {binds}",
    )
    return SmscPlan(smsc.smsc_id, share, planned, per_bind, figure, smsc.contracted_tps,
                    tuple(notes))


def _event_provision(
    event: KnownEvent, patterns: VolumePatterns, target: PlanTarget, capacity: ProcessCapacity,
    planned_parts_per_s: float, partitions_now: int,
) -> EventProvision:
    past = [seen for seen in patterns.events if seen.event.name == event.name]
    if past:
        multiplier: float | None = max(seen.uplift for seen in past)
        source = f"observed {past[-1].event.start.date().isoformat()}"
    else:
        multiplier = event.expected_multiplier
        source = "given" if multiplier is not None else "unknown: no past occurrence, none given"
    provision_by = event.start - PROVISION_LEAD
    if multiplier is None:
        return EventProvision(event.name, event.start, provision_by, None, source, None, (),
                              False)
    peak = patterns.peak
    # The event's own peak plus the same headroom; growth is not applied a second time.
    msgs = peak.msgs_per_s * multiplier * (1 + target.headroom)
    parts = peak.parts_per_s * multiplier * (1 + target.headroom)
    figures = _process_figures(msgs, parts, capacity, partitions_now)
    return EventProvision(
        event.name, event.start, provision_by, multiplier, source,
        peak.parts_per_s * multiplier, figures, parts > planned_parts_per_s,
    )


def plan_capacity(
    patterns: VolumePatterns,
    *,
    now: datetime,
    target: PlanTarget = PlanTarget(),
    capacity: ProcessCapacity = DEFAULT_PROCESS_CAPACITY,
    partitions_now: int,
    smscs: Sequence[SmscLink] = (),
    upcoming: Sequence[KnownEvent] = (),
) -> CapacityPlan:
    """Size the platform for ``target.growth`` x the current peak with ``target.headroom``."""
    peak = patterns.peak
    msgs = peak.msgs_per_s * target.factor
    parts = peak.parts_per_s * target.factor
    figures = _process_figures(msgs, parts, capacity, partitions_now)
    shares, notes = _smsc_shares(patterns, smscs)
    smsc_plans = tuple(_smsc_plan(s, shares[s.smsc_id], parts, capacity) for s in smscs)
    events = tuple(
        _event_provision(event, patterns, target, capacity, parts, partitions_now)
        for event in sorted(upcoming, key=lambda e: e.start)
        if event.end > now
    )
    return CapacityPlan(
        target=target,
        capacity=capacity,
        peak_msgs_per_s=peak.msgs_per_s,
        peak_parts_per_s=peak.parts_per_s,
        planned_msgs_per_s=msgs,
        planned_parts_per_s=parts,
        figures=figures,
        smscs=smsc_plans,
        events=events,
        notes=tuple(notes),
    )
