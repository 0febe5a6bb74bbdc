"""Kafka side of the submit ledger (connectors/sender/ledger.py): read a partition back, and
wait for a batch of intent records to be stored."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from connectors.sender.ledger import LedgerEntry

log = logging.getLogger(__name__)


def read_partition(
    bootstrap: str, topic: str, partition: int, since_ms: int, *, timeout_s: float = 30.0
) -> Iterator[tuple[str, LedgerEntry]]:
    """Every entry of ``topic``/``partition`` written since ``since_ms``, up to its end now.
    An unreadable record is logged and skipped: the ledger only ever *saves* resubmissions."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": f"smsflow-ledger-{uuid.uuid4()}",
        "enable.auto.commit": False, "enable.partition.eof": True,
    })
    try:
        _low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition),
                                                    timeout=timeout_s)
        start = consumer.offsets_for_times([TopicPartition(topic, partition, since_ms)],
                                           timeout=timeout_s)[0].offset
        if high <= 0 or start < 0 or start >= high:  # empty, or nothing since since_ms
            return
        consumer.assign([TopicPartition(topic, partition, start)])
        while True:
            message = consumer.poll(timeout_s)
            if message is None:
                raise TimeoutError(f"reading the sender ledger {topic}/{partition}")
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    return
                raise RuntimeError(f"reading the sender ledger {topic}/{partition}: {error}")
            key, value = message.key(), message.value()
            if key is not None and value is not None:
                try:
                    yield _text(key), LedgerEntry.parse(_bytes(value))
                except ValueError as exc:
                    log.warning("ledger %s/%d@%d unreadable: %s", topic, partition,
                                message.offset() or 0, exc)
            if (message.offset() or 0) + 1 >= high:
                return
    finally:
        consumer.close()


def _text(data: str | bytes) -> str:
    return data if isinstance(data, str) else data.decode(errors="replace")


def _bytes(data: str | bytes) -> bytes:
    return data.encode() if isinstance(data, str) else data


class AckWaiter:
    """Counts produced records until Kafka acknowledged them all (the producer-poll thread
    runs the callbacks); :meth:`wait` is True only if every one was stored."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._pending = 0
        self._failed = False

    def expect(self) -> None:
        with self._cond:
            self._pending += 1

    def on_delivery(self, error: KafkaError | None, _message: Message) -> None:
        with self._cond:
            self._pending -= 1
            if error is not None:
                self._failed = True
                log.error("sender ledger record not stored: %s", error)
            self._cond.notify_all()

    def wait(self, timeout_s: float) -> bool:
        with self._cond:
            done = self._cond.wait_for(lambda: self._pending <= 0, timeout_s)
            return done and not self._failed
