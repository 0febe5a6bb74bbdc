"""Consumer lag of one partition, in records and in seconds (pure; no Kafka here).

Lag in records is ``high watermark - committed offset``. Lag in seconds is the age of the
oldest record the group has not consumed yet: ``now - timestamp(record at the committed
offset)``, 0 when the group is caught up. That is the figure the alert wants ("the queue
holds work that waited > 30 s"), and unlike records it means the same on a busy and a quiet
topic. The timestamp comes from one fetch of that record (``KafkaLagCollector``).

>>> lag = partition_lag(committed=90, high=100, head_timestamp_ms=1_000, now_ms=31_000)
>>> (lag.records, lag.seconds)
(10, 30.0)
>>> partition_lag(committed=100, high=100, head_timestamp_ms=None, now_ms=31_000).seconds
0.0
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PartitionLag", "partition_lag"]


@dataclass(frozen=True, slots=True)
class PartitionLag:
    records: int
    #: ``None`` when there is lag but the head record's timestamp could not be read (deleted
    #: by retention, or the fetch timed out): unknown, not zero.
    seconds: float | None


def partition_lag(
    *, committed: int, high: int, head_timestamp_ms: int | None, now_ms: int
) -> PartitionLag:
    """Lag of a partition whose group committed ``committed`` (next offset to read).

    A negative difference (a committed offset past the watermark after a topic was recreated)
    counts as no lag. A head record stamped in the future (clock skew) is 0 s old."""
    records = max(0, high - committed)
    if records == 0:
        return PartitionLag(0, 0.0)
    if head_timestamp_ms is None:
        return PartitionLag(records, None)
    return PartitionLag(records, max(0.0, (now_ms - head_timestamp_ms) / 1000))
