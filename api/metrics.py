"""The API's Prometheus metrics, built on an injected registry (one bundle per app).

Requests are counted by route template (``/v1/messages``, never the raw path, so ids do not
explode the series) and status class (``2xx`` ... ``5xx``); the latency histogram has buckets
fine enough below 50 ms for P50/P95/P99 (``histogram_quantile``).
"""

from __future__ import annotations

from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS_S: Final = (
    0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
)


class ApiMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            "smsflow_api_requests_total", "HTTP requests answered, by route and status class.",
            ["route", "status_class"], registry=registry,
        )
        self.latency = Histogram(
            "smsflow_api_request_duration_seconds", "Time to answer a request, by route.",
            ["route"], buckets=LATENCY_BUCKETS_S, registry=registry,
        )
        self.in_flight = Gauge(
            "smsflow_api_requests_in_flight", "Requests being handled now.", registry=registry,
        )
        self.accepted = Counter(
            "smsflow_api_messages_accepted_total",
            "Messages stored on sms.submitted and answered 202, by tenant.",
            ["tenant"], registry=registry,
        )
        self.errors = Counter(
            "smsflow_api_errors_total", "Error answers, by code.", ["code"], registry=registry,
        )

    def observe(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route, f"{status // 100}xx").inc()
        self.latency.labels(route).observe(seconds)
