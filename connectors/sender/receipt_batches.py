"""Receipts to ``sms.dlr.raw`` in batches: one record per partition every few milliseconds.

The session threads hand each parsed receipt to :class:`ReceiptBatcher`, which keeps it with
the others of its ``sms.dlr.raw`` partition (Kafka's default partitioner on the receipt's key
``<smsc_id>:<smsc_message_id>``, as a keyed record would get) for ``SMSFLOW_RECEIPT_BATCH_MS``
and then writes them as one record (framing: schemas/batches.py). The correlator, the only
reader, takes the record receipt by receipt. Why: a record per receipt made the delivery
worker pay faust's per-event cost, a fetch and a produce per part
(docs/performance.md#batched-receipts).

Each receipt is still answered to its SMSC only once Kafka stored the record that carries it:
the record's delivery callback runs every receipt's own ``ack_when_stored`` callback, so a
crash before the store leaves them unanswered and the SMSC delivers them again.

Until the sender knows the topic's partition count (:meth:`ReceiptBatcher.use_partitions`,
read at start-up), and with ``SMSFLOW_RECEIPT_BATCH_MS=0``, each receipt is a record of its
own, keyed by the receipt, as before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from confluent_kafka import KafkaError, Message

from connectors.sender.partition_batches import KeyedBatcher
from schemas.batches import pack_receipts

log = logging.getLogger(__name__)

Delivered = Callable[[KafkaError | None, Message], None]
"""A producer delivery callback: here, the receipt's answer to its SMSC."""

Produce = Callable[..., None]
"""``SenderService._produce``: (topic, key, value, on_delivery, *, partition=)."""

#: Receipts at most in one record: a full batch is written at once, not after the delay.
MAX_BATCH = 1000


class ReceiptBatcher(KeyedBatcher[tuple[bytes, Delivered]]):
    """Holds receipts per ``sms.dlr.raw`` partition and writes each partition's as one record
    (thread-safe: session threads add, a thread of its own writes)."""

    def __init__(self, produce: Produce, topic: str, delay_s: float) -> None:
        super().__init__(delay_s, "sender-receipts", max_batch=MAX_BATCH)
        self._produce = produce
        self._topic = topic

    def add(self, key: str, value: bytes, on_stored: Delivered) -> None:
        """One receipt's ``ReceiptEvent`` value; ``on_stored`` runs once Kafka decided."""
        if not self.hold(key, (value, on_stored)):
            self._count(1)
            self._produce(self._topic, key, value, on_stored)

    def stop(self) -> None:
        super().stop()
        log.info("sender receipts: %d in %d sms.dlr.raw records", self.items, self.records)

    def _write_batch(self, partition: int, receipts: list[tuple[bytes, Delivered]]) -> None:
        self._count(len(receipts))
        self._produce(self._topic, None, pack_receipts(value for value, _ in receipts),
                      _each(receipts), partition=partition)


def _each(receipts: list[tuple[bytes, Delivered]]) -> Delivered:
    """The batch record's delivery callback: every receipt's own, with the record's result."""

    def on_delivery(error: KafkaError | None, message: Message) -> None:
        for _value, on_stored in receipts:
            on_stored(error, message)

    return on_delivery
