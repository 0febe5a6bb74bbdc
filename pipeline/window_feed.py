"""The tracking windows' input: ``sms.sent`` and ``sms.dlr`` read in a consumer group, in batches.

Every submit outcome and every terminal report is counted once into the rolling windows
(:mod:`pipeline.agents.tracking`). The counting needs no faust table and no co-partitioning:
it turns a batch of records into a few *delta* windows keyed by route, operator and tenant on
``sms.tracking-deltas``, where the faust agent ``merge_windows`` owns each key. So this input is
read by a plain aiokafka consumer in its own group (``<app id>-tracking``), not as two more faust
events per message: faust's per-event machinery costs ~45 µs an event on this kind of machine
(docs/performance.md#worker), and these were two of the ~7 events of every message.

Batches: records are collected for up to ``within_s`` (1 s) or ``batch`` (1,000) records, the
same as the faust ``take_events`` this replaces, so a busy route sends one delta per second
rather than one per fetch. Then the deltas are sent, and once Kafka stored them the batch's
offsets are committed.

Guarantees (at-least-once, as before): a crash after the deltas are stored and before the
commit counts that batch again; nothing is ever skipped. At a rebalance the consumer's revoke
listener flushes and commits the collected batch first, so a rebalance counts nothing twice;
a commit refused because the group moved on anyway is logged and the next owner counts the
batch again. A failure (a send Kafka refused, the consumer failing) ends this consumer and
:class:`~pipeline.topic_follower.TopicFollower` starts a new one from the committed offsets.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError

from pipeline.topic_follower import Batch, TopicFollower
from smsflow.kafka_security import KafkaTarget

__all__ = ["FEED", "Count", "FeedStats", "WindowFeed"]

log = logging.getLogger(__name__)

#: ``count(records)`` sends the records' deltas and returns the sends' futures (done once
#: Kafka stored each delta).
Count = Callable[[Sequence[ConsumerRecord[bytes, bytes]]], Awaitable[list["asyncio.Future[Any]"]]]


@dataclass
class FeedStats:
    """What this worker's tracking feed counted (exported as metrics)."""

    counted: int = 0  # records whose deltas are stored and whose offsets are committed
    recounted: int = 0  # records whose commit the group refused: their next owner counts them


FEED = FeedStats()


class WindowFeed(TopicFollower):
    """Reads ``topics`` in the group ``group_id`` and hands batches to ``count``; commits a
    batch once its deltas are stored (see the module docstring)."""

    max_records = 1000

    def __init__(
        self,
        bootstrap: KafkaTarget,
        topics: Sequence[str],
        group_id: str,
        count: Count,
        *,
        batch: int = 1000,
        within_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        stats: FeedStats = FEED,
        name: str = "tracking feed",
        **kwargs: Any,
    ) -> None:
        super().__init__(name, bootstrap, group_id=group_id, **kwargs)
        self._topics = list(topics)
        self._count = count
        self._batch = batch
        self._within_s = within_s
        self._clock = clock
        self._pending: list[ConsumerRecord[bytes, bytes]] = []
        self._flush_at: float | None = None
        self._lock = asyncio.Lock()
        self.stats = stats

    async def start_reading(self, consumer: AIOKafkaConsumer) -> None:
        consumer.subscribe(self._topics, listener=_FlushOnRevoke(self, consumer))

    def fetch_timeout_ms(self) -> int:
        if self._flush_at is None:
            return 1000
        return max(1, int((self._flush_at - self._clock()) * 1000) + 1)

    async def on_batch(self, consumer: AIOKafkaConsumer, batch: Batch) -> None:
        for records in batch.values():
            if records and self._flush_at is None:
                self._flush_at = self._clock() + self._within_s
            self._pending.extend(records)
        if self._pending and (len(self._pending) >= self._batch
                              or self._clock() >= (self._flush_at or 0.0)):
            await self.flush(consumer)

    async def flush(self, consumer: AIOKafkaConsumer) -> None:
        """Count what was collected, wait until its deltas are stored, commit its offsets."""
        async with self._lock:
            records, self._pending, self._flush_at = self._pending, [], None
            if not records:
                return
            offsets: dict[TopicPartition, int] = {}
            for record in records:
                tp = TopicPartition(record.topic, record.partition)
                offsets[tp] = max(offsets.get(tp, 0), record.offset + 1)
            sends = await self._count(records)
            await asyncio.gather(*sends)  # a refused send raises: nothing committed, re-read
            try:
                await consumer.commit(offsets)
            except CommitFailedError:
                # The group moved on before the commit: the partitions' next owner counts
                # these records again (at-least-once).
                self.stats.recounted += len(records)
                log.warning("%s: commit refused after a rebalance; %d records will be counted "
                            "again by their next owner", self.name, len(records))
                return
            self.stats.counted += len(records)

    def on_stopped(self) -> None:
        # Not committed: read again by this group (a new consumer, or another worker).
        self._pending.clear()
        self._flush_at = None


class _FlushOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Before partitions move, count and commit what was collected (aiokafka awaits this
    before it rejoins the group, while the commit is still accepted)."""

    def __init__(self, feed: WindowFeed, consumer: AIOKafkaConsumer) -> None:
        self._feed = feed
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        if revoked:
            await self._feed.flush(self._consumer)

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        return None
