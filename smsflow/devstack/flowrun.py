"""Push traffic through a running stack and account for every message's terminal state.

Shared by ``smsflow demo``, ``bench/e2e.py`` and the end-to-end tests: produce N messages from
several tenants, watch each stage's topic fill up, and wait until every message has exactly one
terminal state on ``sms.dlr`` or ``sms.rejected``. A message with none by the deadline is
counted as lost, never ignored.
"""

from __future__ import annotations

import math
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from confluent_kafka import Consumer, KafkaException, TopicPartition
from hdrh.histogram import HdrHistogram

from connectors.producer import SmsProducer, new_request
from connectors.terminal_reader import TerminalReader
from schemas.models import MessageType, SubmitRequest
from smsflow.kafka_clients import client_config
from smsflow.kafka_security import kafka_connection
from smsflow.settings import Settings
from smsflow.topics import DLR, REJECTED, ROUTED, SENT, SUBMITTED, THROTTLED, topic_name

STAGES: tuple[str, ...] = (SUBMITTED, ROUTED, THROTTLED, SENT, DLR, REJECTED)

# Destinations served by config/platform.yaml, per country, and tenants that send there.
# (prefix, total length with '+'): numbers phonenumbers accepts as valid mobiles.
_DESTINATIONS = (("+44740", 13), ("+447701", 13), ("+4915112", 14), ("+4916212", 13),
                 ("+1206555", 12))
_TENANTS = ("acme-bank", "shopfast", "promo-blast")
_BODIES = (
    "Your verification code is {n}. It expires in 10 minutes.",
    "Order #{n} has shipped and will arrive tomorrow between 9:00 and 13:00.",
    "Grüße! Ihre Bestellung {n} ist unterwegs — Lieferung morgen.",
    "Flash sale: 30% off everything until midnight. Reply STOP to opt out. Ref {n}. "
    "Terms apply; see our website for the full list of participating stores and products, "
    "exclusions and delivery charges.",
)


def make_traffic(count: int, *, seed: int = 7, now: datetime | None = None) -> list[SubmitRequest]:
    """A reproducible mix of tenants, countries, message types and lengths."""
    rng = random.Random(seed)
    stamp = now or datetime.now(UTC)
    requests = []
    for n in range(count):
        tenant = _TENANTS[n % len(_TENANTS)]
        prefix, length = rng.choice(_DESTINATIONS)
        digits = length - len(prefix)
        destination = prefix + "".join(rng.choice("0123456789") for _ in range(digits))
        body = rng.choice(_BODIES).format(n=100000 + n)
        kind = {"acme-bank": MessageType.OTP, "promo-blast": MessageType.MARKETING}.get(
            tenant, MessageType.TRANSACTIONAL
        )
        requests.append(
            new_request(tenant, destination, body, message_type=kind, client_ref=f"ref-{n}",
                        now=stamp)
        )
    return requests


def _totals(consumer: Consumer, topics: Sequence[str], timeout_s: float = 10) -> dict[str, int]:
    metadata = consumer.list_topics(timeout=timeout_s)
    totals = {}
    for topic in topics:
        partitions = metadata.topics[topic].partitions
        totals[topic] = sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)[1]
            for p in partitions
        )
    return totals


class StageCounter:
    """Records written to each stage's topic since this counter was created."""

    def __init__(self, settings: Settings) -> None:
        self._names = {stage: topic_name(settings, stage) for stage in STAGES}
        self._consumer = Consumer(
            {**client_config(kafka_connection(settings)), "group.id": f"stages-{uuid.uuid4()}"}
        )
        # Topics a run just created may not have their leaders yet (NOT_LEADER_FOR_PARTITION).
        deadline = time.monotonic() + 30
        while True:
            try:
                self._start = _totals(self._consumer, list(self._names.values()))
                break
            except KafkaException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        self._last = dict.fromkeys(self._names, 0)

    def counts(self) -> dict[str, int]:
        """The counts now; while a partition has no leader (a broker failing over in a drill)
        the last ones, so that a progress report never stalls or breaks the flow's clock."""
        try:
            now = _totals(self._consumer, list(self._names.values()), timeout_s=2)
        except KafkaException:
            return dict(self._last)
        self._last = {stage: now[name] - self._start[name] for stage, name in self._names.items()}
        return dict(self._last)

    def close(self) -> None:
        self._consumer.close()


@dataclass
class FlowResult:
    messages: int
    terminal: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    rejection_codes: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    stage_counts: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    latency_ms: HdrHistogram = field(default_factory=lambda: HdrHistogram(1, 3_600_000, 3))
    missing: list[str] = field(default_factory=list)

    @property
    def lost(self) -> int:
        return len(self.missing)

    def summary(self) -> dict[str, object]:
        return {
            "messages": self.messages,
            "terminal": self.terminal,
            "delivered": self.statuses.get("DELIVERED", 0),
            "undeliverable": self.statuses.get("UNDELIVERABLE", 0),
            "expired": self.statuses.get("EXPIRED", 0),
            "smsc_rejected": self.statuses.get("REJECTED", 0),
            "failed": self.statuses.get("FAILED", 0),
            "accepted_no_receipt": self.statuses.get("ACCEPTED", 0),
            "rejected": sum(self.rejection_codes.values()),
            "rejection_codes": dict(self.rejection_codes),
            "duplicates": self.duplicates,
            "lost": self.lost,
            # Records, not parts: the sender writes outcomes in batches (schemas/batches.py).
            "sent_records": self.stage_counts.get(SENT, 0),
            "elapsed_s": round(self.elapsed_s, 3),
            "msgs_per_s": round(self.terminal / self.elapsed_s, 1) if self.elapsed_s else 0.0,
            "p50_ms": self.latency_ms.get_value_at_percentile(50),
            "p95_ms": self.latency_ms.get_value_at_percentile(95),
            "p99_ms": self.latency_ms.get_value_at_percentile(99),
        }


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100, nearest rank) of ``values``; None if there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def warm_up(settings: Settings, *, timeout_s: float = 120.0, probes: int = 1) -> float:
    """Send ``probes`` messages and wait for their terminal states: the stack is then serving.

    Returns the seconds it took (worker start-up, group joins, binds). Raises TimeoutError.
    """
    started = time.monotonic()
    # No wait for late duplicates: a probe's second report would not make the stack less ready.
    result = run_flow(settings, make_traffic(probes, seed=int(started)), timeout_s=timeout_s,
                      late_duplicates_s=0.0)
    if result.lost:
        raise TimeoutError(f"the stack did not complete {result.lost} probe(s) in {timeout_s}s")
    return time.monotonic() - started


def run_flow(
    settings: Settings,
    requests: Sequence[SubmitRequest],
    *,
    timeout_s: float = 300.0,
    on_progress: Callable[[dict[str, int], int], None] | None = None,
    extra_raw: Sequence[bytes] = (),
    rate_per_s: float | None = None,
    on_start: Callable[[], None] | None = None,
    on_end: Callable[[], None] | None = None,
    late_duplicates_s: float = 1.0,
) -> FlowResult:
    """Produce ``requests`` (and any raw bad records), then wait for every terminal state.
    ``rate_per_s`` paces production (default: as fast as possible, one burst). ``on_start`` is
    called right before the first message is produced, ``on_end`` as soon as the last terminal
    state arrived (or the deadline passed): e.g. to sample the processes' CPU time.
    ``late_duplicates_s``: how long to keep reading for duplicates after the last terminal
    state (0: not at all)."""
    counter = StageCounter(settings)
    reader = TerminalReader(
        kafka_connection(settings), topic_name(settings, DLR), topic_name(settings, REJECTED)
    )
    expected: dict[str, datetime] = {}
    result = FlowResult(messages=len(requests))
    seen: set[str] = set()
    producer = SmsProducer(kafka_connection(settings), topic_name(settings, SUBMITTED))
    if on_start:
        on_start()
    started = time.monotonic()
    try:
        for index, request in enumerate(requests):
            if rate_per_s:
                time.sleep(max(0.0, started + index / rate_per_s - time.monotonic()))
            # Latency is measured from the moment the message is handed to Kafka.
            stamped = request.model_copy(update={"submitted_at": datetime.now(UTC)})
            expected[stamped.message_id] = stamped.submitted_at
            producer.submit(stamped)
            if index < len(extra_raw):
                producer.submit_raw(b"bad-input", extra_raw[index])
        if producer.flush(60) != 0 or producer.failed:
            raise RuntimeError(f"Kafka did not acknowledge {len(producer.failed)} messages")
        deadline = started + timeout_s
        last_progress = 0.0
        while len(seen) < len(expected) and time.monotonic() < deadline:
            # consume() returns at its timeout unless 1000 records came: keep it short, so the
            # flow ends soon after its last terminal state (it is timestamped by Kafka anyway).
            for terminal in reader.poll(timeout_s=0.1):
                message_id = (
                    terminal.report.message_id if terminal.report
                    else terminal.rejection.message_id if terminal.rejection else None
                )
                if message_id not in expected:
                    continue  # raw bad records, or another run's traffic
                if message_id in seen:
                    result.duplicates += 1
                    continue
                seen.add(message_id)
                if terminal.report is not None:
                    result.statuses[terminal.report.status.value] += 1
                elif terminal.rejection is not None:
                    result.rejection_codes[terminal.rejection.reason_code] += 1
                latency = terminal.timestamp_ms - expected[message_id].timestamp() * 1000
                result.latency_ms.record_value(max(1, int(latency)))
            if on_progress and time.monotonic() - last_progress > 0.25:
                last_progress = time.monotonic()
                on_progress(counter.counts(), len(seen))
        result.elapsed_s = time.monotonic() - started
        if on_end:
            on_end()
        # Late duplicates show up shortly after the last terminal state; give them a moment.
        for terminal in reader.poll(timeout_s=late_duplicates_s) if late_duplicates_s else ():
            message_id = terminal.report.message_id if terminal.report else None
            if message_id in seen:
                result.duplicates += 1
        result.terminal = len(seen)
        result.missing = sorted(set(expected) - seen)
        result.stage_counts = counter.counts()
        if on_progress:
            on_progress(result.stage_counts, len(seen))
        return result
    finally:
        reader.close()
        counter.close()
