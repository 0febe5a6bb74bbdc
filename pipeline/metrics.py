"""Prometheus metrics of a worker, served at ``/metrics`` by faust's web server (``--web``).

Nothing is counted twice: the agents already keep plain counters (the scheduled stages'
:class:`~pipeline.scheduling.StageStats`, the delivery agents' counts, the guarded consumer's);
this module reads them when Prometheus scrapes, on the worker's event loop (faust serves the
page there), so the hot path pays nothing and no counter is read while it is being changed.

Families (labels in braces):

* ``smsflow_limiter_allowed_messages_total`` / ``_allowed_parts_total`` {stage, limiter}
* ``smsflow_limiter_waiting_messages`` / ``_waiting_parts`` {stage, limiter}
* ``smsflow_limiter_rejected_messages_total``, ``smsflow_limiter_blocked_total`` {stage, limiter}
* ``smsflow_limiter_rate_pps`` {stage, limiter}: current rate (adaptive for routes); absent when
  unlimited
* ``smsflow_stage_records`` {stage, state=tracked|queued|in_flight}, ``smsflow_stage_*_total``
  {stage} for acked, released, abandoned, diverted and clamped commits,
  ``smsflow_stage_oldest_wait_seconds``
* ``smsflow_delivery_events_total`` {event}: correlator/aggregator outcomes (completed, duplicate,
  after_done, timer actions, …)
* ``smsflow_route_health_score`` and ``smsflow_route_health_state`` {route, state} as this
  worker's router sees them (1 for the current state)
* ``smsflow_commit_guard_*_total``: what the consumer guard corrected
  (pipeline/faust_patches/guarded_consumer.py)
* ``smsflow_deferred_*``: Economy parked for off-peak windows and released (pipeline/deferral.py)
* ``smsflow_tracking_feed_*_total``: records the tracking feed counted (pipeline/window_feed.py)
* ``smsflow_changelog_changes_total`` / ``_records_total`` / ``_skipped_total``,
  ``smsflow_changelog_held_keys``: table changes and the changelog records they cost
  (pipeline/changelog_cache.py)
* ``smsflow_config_version``
* ``smsflow_rejections_total`` {stage, reason}: records sent to sms.rejected
* ``smsflow_routed_messages_total`` / ``_parts_total`` {tenant, operator}: what the router passed
  on (pipeline/traffic_counts.py)
* ``smsflow_window_delivery_ratio`` {scope, id}, ``smsflow_window_terminal_outcomes``
  {scope, id, status}, ``smsflow_window_submits`` {scope, id, result},
  ``smsflow_window_submit_latency_p95_seconds`` {scope, id}: the 15-minute rolling windows
  this worker owns (scope = route, operator, tenant)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pipeline import traffic_counts
from pipeline.backlog_batching import BACKLOG
from pipeline.changelog_cache import ChangelogCache
from pipeline.commit_guard import GUARD
from pipeline.deferral import DEFERRAL, HELD
from pipeline.scheduling import ScheduledStage, StageStats
from pipeline.window_feed import FEED
from smsflow.domain.tracking.windows import TERMINAL_STATUSES, WindowStats

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
        windows: Callable[[], Iterable[tuple[str, WindowStats]]] = tuple,
        rejections: Callable[[], dict[tuple[str, str], int]] = dict,
        changelogs: ChangelogCache | None = None,
    ) -> None:
        self._changelogs = changelogs
        self._windows = windows
        self._rejections = rejections
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
        for name, help_text, field in _GUARD_FAMILIES:
            yield CounterMetricFamily(name, help_text, value=getattr(GUARD, field))
        for name, counter, help_text, field in _DEFERRAL_FAMILIES:
            family = CounterMetricFamily if counter else GaugeMetricFamily
            yield family(name, help_text, value=getattr(DEFERRAL, field))
        for name, help_text, field in _FEED_FAMILIES:
            yield CounterMetricFamily(name, help_text, value=getattr(FEED, field))
        yield GaugeMetricFamily(
            "smsflow_worker_backlog_batching",
            "1 while the worker is behind and hands its outputs over late for fuller batches "
            "(SMSFLOW_BACKLOG_HAND_OVER_MS).", value=BACKLOG.active)
        yield CounterMetricFamily("smsflow_worker_backlogs",
                                  "Backlogs the worker entered (batching its outputs harder).",
                                  value=BACKLOG.entered)
        yield from changelog_metrics(self._changelogs)
        for name, counter, help_text, field in _HELD_FAMILIES:
            family = CounterMetricFamily if counter else GaugeMetricFamily
            yield family(name, help_text, value=getattr(HELD, field))
        yield GaugeMetricFamily("smsflow_config_version",
                                "Offset of the configuration snapshot in use.",
                                value=self._config_version())
        yield from window_metrics(self._windows())
        rejected = CounterMetricFamily("smsflow_rejections",
                                       "Records sent to sms.rejected, by stage and reason code.",
                                       labels=["stage", "reason"])
        for (stage, reason), count in sorted(self._rejections().items()):
            rejected.add_metric([stage, reason], count)
        yield rejected
        yield from routed_metrics(traffic_counts.routed_messages, traffic_counts.routed_parts)


def changelog_metrics(cache: ChangelogCache | None) -> Iterator[Metric]:
    """What the table changes cost in changelog records (pipeline/changelog_cache.py); zeros
    before the worker has its cache."""
    changes, records, skipped, held = (
        (cache.changes, cache.records, cache.skipped, cache.held) if cache else (0, 0, 0, 0))
    yield CounterMetricFamily("smsflow_changelog_changes",
                              "Table changes made (quota rows, windows, pending receipts, "
                              "done markers).", value=changes)
    yield CounterMetricFamily("smsflow_changelog_records",
                              "Changelog records written for them (the last value per key "
                              "within SMSFLOW_CHANGELOG_HOLD_MS).", value=records)
    yield CounterMetricFamily("smsflow_changelog_skipped",
                              "Keys set and deleted within the hold: no record needed.",
                              value=skipped)
    yield GaugeMetricFamily("smsflow_changelog_held_keys",
                            "Keys whose change waits for the next commit or the hold.",
                            value=held)


def routed_metrics(messages: Mapping[tuple[str, str], int],
                   parts: Mapping[tuple[str, str], int]) -> Iterator[Metric]:
    """What the router passed on, per tenant and operator (the capacity history)."""
    for name, help_text, counts in (
        ("smsflow_routed_messages", "Messages the router passed on, by tenant and operator.",
         messages),
        ("smsflow_routed_parts", "SMS parts the router passed on, by tenant and operator.",
         parts),
    ):
        family = CounterMetricFamily(name, help_text, labels=["tenant", "operator"])
        for (tenant, operator), count in sorted(counts.items()):
            family.add_metric([tenant, operator], count)
        yield family


#: Window key prefixes and their ``scope`` label (pipeline/agents/tracking.py window_keys).
WINDOW_SCOPES: tuple[str, ...] = ("route", "operator", "tenant")


def window_metrics(windows: Iterable[tuple[str, WindowStats]]) -> Iterator[Metric]:
    """The rolling windows as gauges: each value covers the last 15 minutes (the window)."""
    labels = ["scope", "id"]
    ratio = GaugeMetricFamily(
        "smsflow_window_delivery_ratio",
        "DELIVERED / terminal outcomes in the rolling window (absent without outcomes).",
        labels=labels)
    terminal = GaugeMetricFamily("smsflow_window_terminal_outcomes",
                                 "Terminal outcomes in the rolling window, by status.",
                                 labels=[*labels, "status"])
    submits = GaugeMetricFamily("smsflow_window_submits",
                                "Part submits in the rolling window (accepted, failed).",
                                labels=[*labels, "result"])
    p95 = GaugeMetricFamily("smsflow_window_submit_latency_p95_seconds",
                            "p95 submit latency in the rolling window (absent without submits).",
                            labels=labels)
    for key, window in sorted(windows, key=lambda item: item[0]):
        scope, _, ident = key.partition(":")
        if scope not in WINDOW_SCOPES:
            continue
        names = [scope, ident]
        if window.delivery_rate is not None:
            ratio.add_metric(names, window.delivery_rate)
        for status in TERMINAL_STATUSES:  # ACCEPTED is not a delivery outcome: not counted
            terminal.add_metric([*names, status.value], window.terminal.get(status, 0))
        submits.add_metric([*names, "accepted"], window.submits_accepted)
        submits.add_metric([*names, "failed"], window.submits_failed)
        if window.latency_p95_ms is not None:
            p95.add_metric(names, window.latency_p95_ms / 1000)
    yield from (ratio, terminal, submits, p95)


#: The consumer guard's counters: (family name, help, the CommitGuard field).
_GUARD_FAMILIES: tuple[tuple[str, str, str], ...] = (
    ("smsflow_commit_guard_stale_acks_refused",
     "Acks of records skipped across a rebalance that were not committed.", "stale_acks_refused"),
    ("smsflow_commit_guard_commits_capped",
     "Commits faust computed past a record an agent still held.", "commits_capped"),
    ("smsflow_commit_guard_refetched_skipped",
     "Records fetched again after a seek that this generation had delivered already.",
     "refetched_skipped"),
    ("smsflow_commit_guard_stale_fetches_skipped",
     "Records fetched under an older consumer generation, left to the new owner.",
     "stale_fetches_skipped"),
    ("smsflow_commit_guard_head_gaps_held",
     "Commits deferred: the committed offset's record is not processed yet (normal while in "
     "flight; faust would have passed it).",
     "head_gaps_held"),
    ("smsflow_commit_guard_rewinds",
     "Partitions read again from their committed offset after faust dropped a record.",
     "rewinds"),
    ("smsflow_commit_guard_wait_empty_released",
     "In-flight records a rebalance stopped waiting for (not committed: read again by the "
     "partition's next owner).", "wait_empty_released"),
    ("smsflow_commit_guard_held_before_start",
     "Records fetched after a rebalance before the committed offsets were known; held back "
     "and fetched again from the committed offset.", "held_before_start"),
    ("smsflow_commit_guard_buffer_waits",
     "Deliveries that found a stream buffer full and waited until it was half empty (a "
     "backlog: the agent is the bottleneck).", "buffer_waits"),
)


#: The tracking feed (pipeline/window_feed.py): (family name, help, the FeedStats field).
_FEED_FAMILIES: tuple[tuple[str, str, str], ...] = (
    ("smsflow_tracking_feed_counted",
     "sms.sent/sms.dlr records counted into the rolling windows (deltas stored, committed).",
     "counted"),
    ("smsflow_tracking_feed_recounted",
     "Records counted whose commit a rebalance refused: their next owner counts them again.",
     "recounted"),
)


#: Economy off-peak holding: (family name, Counter or Gauge, help, the DeferralStats field).
_DEFERRAL_FAMILIES: tuple[tuple[str, bool, str, str], ...] = (
    ("smsflow_deferred_parked", True,
     "Economy records parked on sms.deferred until an off-peak window.", "parked"),
    ("smsflow_deferred_released", True,
     "Parked records sent back to sms.routed when their window opened.", "released"),
    ("smsflow_deferred_bad_headers", True,
     "Parked records without a readable release time (released at once).", "bad_headers"),
    ("smsflow_deferred_waiting_partitions", False,
     "sms.deferred partitions this worker holds paused until their head is due.",
     "waiting_partitions"),
)


#: Per limiter: (family name, Counter or Gauge, help, the LimiterStats field).
_LIMITER_FAMILIES: tuple[tuple[str, bool, str, str], ...] = (
    ("smsflow_limiter_allowed_messages", True, "Messages released through the limiter.",
     "allowed_messages"),
    ("smsflow_limiter_allowed_parts", True, "Message parts released through the limiter.",
     "allowed_parts"),
    ("smsflow_limiter_waiting_messages", False, "Messages waiting behind the limiter now.",
     "waiting_messages"),
    ("smsflow_limiter_waiting_parts", False, "Message parts waiting behind the limiter now.",
     "waiting_parts"),
    ("smsflow_limiter_rejected_messages", True, "Messages the limiter refused (quota).",
     "rejected_messages"),
    ("smsflow_limiter_blocked", True, "Times the limiter was what stopped a lane.", "blocked"),
    ("smsflow_limiter_rate_pps", False, "Current rate in parts/s (adaptive for routes).",
     "rate_pps"),  # absent when unlimited (None)
)
#: Per stage counters: (StageStats field, help).
_STAGE_TOTALS: tuple[tuple[str, str], ...] = (
    ("acked", "Records acked (committable) by the stage."),
    ("released", "Records released by the stage's limits."),
    ("abandoned", "Records dropped at a rebalance, re-read by the next owner."),
    ("diverted", "Held records parked elsewhere (Economy to sms.deferred at a window's end)."),
    ("commits_clamped", "Commits held back at a record still waiting."),
)


def _stage_metrics(stages: list[tuple[str, StageStats]]) -> Iterator[Metric]:
    limiter_families = [
        (CounterMetricFamily if counter else GaugeMetricFamily)(
            name, doc, labels=["stage", "limiter"]) for name, counter, doc, _ in _LIMITER_FAMILIES
    ]
    records = GaugeMetricFamily("smsflow_stage_records", "Records a stage holds, by state.",
                                labels=["stage", "state"])
    oldest = GaugeMetricFamily("smsflow_stage_oldest_wait_seconds",
                               "Age of the oldest record waiting in the stage.",
                               labels=["stage"])
    totals = [CounterMetricFamily(f"smsflow_stage_{field}", doc, labels=["stage"])
              for field, doc in _STAGE_TOTALS]
    for stage, stats in stages:
        for limiter in stats.scheduler.limiters.values():
            labels = [stage, limiter.name]
            for family, (_, _, _, field) in zip(limiter_families, _LIMITER_FAMILIES, strict=True):
                value = getattr(limiter, field)
                if value is not None:
                    family.add_metric(labels, value)
        for state in ("tracked", "queued", "in_flight"):
            records.add_metric([stage, state], getattr(stats, state))
        oldest.add_metric([stage], stats.scheduler.oldest_wait_s)
        for family, (field, _) in zip(totals, _STAGE_TOTALS, strict=True):
            family.add_metric([stage], getattr(stats, field))
    yield from (*limiter_families, records, oldest, *totals)


def render(collector: WorkerCollector) -> bytes:
    """The exposition text of one scrape."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return generate_latest(registry)


#: Quarantine holding: (family name, Counter or Gauge, help, the DeferralStats field).
_HELD_FAMILIES: tuple[tuple[str, bool, str, str], ...] = (
    ("smsflow_held_parked", True,
     "Records of quarantined tenants parked on sms.held.", "parked"),
    ("smsflow_held_released", True,
     "Held records sent back to sms.submitted after their tenant's release.", "released"),
    ("smsflow_held_waiting_partitions", False,
     "sms.held partitions this worker holds paused behind a quarantined tenant's record.",
     "waiting_partitions"),
)
