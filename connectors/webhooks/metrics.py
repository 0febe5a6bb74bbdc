"""Prometheus metrics of the webhooks connector, read from its counters at scrape time.

The connector already counts every outcome per kind (:class:`~connectors.webhooks.lanes.Stats`,
one for delivery reports, one for MO messages) and holds one lane per tenant and kind;
:class:`WebhookCollector` reads them when Prometheus scrapes (from the metrics server's thread:
plain int reads and a ``list()`` copy of the lanes, no lock the event loop waits on), so
delivering a report costs nothing extra.

Families (docs/metrics.md#webhooks-connector), every one labelled ``kind`` (``report`` or
``mo``) except the last: ``smsflow_webhook_reports_total`` {kind, outcome},
``smsflow_webhook_delivered_total`` {kind, tenant}, ``smsflow_webhook_backlog_reports``
{kind, tenant}, ``smsflow_webhook_in_flight_requests`` {kind, tenant},
``smsflow_webhook_paused_partitions``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from connectors.webhooks.lanes import Lane, Stats
from connectors.webhooks.payload import Kind

__all__ = ["OUTCOMES", "WebhookCollector"]

#: ``outcome`` label values: the Stats fields, each a count of records (``retried``: attempts).
OUTCOMES: tuple[str, ...] = (
    "received", "delivered", "skipped", "retried", "rejected", "gave_up", "undecodable",
    "abandoned",
)


class WebhookCollector(Collector):
    def __init__(
        self,
        stats: Mapping[Kind, Stats],
        lanes: Callable[[], Sequence[Lane]],
        paused_partitions: Callable[[], int],
    ) -> None:
        self._stats = stats
        self._lanes = lanes
        self._paused = paused_partitions

    def collect(self) -> Iterator[Metric]:
        reports = CounterMetricFamily(
            "smsflow_webhook_reports",
            "Webhook payloads by kind (report: sms.dlr, mo: sms.inbound) and outcome: received, "
            "delivered (2xx), skipped (no webhook, MO off, MO without a tenant), retried (failed "
            "attempts retried), rejected (WEBHOOK_REJECTED), gave_up (WEBHOOK_GAVE_UP), "
            "undecodable, abandoned (re-read after a rebalance/stop).",
            labels=["kind", "outcome"])
        delivered = CounterMetricFamily(
            "smsflow_webhook_delivered", "Payloads delivered (2xx) per kind and tenant.",
            labels=["kind", "tenant"])
        for kind, stats in self._stats.items():
            for outcome in OUTCOMES:
                reports.add_metric([kind, outcome], getattr(stats, outcome))
            by_tenant: Mapping[str, int] = dict(stats.delivered_by_tenant)
            for tenant, count in sorted(by_tenant.items()):
                delivered.add_metric([kind, tenant], count)
        yield reports
        yield delivered
        backlog = GaugeMetricFamily("smsflow_webhook_backlog_reports",
                                    "Payloads queued or being delivered per kind and tenant.",
                                    labels=["kind", "tenant"])
        in_flight = GaugeMetricFamily("smsflow_webhook_in_flight_requests",
                                      "Payloads being delivered or waiting between attempts.",
                                      labels=["kind", "tenant"])
        for lane in sorted(self._lanes(), key=lambda lane: (lane.tenant_id, lane.kind)):
            backlog.add_metric([lane.kind, lane.tenant_id], lane.backlog)
            in_flight.add_metric([lane.kind, lane.tenant_id], lane.in_flight)
        yield backlog
        yield in_flight
        yield GaugeMetricFamily("smsflow_webhook_paused_partitions",
                                "sms.dlr and sms.inbound partitions paused for back-pressure.",
                                value=self._paused())
