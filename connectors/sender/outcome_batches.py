"""Submit outcomes to ``sms.sent`` in batches: one record per partition every few milliseconds.

The session threads hand each part's ``SubmitOutcome`` to :class:`OutcomeBatcher`, which keeps
it with the others of its ``sms.sent`` partition (Kafka's default partitioner on the outcome's
key, :func:`schemas.batches.sent_key`, as a keyed record would get: an accepted part still
meets its receipts) for ``SMSFLOW_SENT_BATCH_MS`` and then writes them as one record: the
values length-prefixed, one ``smsflow-summary`` header per value in order
(schemas/batches.py). Every reader of ``sms.sent`` takes such a record outcome by outcome.
Why: the delivery worker paid faust's per-event cost once per part
(docs/performance.md#batched-outcomes).

A batch of one outcome is written as the plain keyed record, and so is an outcome in doubt
(resubmitted after a crash without knowing whether the SMSC had it: its record keeps the header
``smsflow-in-doubt: 1`` that docs/operations.md#in-doubt-parts lists them by).

Each outcome still finishes its part only once Kafka stored the record that carries it: the
record is produced until stored (connectors/sender/store_retry.py) and its delivery callback
runs every outcome's own (which writes the ledger's DONE). An outcome held at a crash was
never stored: its record's offset stays uncommitted and the part is replayed, in doubt.

Until the sender knows the topic's partition count, and with ``SMSFLOW_SENT_BATCH_MS=0``, each
outcome is a record of its own, as before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from confluent_kafka import KafkaError, Message

from connectors.sender.ledger import IN_DOUBT_HEADER
from connectors.sender.partition_batches import KeyedBatcher
from schemas.batches import pack_sent

log = logging.getLogger(__name__)

Delivered = Callable[[KafkaError | None, Message], None]
"""A producer delivery callback: here, the outcome's part is done (ledger DONE)."""

Produce = Callable[..., None]
"""``StoreRetry.produce``: (topic, key, value, on_stored, *, headers=, partition=)."""

Header = tuple[str, str | bytes | None]

#: Outcomes at most in one record (~400 B each with its header: well under a megabyte).
MAX_BATCH = 1000


class _Outcome:
    """One part's outcome while it is held."""

    __slots__ = ("key", "on_stored", "summary", "value")

    def __init__(self, key: str, value: bytes, summary: Header, on_stored: Delivered) -> None:
        self.key = key
        self.value = value
        self.summary = summary
        self.on_stored = on_stored


class OutcomeBatcher(KeyedBatcher[_Outcome]):
    """Holds outcomes per ``sms.sent`` partition and writes each partition's as one record
    (thread-safe: session threads add, a thread of its own writes)."""

    def __init__(self, produce_stored: Produce, topic: str, delay_s: float) -> None:
        super().__init__(delay_s, "sender-outcomes", max_batch=MAX_BATCH)
        self._produce = produce_stored
        self._topic = topic

    def add(self, key: str, value: bytes, summary: Header, on_stored: Delivered, *,
            in_doubt: bool = False) -> None:
        """One part's ``SubmitOutcome`` value with its summary header; ``on_stored`` runs once
        Kafka stored it (or with an error when the sender stops first)."""
        outcome = _Outcome(key, value, summary, on_stored)
        if not in_doubt and self.hold(key, outcome):
            return
        self._write_alone(outcome, [summary, (IN_DOUBT_HEADER, b"1")] if in_doubt else None)

    def stop(self) -> None:
        super().stop()
        log.info("sender outcomes: %d in %d sms.sent records", self.items, self.records)

    def _write_batch(self, partition: int, outcomes: list[_Outcome]) -> None:
        if len(outcomes) == 1:
            self._write_alone(outcomes[0], None, partition)
            return
        self._count(len(outcomes))
        self._produce(self._topic, None, pack_sent(o.value for o in outcomes), _each(outcomes),
                      headers=[o.summary for o in outcomes], partition=partition)

    def _write_alone(self, outcome: _Outcome, headers: list[Header] | None,
                     partition: int | None = None) -> None:
        self._count(1)
        extra = {} if partition is None else {"partition": partition}
        self._produce(self._topic, outcome.key, outcome.value, outcome.on_stored,
                      headers=headers or [outcome.summary], **extra)


def _each(outcomes: list[_Outcome]) -> Delivered:
    """The batch record's delivery callback: every outcome's own, with the record's result."""

    def on_delivery(error: KafkaError | None, message: Message) -> None:
        for outcome in outcomes:
            outcome.on_stored(error, message)

    return on_delivery
