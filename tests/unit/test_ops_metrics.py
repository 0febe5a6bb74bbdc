"""Metric families built outside a running process: the sender's per-event instruments and
scrape-time collector, the worker's rolling-window gauges, the webhooks collector and the
pure lag arithmetic of the Kafka exporter."""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from connectors.kafka_exporter.lag import partition_lag
from connectors.sender.metrics import BindView, SenderCollector, SenderMetrics, status_label
from connectors.smpp.models import BindState, PartResult
from connectors.webhooks.lanes import Lane, Stats
from connectors.webhooks.metrics import WebhookCollector
from pipeline.metrics import window_metrics
from smsflow.domain.receipts import DeliveryStatus
from smsflow.domain.smpp_status import StatusCategory
from smsflow.domain.tracking import TerminalEvent, WindowState
from smsflow.domain.tracking.windows import DEFAULT_WINDOW_SPEC, stats, step, submit_event

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _samples(registry: CollectorRegistry) -> Samples:
    text = generate_latest(registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _registered(collector: Collector) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(collector)
    return registry


def _part(status: int | None, latency_s: float, lost: bool = False) -> PartResult:
    return PartResult(seq=1, command_status=status, category=StatusCategory.OK,
                      smsc_message_id="1", latency_s=latency_s, connection_lost=lost)


def test_status_labels_are_bounded() -> None:
    assert status_label(0) == "ESME_ROK"
    assert status_label(0x58) == "ESME_RTHROTTLED"
    assert status_label(None) == "CONNECTION_LOST"
    assert status_label(0x401) == "UNKNOWN"
    assert status_label(2**40) == "UNKNOWN"


def test_sender_metrics_count_statuses_and_latency_per_smsc() -> None:
    metrics = SenderMetrics()
    metrics.observe_part("smsc-uk", _part(0, 0.003))
    metrics.observe_part("smsc-uk", _part(0x58, 0.2))
    metrics.observe_part("smsc-uk", _part(None, 1.5, lost=True))
    metrics.observe_part("smsc-de", _part(0, 0.004))
    samples = _samples(metrics.registry)
    responses = "smsflow_smpp_submit_responses_total"
    assert samples[(responses, (("smsc", "smsc-uk"), ("status", "ESME_ROK")))] == 1
    assert samples[(responses, (("smsc", "smsc-uk"), ("status", "ESME_RTHROTTLED")))] == 1
    assert samples[(responses, (("smsc", "smsc-uk"), ("status", "CONNECTION_LOST")))] == 1
    # A lost part has no response, so no latency: 2 observations for smsc-uk, not 3.
    assert samples[("smsflow_smpp_submit_latency_seconds_count", (("smsc", "smsc-uk"),))] == 2
    assert samples[("smsflow_smpp_submit_latency_seconds_bucket",
                    (("le", "0.005"), ("smsc", "smsc-uk")))] == 1
    assert samples[("smsflow_smpp_submit_latency_seconds_count", (("smsc", "smsc-de"),))] == 1


def test_sender_metrics_reuse_their_labelled_children() -> None:
    metrics = SenderMetrics()
    metrics.observe_part("smsc-uk", _part(0, 0.001))
    first = (metrics._latency_of["smsc-uk"], metrics._responses_of["smsc-uk"][0])
    metrics.observe_part("smsc-uk", _part(0, 0.001))
    assert (metrics._latency_of["smsc-uk"], metrics._responses_of["smsc-uk"][0]) == first


def test_sender_collector_reads_binds_queues_and_counters() -> None:
    views = [
        BindView("smsc-uk", "smsc-uk#0", BindState.BOUND, 7, 50, binds=2,
                 connection_losses=1, bind_failures=3),
        BindView("smsc-uk", "smsc-uk#1", BindState.CONNECTING, 0, 50, binds=1,
                 connection_losses=1, bind_failures=0),
    ]
    collector = SenderCollector(lambda: views, lambda: {"smsc-uk": 12},
                                lambda: {"messages": 5, "failovers": 1, "inbound": 3,
                                         "in_doubt_resubmits": 2, "parts_skipped": 9})
    samples = _samples(_registered(collector))
    b0, b1 = (("bind", "smsc-uk#0"), ("smsc", "smsc-uk")), (("bind", "smsc-uk#1"),
                                                            ("smsc", "smsc-uk"))
    assert samples[("smsflow_smpp_bind_up", b0)] == 1
    assert samples[("smsflow_smpp_bind_up", b1)] == 0
    assert samples[("smsflow_smpp_bind_transitions_total", (b0[0], ("direction", "up"),
                                                             b0[1]))] == 2
    assert samples[("smsflow_smpp_bind_transitions_total", (b0[0], ("direction", "down"),
                                                             b0[1]))] == 1
    assert samples[("smsflow_smpp_bind_failures_total", b0)] == 3
    assert samples[("smsflow_smpp_window_in_flight", b0)] == 7
    assert samples[("smsflow_smpp_window_size", b0)] == 50
    assert samples[("smsflow_sender_queued_parts", (("smsc", "smsc-uk"),))] == 12
    assert samples[("smsflow_sender_messages_total", ())] == 5
    assert samples[("smsflow_sender_failovers_total", ())] == 1
    assert samples[("smsflow_sender_receipts_total", ())] == 0
    assert samples[("smsflow_sender_inbound_total", ())] == 3
    assert samples[("smsflow_sender_in_doubt_resubmits_total", ())] == 2
    assert samples[("smsflow_sender_parts_skipped_total", ())] == 9


class _Windows(Collector):
    def __init__(self, windows: list[tuple[str, WindowState]], now_ms: int) -> None:
        self._windows = [(key, stats(window, now_ms)) for key, window in windows]

    def collect(self) -> Iterator[Metric]:
        return window_metrics(self._windows)


def test_window_gauges_give_the_delivery_ratio_per_scope() -> None:
    now_ms = 1_700_000_000_000
    window = WindowState.empty(DEFAULT_WINDOW_SPEC)
    for index in range(20):
        status = DeliveryStatus.DELIVERED if index < 18 else DeliveryStatus.EXPIRED
        window = step(window, TerminalEvent(now_ms - 1000, status), now_ms)
    window = step(window, submit_event(now_ms - 1000, accepted=True, latency_ms=40,
                                       command_status=0), now_ms)
    quiet = WindowState.empty(DEFAULT_WINDOW_SPEC)
    samples = _samples(_registered(_Windows(
        [("route:uk-direct", window), ("tenant:acme", quiet), ("bogus", quiet)], now_ms)))
    route = (("id", "uk-direct"), ("scope", "route"))
    assert samples[("smsflow_window_delivery_ratio", route)] == 0.9
    assert samples[("smsflow_window_terminal_outcomes", (route[0], route[1],
                                                         ("status", "EXPIRED")))] == 2
    assert samples[("smsflow_window_submits", (route[0], ("result", "accepted"),
                                               route[1]))] == 1
    assert ("smsflow_window_submit_latency_p95_seconds", route) in samples
    # No outcomes: no ratio (absent, not 0 or 1), but the counts are there.
    tenant = (("id", "acme"), ("scope", "tenant"))
    assert ("smsflow_window_delivery_ratio", tenant) not in samples
    assert samples[("smsflow_window_terminal_outcomes", (tenant[0], tenant[1],
                                                         ("status", "DELIVERED")))] == 0
    assert not any(dict(labels).get("id") == "bogus" for _, labels in samples)


def test_webhook_collector_reads_outcomes_and_lanes_by_kind() -> None:
    reports = Stats(received=5, delivered=3, gave_up=1, delivered_by_tenant=Counter({"acme": 3}))
    mo = Stats(received=2, delivered=1, skipped=1, delivered_by_tenant=Counter({"acme": 1}))
    lanes = [Lane("acme", "report", queue=deque(), in_flight=2),
             Lane("acme", "mo", queue=deque(), in_flight=1)]
    samples = _samples(_registered(
        WebhookCollector({"report": reports, "mo": mo}, lambda: lanes, lambda: 1)))
    family = "smsflow_webhook_reports_total"
    assert samples[(family, (("kind", "report"), ("outcome", "delivered")))] == 3
    assert samples[(family, (("kind", "report"), ("outcome", "gave_up")))] == 1
    assert samples[(family, (("kind", "mo"), ("outcome", "delivered")))] == 1
    assert samples[(family, (("kind", "mo"), ("outcome", "skipped")))] == 1
    assert samples[(family, (("kind", "mo"), ("outcome", "gave_up")))] == 0
    delivered = "smsflow_webhook_delivered_total"
    assert samples[(delivered, (("kind", "report"), ("tenant", "acme")))] == 3
    assert samples[(delivered, (("kind", "mo"), ("tenant", "acme")))] == 1
    in_flight = "smsflow_webhook_in_flight_requests"
    assert samples[(in_flight, (("kind", "report"), ("tenant", "acme")))] == 2
    assert samples[(in_flight, (("kind", "mo"), ("tenant", "acme")))] == 1
    assert samples[("smsflow_webhook_paused_partitions", ())] == 1


def test_partition_lag() -> None:
    assert partition_lag(committed=5, high=5, head_timestamp_ms=None, now_ms=0).seconds == 0.0
    lag = partition_lag(committed=5, high=9, head_timestamp_ms=None, now_ms=0)
    assert (lag.records, lag.seconds) == (4, None)  # unknown, not 0
    assert partition_lag(committed=9, high=5, head_timestamp_ms=1, now_ms=0).records == 0
    skewed = partition_lag(committed=0, high=1, head_timestamp_ms=10_000, now_ms=5_000)
    assert skewed.seconds == 0.0


def test_metrics_server_serves_and_survives_a_taken_port() -> None:
    import socket
    import urllib.request

    import pytest

    from smsflow.metrics_http import serve_metrics

    metrics = SenderMetrics()
    metrics.observe_part("smsc-uk", _part(0, 0.001))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # Another process holds the port: a sender runs on without its page ...
        serve_metrics(metrics.registry, "127.0.0.1", port, "test").shutdown()
        # ... the Kafka exporter, whose only job is the page, refuses to start.
        with pytest.raises(OSError):
            serve_metrics(metrics.registry, "127.0.0.1", port, "test", required=True)
    serve_metrics(metrics.registry, "127.0.0.1", 0, "test").shutdown()  # port 0: off
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    server = serve_metrics(metrics.registry, "127.0.0.1", free, "test")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{free}/metrics", timeout=5) as page:
            assert b'smsflow_smpp_submit_responses_total{smsc="smsc-uk",status="ESME_ROK"}' \
                in page.read()
    finally:
        server.shutdown()
    with socket.socket() as again:  # the port is released, not held until the process exits
        # SO_REUSEADDR: the scrape's connection may linger in TIME_WAIT; a listener still
        # bound to the port refuses the bind all the same (Linux).
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", free))
