"""Prometheus metrics of a worker, served at ``/metrics`` by faust's web server (``--web``).

Nothing is counted twice: the agents already keep plain counters (the scheduled stages'
:class:`~pipeline.scheduling.StageStats`, the delivery agents' counts, the commit guard's);
this module reads them when Prometheus scrapes, on the worker's event loop (faust serves the
page there), so the hot path pays nothing and no counter is read while it is being changed.

Families (labels in braces):

* ``smsflow_limiter_allowed_messages_total`` / ``_allowed_parts_total`` {stage, limiter}
* ``smsflow_limiter_waiting_messages`` / ``_waiting_parts`` {stage, limiter}
* ``smsflow_limiter_rejected_messages_total``, ``smsflow_limiter_blocked_total`` {stage, limiter}
* ``smsflow_limiter_rate_pps`` {stage, limiter}: current rate (adaptive for routes); absent when
  unlimited
* ``smsflow_stage_records`` {stage, state=tracked|queued|in_flight}, ``smsflow_stage_*_total``
  {stage} for acked, released, abandoned and clamped commits, ``smsflow_stage_oldest_wait_seconds``
* ``smsflow_delivery_events_total`` {event}: correlator/aggregator outcomes (completed, duplicate,
  after_done, timer actions, …)
* ``smsflow_route_health_score`` and ``smsflow_route_health_state`` {route, state} as this
  worker's router sees them (1 for the current state)
* ``smsflow_commit_guard_stale_acks_refused_total``, ``smsflow_commit_guard_commits_capped_total``
* ``smsflow_config_version``
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pipeline.commit_guard import GUARD
from pipeline.scheduling import ScheduledStage, StageStats

__all__ = ["WorkerCollector", "render"]

_HEALTH_STATES = ("HEALTHY", "DEGRADED", "DOWN")


class WorkerCollector(Collector):
    """Reads the worker's counters at scrape time. Sources are callables so that tests (and
    agents created later) plug in without import-order games."""

    def __init__(
        self,
        stages: Callable[[], Iterable[ScheduledStage[Any]]],
        delivery_counts: Callable[[], dict[str, int]],
        route_health: Callable[[], dict[str, tuple[str, float]]],
        config_version: Callable[[], int],
    ) -> None:
        self._stages = stages
        self._delivery_counts = delivery_counts
        self._route_health = route_health
        self._config_version = config_version

    def collect(self) -> Iterator[Metric]:
        yield from _stage_metrics([(stage.name, stage.stats()) for stage in self._stages()])
        events = CounterMetricFamily("smsflow_delivery_events", "Delivery agents' outcomes.",
                                     labels=["event"])
        for event, count in sorted(self._delivery_counts().items()):
            events.add_metric([event], count)
        yield events
        score = GaugeMetricFamily("smsflow_route_health_score",
                                  "Route health score (0-1) as the router sees it.",
                                  labels=["route"])
        state = GaugeMetricFamily("smsflow_route_health_state",
                                  "1 for the route's current health state.",
                                  labels=["route", "state"])
        for route, (current, value) in sorted(self._route_health().items()):
            score.add_metric([route], value)
            for name in _HEALTH_STATES:
                state.add_metric([route, name], 1.0 if name == current else 0.0)
        yield score
        yield state
        yield CounterMetricFamily(
            "smsflow_commit_guard_stale_acks_refused",
            "Acks of records skipped across a rebalance that were not committed.",
            value=GUARD.stale_acks_refused)
        yield CounterMetricFamily(
            "smsflow_commit_guard_commits_capped",
            "Commits faust computed past a record an agent still held.",
            value=GUARD.commits_capped)
        yield GaugeMetricFamily("smsflow_config_version",
                                "Offset of the configuration snapshot in use.",
                                value=self._config_version())


def _stage_metrics(stages: list[tuple[str, StageStats]]) -> Iterator[Metric]:
    def limiter_family(
        kind: type[CounterMetricFamily | GaugeMetricFamily], name: str, doc: str
    ) -> CounterMetricFamily | GaugeMetricFamily:
        return kind(name, doc, labels=["stage", "limiter"])

    allowed_m = limiter_family(CounterMetricFamily, "smsflow_limiter_allowed_messages",
                               "Messages released through the limiter.")
    allowed_p = limiter_family(CounterMetricFamily, "smsflow_limiter_allowed_parts",
                               "Message parts released through the limiter.")
    waiting_m = limiter_family(GaugeMetricFamily, "smsflow_limiter_waiting_messages",
                               "Messages waiting behind the limiter now.")
    waiting_p = limiter_family(GaugeMetricFamily, "smsflow_limiter_waiting_parts",
                               "Message parts waiting behind the limiter now.")
    rejected = limiter_family(CounterMetricFamily, "smsflow_limiter_rejected_messages",
                              "Messages the limiter refused (quota).")
    blocked = limiter_family(CounterMetricFamily, "smsflow_limiter_blocked",
                             "Times the limiter was what stopped a lane.")
    rate = limiter_family(GaugeMetricFamily, "smsflow_limiter_rate_pps",
                          "Current rate in parts/s (adaptive for routes).")
    records = GaugeMetricFamily("smsflow_stage_records", "Records a stage holds, by state.",
                                labels=["stage", "state"])
    oldest = GaugeMetricFamily("smsflow_stage_oldest_wait_seconds",
                               "Age of the oldest record waiting in the stage.",
                               labels=["stage"])
    totals = {
        name: CounterMetricFamily(f"smsflow_stage_{name}", doc, labels=["stage"])
        for name, doc in (
            ("acked", "Records acked (committable) by the stage."),
            ("released", "Records released by the stage's limits."),
            ("abandoned", "Records dropped at a rebalance, re-read by the next owner."),
            ("commits_clamped", "Commits held back at a record still waiting."),
        )
    }
    for stage, stats in stages:
        for limiter in stats.scheduler.limiters.values():
            labels = [stage, limiter.name]
            allowed_m.add_metric(labels, limiter.allowed_messages)
            allowed_p.add_metric(labels, limiter.allowed_parts)
            waiting_m.add_metric(labels, limiter.waiting_messages)
            waiting_p.add_metric(labels, limiter.waiting_parts)
            rejected.add_metric(labels, limiter.rejected_messages)
            blocked.add_metric(labels, limiter.blocked)
            if limiter.rate_pps is not None:
                rate.add_metric(labels, limiter.rate_pps)
        records.add_metric([stage, "tracked"], stats.tracked)
        records.add_metric([stage, "queued"], stats.queued)
        records.add_metric([stage, "in_flight"], stats.in_flight)
        oldest.add_metric([stage], stats.scheduler.oldest_wait_s)
        totals["acked"].add_metric([stage], stats.acked)
        totals["released"].add_metric([stage], stats.released)
        totals["abandoned"].add_metric([stage], stats.abandoned)
        totals["commits_clamped"].add_metric([stage], stats.commits_clamped)
    yield from (allowed_m, allowed_p, waiting_m, waiting_p, rejected, blocked, rate, records,
                oldest, *totals.values())


def render(collector: WorkerCollector) -> bytes:
    """The exposition text of one scrape."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return generate_latest(registry)
