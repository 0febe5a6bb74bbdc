"""Prometheus metrics of the webhooks connector, read from its counters at scrape time.

The connector already counts every outcome (:class:`~connectors.webhooks.lanes.Stats`) and
holds one lane per tenant; :class:`WebhookCollector` reads both when Prometheus scrapes (from
the metrics server's thread: plain int reads and a ``list()`` copy of the lanes, no lock the
event loop waits on), so delivering a report costs nothing extra.

Families (docs/metrics.md#webhooks-connector): ``smsflow_webhook_reports_total`` {outcome},
``smsflow_webhook_delivered_total`` {tenant}, ``smsflow_webhook_backlog_reports`` {tenant},
``smsflow_webhook_in_flight_requests`` {tenant}, ``smsflow_webhook_paused_partitions``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from connectors.webhooks.lanes import Lane, Stats

__all__ = ["OUTCOMES", "WebhookCollector"]

#: ``outcome`` label values: the Stats fields, each a count of reports (``retried``: attempts).
OUTCOMES: tuple[str, ...] = (
    "received", "delivered", "skipped", "retried", "rejected", "gave_up", "undecodable",
    "abandoned",
)


class WebhookCollector(Collector):
    def __init__(
        self,
        stats: Stats,
        lanes: Callable[[], Sequence[Lane]],
        paused_partitions: Callable[[], int],
    ) -> None:
        self._stats = stats
        self._lanes = lanes
        self._paused = paused_partitions

    def collect(self) -> Iterator[Metric]:
        reports = CounterMetricFamily(
            "smsflow_webhook_reports",
            "Delivery reports by outcome: received from sms.dlr, delivered (2xx), skipped (no "
            "webhook), retried (failed attempts retried), rejected (WEBHOOK_REJECTED), gave_up "
            "(WEBHOOK_GAVE_UP), undecodable, abandoned (re-read after a rebalance/stop).",
            labels=["outcome"])
        for outcome in OUTCOMES:
            reports.add_metric([outcome], getattr(self._stats, outcome))
        yield reports
        delivered = CounterMetricFamily("smsflow_webhook_delivered",
                                        "Reports delivered (2xx) per tenant.", labels=["tenant"])
        by_tenant: Mapping[str, int] = dict(self._stats.delivered_by_tenant)
        for tenant, count in sorted(by_tenant.items()):
            delivered.add_metric([tenant], count)
        yield delivered
        backlog = GaugeMetricFamily("smsflow_webhook_backlog_reports",
                                    "Reports queued or being delivered per tenant.",
                                    labels=["tenant"])
        in_flight = GaugeMetricFamily("smsflow_webhook_in_flight_requests",
                                      "Reports being delivered or waiting between attempts.",
                                      labels=["tenant"])
        for lane in sorted(self._lanes(), key=lambda lane: lane.tenant_id):
            backlog.add_metric([lane.tenant_id], lane.backlog)
            in_flight.add_metric([lane.tenant_id], lane.in_flight)
        yield backlog
        yield in_flight
        yield GaugeMetricFamily("smsflow_webhook_paused_partitions",
                                "sms.dlr partitions paused for back-pressure.",
                                value=self._paused())
