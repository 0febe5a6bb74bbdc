"""Follow a whole topic from its beginning, in a thread, and hand every record to a callback.

Every API process keeps its own copy of three small topics (API keys, platform configuration,
idempotency answers) by reading all their partitions without a consumer group, from the start
and then live. ``caught_up`` is set once the records that existed at start-up have been applied,
which is what readiness waits for. A record is applied in this thread: the callback must only
replace entries of dicts that the event loop reads (atomic under the GIL), never block.

The consumer waits at most 100 ms for new records, so a change (a revoked key, a quarantine)
reaches every process well within a second.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    KafkaError,
    Message,
    TopicPartition,
)

from smsflow.kafka_clients import client_config
from smsflow.kafka_security import KafkaTarget

log = logging.getLogger(__name__)

Apply = Callable[[bytes, bytes | None], None]
"""(key, value or None for a tombstone)"""

ApplyMessage = Callable[[Message], None]
"""The whole record (topic, key, value, timestamp), for followers of several topics."""

_METADATA_TIMEOUT_S = 10.0


def _by_key(apply: Apply | None) -> ApplyMessage:
    assert apply is not None

    def apply_message(message: Message) -> None:
        apply(message.key() or b"", message.value())

    return apply_message


class TopicFollower:
    def __init__(
        self,
        bootstrap: KafkaTarget,
        topic: str | list[str],
        apply: Apply | None = None,
        *,
        name: str,
        after_batch: Callable[[], None] | None = None,
        apply_message: ApplyMessage | None = None,
        since_ms: Callable[[], int] | None = None,
    ) -> None:
        """``since_ms``: start at the first record at or after this time (ms since the epoch,
        asked at each (re)start) instead of the beginning."""
        self.topics = [topic] if isinstance(topic, str) else list(topic)
        self.topic = ", ".join(self.topics)
        self._bootstrap = bootstrap
        if (apply is None) == (apply_message is None):
            raise ValueError("give exactly one of apply and apply_message")
        self._apply_message: ApplyMessage = apply_message or _by_key(apply)
        self._after_batch = after_batch
        self._since_ms = since_ms
        self.caught_up = threading.Event()
        self.failure: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"follow-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _consumer(self) -> Consumer:
        return Consumer(
            {
                **client_config(self._bootstrap),
                # Never joins: partitions are assigned by hand; the id only satisfies the client.
                "group.id": f"smsflow-api-follower-{uuid.uuid4()}",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 100,
                "topic.metadata.refresh.interval.ms": 30_000,
            }
        )

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._follow()
                return
            except Exception as exc:  # a broker hiccup at start-up: retry, say so
                self.failure = f"{type(exc).__name__}: {exc}"
                log.warning("following %s failed, retrying in 1 s: %s", self.topic, exc)
                self._stop.wait(1.0)

    def _follow(self) -> None:
        consumer = self._consumer()
        try:
            metadata = consumer.list_topics(timeout=_METADATA_TIMEOUT_S)
            starts: list[TopicPartition] = []
            pending: dict[tuple[str, int], int] = {}
            for topic in self.topics:
                found = metadata.topics.get(topic)
                if found is None or found.error is not None or not found.partitions:
                    raise RuntimeError(f"topic {topic} not found (run `smsflow topics apply`)")
                for partition in sorted(found.partitions):
                    low, high = consumer.get_watermark_offsets(
                        TopicPartition(topic, partition), timeout=_METADATA_TIMEOUT_S
                    )
                    if high > low:
                        pending[(topic, partition)] = high
                    starts.append(TopicPartition(topic, partition, OFFSET_BEGINNING))
            if self._since_ms is not None:
                since = self._since_ms()
                wanted = [TopicPartition(t.topic, t.partition, since) for t in starts]
                found_offsets = consumer.offsets_for_times(wanted, timeout=_METADATA_TIMEOUT_S)
                starts = []
                for tp in found_offsets:
                    if tp.offset < 0:  # nothing at or after the time: start at the end
                        pending.pop((tp.topic, tp.partition), None)
                        tp = TopicPartition(tp.topic, tp.partition, OFFSET_END)
                    starts.append(tp)
            consumer.assign(starts)
            self.failure = None
            if not pending and self._after_batch is not None:
                self._after_batch()
            while not self._stop.is_set():
                if not pending:
                    self.caught_up.set()
                batch = consumer.consume(500, timeout=0.2)
                for message in batch:
                    self._handle(message, pending)
                if batch and self._after_batch is not None:
                    self._after_batch()
        finally:
            consumer.close()

    def _handle(self, message: Message, pending: dict[tuple[str, int], int]) -> None:
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                return
            raise RuntimeError(f"reading {self.topic}: {error}")
        self._apply_message(message)
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        if pending and topic is not None and partition is not None and offset is not None:
            if offset + 1 >= pending.get((topic, partition), 0):
                pending.pop((topic, partition), None)


def wait_caught_up(followers: list[TopicFollower], timeout_s: float) -> bool:
    """Block until every follower caught up (the CLI's one-shot reads)."""
    deadline = time.monotonic() + timeout_s
    return all(f.caught_up.wait(max(0.0, deadline - time.monotonic())) for f in followers)
