"""Prometheus metrics of the SMPP sender, served at ``/metrics`` (``sender --metrics-port``).

Two kinds, chosen by who pays:

* what only exists per event (submit latency, ``command_status`` of each ``submit_sm_resp``) is
  counted on the session threads by :class:`SenderMetrics`. Labelled children are created once
  per SMSC (and status) and cached in plain dicts, so a part costs two dict lookups, one
  histogram observe and one counter increment - no label tuple, no registry lookup;
* what the sender keeps anyway (bind state, window occupancy, queues, the service's counters,
  the bind/disconnect counts of each ``SmppClient``) is read at scrape time by
  :class:`SenderCollector`, so the hot path pays nothing for it.

Families (docs/metrics.md#sender): ``smsflow_smpp_submit_latency_seconds`` {smsc},
``smsflow_smpp_submit_responses_total`` {smsc, status}, ``smsflow_smpp_bind_up`` {smsc, bind},
``smsflow_smpp_bind_transitions_total`` {smsc, bind, direction},
``smsflow_smpp_bind_failures_total`` {smsc, bind},
``smsflow_smpp_window_in_flight`` / ``_window_size`` {smsc, bind},
``smsflow_sender_queued_parts`` {smsc}, ``smsflow_sender_<counter>_total``,
``smsflow_rejections_total`` {stage="sender", reason}.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from connectors.smpp.client import SmppClient
from connectors.smpp.models import BindState, PartResult
from smsflow.domain.smpp_status import is_known_status, status_name

__all__ = [
    "CONNECTION_LOST",
    "COUNTER_KEYS",
    "SUBMIT_LATENCY_BUCKETS_S",
    "BindView",
    "SenderCollector",
    "SenderMetrics",
    "status_label",
]

#: submit_sm -> submit_sm_resp. A local SMSC answers in ~1 ms; operators in 20-500 ms; the AIMD
#: reacts from ~200 ms; anything past 5 s is a stuck window.
SUBMIT_LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)
#: ``status`` label of a part whose response never came (the connection dropped).
CONNECTION_LOST = "CONNECTION_LOST"
#: ``status`` label of a code outside the SMPP 3.4 table (keeps the label set bounded).
UNKNOWN_STATUS = "UNKNOWN"


def status_label(command_status: int | None) -> str:
    """The bounded ``status`` label of a response: the SMPP name, ``UNKNOWN`` or
    ``CONNECTION_LOST``.

    >>> status_label(0x58), status_label(None), status_label(0x401)
    ('ESME_RTHROTTLED', 'CONNECTION_LOST', 'UNKNOWN')
    """
    if command_status is None:
        return CONNECTION_LOST
    if not 0 <= command_status <= 0xFFFFFFFF or not is_known_status(command_status):
        return UNKNOWN_STATUS
    return status_name(command_status)


class SenderMetrics:
    """Per-event instruments of one sender process (its own registry: tests build several)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        # Without this every counter and histogram child also exposes a ``*_created`` gauge
        # (process-wide switch): extra series that no rule or dashboard reads.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = registry if registry is not None else CollectorRegistry()
        self._latency = Histogram(
            "smsflow_smpp_submit_latency_seconds",
            "submit_sm written to submit_sm_resp read, per part.",
            ["smsc"], buckets=SUBMIT_LATENCY_BUCKETS_S, registry=self.registry,
        )
        self._responses = Counter(
            "smsflow_smpp_submit_responses",
            "submit_sm outcomes per SMSC by command_status name (CONNECTION_LOST: no response).",
            ["smsc", "status"], registry=self.registry,
        )
        self._rejections = Counter(
            "smsflow_rejections", "Records sent to sms.rejected, by stage and reason code.",
            ["stage", "reason"], registry=self.registry,
        )
        self._latency_of: dict[str, Histogram] = {}
        self._responses_of: dict[str, dict[int | None, Counter]] = {}

    def observe_part(self, smsc: str, part: PartResult) -> None:
        """One part's response (session thread). Latency only for parts that got an answer."""
        statuses = self._responses_of.get(smsc)
        if statuses is None:
            statuses = self._responses_of.setdefault(smsc, {})
        status = None if part.connection_lost else part.command_status
        counter = statuses.get(status)
        if counter is None:
            counter = statuses.setdefault(
                status, self._responses.labels(smsc=smsc, status=status_label(status)))
        counter.inc()
        if status is None:
            return
        histogram = self._latency_of.get(smsc)
        if histogram is None:
            histogram = self._latency_of.setdefault(smsc, self._latency.labels(smsc=smsc))
        histogram.observe(part.latency_s)


    def rejected(self, reason_code: str) -> None:
        """One record (or receipt) sent to sms.rejected; reason codes are a closed set."""
        self._rejections.labels(stage="sender", reason=reason_code).inc()


@dataclass(frozen=True, slots=True)
class BindView:
    """What the collector reads of one bind (an ``SmppClient``'s state and counters)."""

    smsc: str
    bind: str
    state: BindState
    in_flight: int
    window_size: int
    binds: int  # successful binds since start
    connection_losses: int  # bound connections lost since start
    bind_failures: int  # connect/bind attempts that failed

    @classmethod
    def of(cls, smsc_id: str, client: SmppClient) -> BindView:
        counts = client.stats
        return cls(smsc=smsc_id, bind=client.name, state=client.state,
                   in_flight=client.in_flight, window_size=client.config.window_size,
                   binds=counts.binds, connection_losses=counts.connection_losses,
                   bind_failures=counts.bind_failures)


#: ``service.stats`` key -> (family name without ``_total``, help).
_SERVICE_COUNTERS: tuple[tuple[str, str, str], ...] = (
    ("messages", "smsflow_sender_messages", "Messages taken from sms.throttled for submission."),
    ("parts_accepted", "smsflow_sender_parts_accepted", "Parts the SMSC accepted."),
    ("parts_failed", "smsflow_sender_parts_failed", "Parts that ended FAILED."),
    ("retries", "smsflow_sender_retries", "Messages scheduled for another attempt."),
    ("receipts", "smsflow_sender_receipts", "Delivery receipts written to sms.dlr.raw."),
    ("inbound", "smsflow_sender_inbound", "MO messages written to sms.inbound."),
    ("rejected", "smsflow_sender_rejected", "Records sent to sms.rejected by the sender."),
    ("failovers", "smsflow_sender_failovers", "Messages sent back to sms.routed on another route."),
    ("pauses", "smsflow_sender_pauses", "Times the consumer paused for back-pressure."),
    ("parts_skipped", "smsflow_sender_parts_skipped",
     "Parts not submitted again: the ledger shows they were submitted before (a replay)."),
    ("in_doubt_resubmits", "smsflow_sender_in_doubt_resubmits",
     "Parts resubmitted without knowing whether the SMSC had them (intent, no outcome)."),
    ("relayed", "smsflow_sender_relayed",
     "Messages passed to a sender holding a bind slot of their SMSC (bind leases)."),
    ("produce_refusals", "smsflow_sender_produce_refusals",
     "Records Kafka refused or gave up on (outcomes, rejections, DONEs), each produced again."),
    ("config_read_failures", "smsflow_sender_config_read_failures",
     "Configuration reads that failed (unreadable, invalid or timed out); the previous "
     "configuration was kept."),
    ("routes_exhausted", "smsflow_sender_routes_exhausted",
     "Messages failover found no eligible route for (ROUTES_EXHAUSTED): they wait for their "
     "SMSC until their validity ends, or fail if it refused them for good."),
    ("routing_view_failures", "smsflow_sender_routing_view_failures",
     "Times the routing view's reader of sms.config and sms.route-health failed and was "
     "started again (failover meanwhile decides with the last view it read)."),
)

#: The keys of ``SenderService.stats``: every counter the sender keeps is exported.
COUNTER_KEYS: tuple[str, ...] = tuple(key for key, _name, _help in _SERVICE_COUNTERS)


class SenderCollector(Collector):
    """Reads bind state, windows, queues and the service's counters when Prometheus scrapes."""

    def __init__(
        self,
        binds: Callable[[], Sequence[BindView]],
        queued_parts: Callable[[], Mapping[str, int]],
        counters: Callable[[], Mapping[str, int]],
    ) -> None:
        self._binds = binds
        self._queued_parts = queued_parts
        self._counters = counters

    def collect(self) -> Iterator[Metric]:
        labels = ["smsc", "bind"]
        up = GaugeMetricFamily("smsflow_smpp_bind_up",
                               "1 while the SMPP bind is bound, 0 otherwise.", labels=labels)
        transitions = CounterMetricFamily(
            "smsflow_smpp_bind_transitions",
            "Bind state changes: direction=up (bound), down (a bound connection lost).",
            labels=[*labels, "direction"])
        failures = CounterMetricFamily("smsflow_smpp_bind_failures",
                                       "Connect or bind attempts that failed.", labels=labels)
        in_flight = GaugeMetricFamily("smsflow_smpp_window_in_flight",
                                      "submit_sm awaiting their response (window occupancy).",
                                      labels=labels)
        window = GaugeMetricFamily("smsflow_smpp_window_size",
                                   "Configured window (submit_sm outstanding at most).",
                                   labels=labels)
        for view in self._binds():
            names = [view.smsc, view.bind]
            up.add_metric(names, 1.0 if view.state is BindState.BOUND else 0.0)
            transitions.add_metric([*names, "up"], view.binds)
            transitions.add_metric([*names, "down"], view.connection_losses)
            failures.add_metric(names, view.bind_failures)
            in_flight.add_metric(names, view.in_flight)
            window.add_metric(names, view.window_size)
        yield from (up, transitions, failures, in_flight, window)
        queued = GaugeMetricFamily("smsflow_sender_queued_parts",
                                   "Parts waiting in the SMSC's queue (not yet in a window).",
                                   labels=["smsc"])
        for smsc, parts in sorted(self._queued_parts().items()):
            queued.add_metric([smsc], parts)
        yield queued
        counters = self._counters()
        for key, name, help_text in _SERVICE_COUNTERS:
            yield CounterMetricFamily(name, help_text, value=counters.get(key, 0))
