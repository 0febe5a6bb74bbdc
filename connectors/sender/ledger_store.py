"""The sender's submit ledger at run time (the rules are in connectors/sender/ledger.py): its
state in this process, writing intents and DONEs in batches, reading a partition back."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from itertools import count

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from connectors.sender.ledger import (
    DONE,
    INTENT,
    LedgerBatch,
    LedgerEntry,
    LedgerIndex,
    PartAction,
    decide,
    parse_record,
    part_key,
)
from connectors.sender.partition_batches import PartitionBatches
from smsflow.kafka_clients import client_config
from smsflow.kafka_security import KafkaTarget

log = logging.getLogger(__name__)


def read_partition(
    bootstrap: KafkaTarget, topic: str, partition: int, since_ms: int, *, timeout_s: float = 30.0
) -> Iterator[tuple[str, LedgerEntry]]:
    """Every entry of ``topic``/``partition`` written since ``since_ms``, up to its end now.
    An unreadable record is logged and skipped: the ledger only ever *saves* resubmissions."""
    consumer = Consumer({
        **client_config(bootstrap), "group.id": f"smsflow-ledger-{uuid.uuid4()}",
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
            if value is not None:
                try:
                    yield from parse_record(None if key is None else _text(key), _bytes(value))
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
            if self._pending <= 0:  # the waiter's predicate: wake it once, not per record
                self._cond.notify_all()

    def wait(self, timeout_s: float) -> bool:
        with self._cond:
            done = self._cond.wait_for(lambda: self._pending <= 0, timeout_s)
            return done and not self._failed


#: DONEs at most in one record (a round of delivery reports is usually far fewer).
MAX_DONE_BATCH = 1000

Produce = Callable[..., None]
"""``SenderService._produce``: (topic, key, value, on_delivery, *, partition=)."""


class SubmitLedger:
    """The sender's ledger state (thread-safe): entries of its partitions, parts in flight in
    this process, and the Kafka writes and reads (see connectors/sender/ledger.py)."""

    def __init__(
        self, bootstrap: KafkaTarget, topic: str, produce: Produce, horizon_ms: int,
        produce_stored: Produce | None = None,
    ) -> None:
        self._bootstrap = bootstrap
        self.topic = topic
        self._produce = produce
        #: DONEs finish their records: produced until stored (connectors/sender/store_retry.py).
        self._produce_stored = produce_stored or produce
        self._lock = threading.Lock()
        self._index = LedgerIndex(horizon_ms)
        #: part key → sms.throttled partition, for parts submitted by this process and not yet
        #: DONE: a re-send of their record arriving meanwhile is skipped, not resubmitted.
        self._in_flight: dict[str, int] = {}
        #: DONEs waiting for :meth:`flush_done`, by partition: (part key, reference, then).
        self._done_waiting: PartitionBatches[tuple[str, int, Callable[[bool], None]]] = (
            PartitionBatches(self._write_done, max_batch=MAX_DONE_BATCH))
        #: Batch records' keys: unique per process and record (the topic is compacted).
        self._batch_prefix = f"~{uuid.uuid4().hex[:12]}:"
        self._batch_seq = count()

    def load(self, partitions: list[int], now_ms: int) -> int:
        """Read back what was submitted from these partitions (by this sender before a crash,
        or by their previous owner); returns how many entries."""
        loaded = 0
        for partition in partitions:
            since = now_ms - self._index.horizon_ms
            for key, entry in read_partition(self._bootstrap, self.topic, partition, since):
                with self._lock:
                    self._index.put(key, entry, partition)
                loaded += 1
        with self._lock:
            self._index.prune(now_ms)
        return loaded

    def prune(self, now_ms: int) -> int:
        """Forget entries past the horizon (cheap when there are none: one look at the oldest)."""
        with self._lock:
            return self._index.prune(now_ms)

    def __len__(self) -> int:
        with self._lock:
            return len(self._index)

    def forget(self, partitions: set[int]) -> None:
        """The partitions were revoked: their entries and in-flight parts are the next
        owner's (it reads them back), and a later re-assignment reads them again."""
        with self._lock:
            for partition in partitions:
                self._index.forget_partition(partition)
            for key in [k for k, p in self._in_flight.items() if p in partitions]:
                del self._in_flight[key]

    def actions(self, message_id: str, parts: int) -> tuple[list[PartAction], int | None]:
        """What to do with each part of a record just read, and the concatenation reference
        of its first attempt (None if no part was ever attempted)."""
        with self._lock:
            keys = [part_key(message_id, i) for i in range(parts)]
            known = [self._index.get(key) for key in keys]
            actions = [decide(entry, in_flight_here=key in self._in_flight)
                       for key, entry in zip(keys, known, strict=True)]
        return actions, next((e.ref for e in known if e is not None), None)

    def claim(self, message_id: str, indexes: Iterable[int], partition: int) -> None:
        with self._lock:
            for index in indexes:
                self._in_flight[part_key(message_id, index)] = partition

    def release(self, message_id: str, parts: int) -> None:
        """The message left this record (failed over): its next copy is a new submission."""
        with self._lock:
            for index in range(parts):
                self._in_flight.pop(part_key(message_id, index), None)

    def write_intents(self, parts: Iterable[tuple[str, int, int, int]], timeout_s: float) -> bool:
        """The INTENT of every ``(message id, part index, partition, concatenation reference)``,
        one record per partition, then one wait until Kafka stored them all: only then may
        their PDUs be written."""
        by_partition: dict[int, dict[str, int]] = defaultdict(dict)
        for message_id, index, partition, reference in parts:
            by_partition[partition][part_key(message_id, index)] = reference
        waiter = AckWaiter()
        now_ms = int(time.time() * 1000)
        for partition, refs in by_partition.items():
            waiter.expect()
            self._produce(self.topic, self._batch_key(),
                          LedgerBatch(INTENT, now_ms, refs).to_bytes(), waiter.on_delivery,
                          partition=partition)
        return waiter.wait(timeout_s)

    def write_done(self, message_id: str, index: int, partition: int, reference: int,
                   then: Callable[[bool], None]) -> None:
        """Store DONE (after the part's outcome is on sms.sent); ``then(stored)``. Written with
        the other DONEs of the same round at :meth:`flush_done`, which the thread serving
        delivery reports calls after each round (or at once past ``MAX_DONE_BATCH``)."""
        self._done_waiting.add(partition, (part_key(message_id, index), reference, then))

    def flush_done(self) -> int:
        """Produce the waiting DONEs, one record per partition; how many parts."""
        return self._done_waiting.flush()

    def _write_done(self, partition: int,
                    done: list[tuple[str, int, Callable[[bool], None]]]) -> None:
        batch = LedgerBatch(DONE, int(time.time() * 1000),
                            {key: reference for key, reference, _ in done})
        self._produce_stored(self.topic, self._batch_key(), batch.to_bytes(),
                             self._on_done_stored(partition, batch, done), partition=partition)

    def _on_done_stored(
        self, partition: int, batch: LedgerBatch,
        done: list[tuple[str, int, Callable[[bool], None]]],
    ) -> Callable[[KafkaError | None, Message], None]:
        def on_delivery(error: KafkaError | None, _msg: Message) -> None:
            if error is not None:
                # Stopping (or no retrying produce given): the offsets stay uncommitted; a
                # replay finds these parts in doubt.
                log.error("ledger DONE of %d part(s) not stored: %s", len(done), error)
            else:
                with self._lock:
                    for key, reference, _ in done:
                        self._index.put(key, LedgerEntry(DONE, reference, batch.at_ms), partition)
                        self._in_flight.pop(key, None)
            for _, _, then in done:
                then(error is None)
        return on_delivery

    def _batch_key(self) -> str:
        return f"{self._batch_prefix}{next(self._batch_seq)}"
