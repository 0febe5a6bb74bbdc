"""Economy held for off-peak windows, parked on ``sms.deferred`` instead of in memory.

The throttle parks an Economy record that arrives outside its off-peak windows (and withdraws
queued Economy when a window closes) on ``sms.deferred``, a copy of the ``sms.routed`` record with
a :data:`RELEASE_AT_HEADER` header: when the next window opens. Its own ``sms.routed`` record is
then committed, so nothing is held in memory and no offset is pinned for hours.

:class:`DeferredReleaser` (one per worker, in a consumer group of its own) reads
``sms.deferred``. A partition whose head record is not due yet is paused and sought back to
that record until its release time, so nothing is held here either; due records are sent back
to ``sms.routed`` unchanged, at most ``release_per_s`` a second, and their offsets committed once
Kafka has them. The throttle then schedules them like any Economy record; one that arrives after
its window has closed again is parked again. Records keep their order per route (both topics
are keyed by route).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from pipeline.topic_follower import Batch, TopicFollower
from smsflow.kafka_security import KafkaTarget

log = logging.getLogger(__name__)

__all__ = [
    "DEFERRAL",
    "HELD",
    "RELEASE_AT_HEADER",
    "DeferralStats",
    "DeferredReleaser",
    "release_at_header",
    "release_at_of",
]

#: Header of a ``sms.deferred`` record: epoch seconds (decimal text) when it may flow again.
RELEASE_AT_HEADER = "smsflow-release-at"

#: Sends a due parked record (the consumer record) on; the returned future resolves once Kafka
#: has what it wrote.
SendBack = Callable[[Any], Awaitable["asyncio.Future[Any]"]]


@dataclass
class DeferralStats:
    """What this worker parked and released (exported as metrics)."""

    parked: int = 0  # records written to sms.deferred (arrivals and withdrawals)
    released: int = 0  # records sent back to sms.routed
    bad_headers: int = 0  # records without a readable release time (released at once)
    waiting_partitions: int = 0  # sms.deferred partitions paused until their head is due


DEFERRAL = DeferralStats()
#: The same counters for quarantined tenants' records on ``sms.held``
#: (:mod:`pipeline.agents.quarantine`).
HELD = DeferralStats()


def release_at_header(release_at: float) -> list[tuple[str, bytes]]:
    """The headers of a parked record."""
    return [(RELEASE_AT_HEADER, f"{release_at:.3f}".encode())]


def release_at_of(headers: Iterable[tuple[str, bytes | str | None]] | None) -> float | None:
    """The release time in ``headers``; None when missing or unreadable."""
    for name, value in headers or ():
        if name == RELEASE_AT_HEADER:
            if value is None:
                return None
            try:
                release_at = float(value.decode() if isinstance(value, bytes) else value)
            except (UnicodeDecodeError, ValueError):
                return None
            return release_at if math.isfinite(release_at) else None
    return None


class _Pacer:
    """At most ``per_s`` sends a second (one token per send, one second of burst)."""

    def __init__(self, per_s: float, clock: Callable[[], float],
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self._per_s = per_s
        self._clock = clock
        self._sleep = sleep
        self._tokens = per_s
        self._at = clock()

    async def take(self) -> None:
        now = self._clock()
        self._tokens = min(self._per_s, self._tokens + (now - self._at) * self._per_s)
        self._at = now
        if self._tokens < 1.0:
            await self._sleep((1.0 - self._tokens) / self._per_s)
            self._tokens = 1.0
            self._at = self._clock()
        self._tokens -= 1.0


class _Revoked(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, on_revoked: Callable[[Sequence[TopicPartition]], None]) -> None:
        self._on_revoked = on_revoked

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        self._on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        return None


#: When a parked record may flow again (epoch seconds); None: now. Gets the consumer record.
DueAt = Callable[[Any], "float | None"]


def _due_from_header(record: Any) -> float | None:
    release_at = release_at_of(record.headers)
    if release_at is None:
        DEFERRAL.bad_headers += 1
        log.warning("%s:%d@%d has no readable %s header: released now (the throttle parks it "
                    "again if its window is closed)", record.topic, record.partition,
                    record.offset, RELEASE_AT_HEADER)
    return release_at


class DeferredReleaser(TopicFollower):
    """Sends parked records back when they are due (see the module docstring). A
    :class:`~pipeline.topic_follower.TopicFollower` in its own consumer group: after a failure
    it resumes from its committed offsets, so a parked record is released late, never lost.

    ``due_at`` decides per record (default: its :data:`RELEASE_AT_HEADER`); the quarantine
    hold (:mod:`pipeline.agents.quarantine`) asks the configuration instead, and ``stats``
    keeps its counters apart."""

    max_records = 500

    def __init__(
        self,
        bootstrap: KafkaTarget,
        topic: str,
        group_id: str,
        send_back: SendBack,
        *,
        release_per_s: float,
        clock: Callable[[], float] = time.time,
        due_at: DueAt = _due_from_header,
        stats: DeferralStats = DEFERRAL,
        name: str = "deferred releaser",
        **kwargs: Any,
    ) -> None:
        if release_per_s <= 0:
            raise ValueError("release_per_s must be > 0")
        super().__init__(name, bootstrap, group_id=group_id, **kwargs)
        self._due = due_at
        self._stats = stats
        self._topic = topic
        self._send_back = send_back
        self._clock = clock
        self._pacer = _Pacer(release_per_s, clock)
        self._due_at: dict[TopicPartition, float] = {}  # paused partition → its head's time

    async def start_reading(self, consumer: AIOKafkaConsumer) -> None:
        consumer.subscribe([self._topic], listener=_Revoked(self._forget))

    def before_fetch(self, consumer: AIOKafkaConsumer) -> None:
        self._resume_due(consumer)

    def fetch_timeout_ms(self) -> int:
        return self._wait_ms()

    async def on_batch(self, consumer: AIOKafkaConsumer, batch: Batch) -> None:
        for tp, records in batch.items():
            await self._release(consumer, tp, records)

    def on_stopped(self) -> None:
        self._due_at.clear()
        self._stats.waiting_partitions = 0

    def _forget(self, revoked: Sequence[TopicPartition]) -> None:
        for tp in revoked:
            self._due_at.pop(tp, None)  # the next owner starts from the committed offset
        self._stats.waiting_partitions = len(self._due_at)

    def _wait_ms(self) -> int:
        if not self._due_at:
            return 1000
        until = min(self._due_at.values()) - self._clock()
        return max(1, min(1000, int(until * 1000) + 1))

    def _resume_due(self, consumer: AIOKafkaConsumer) -> None:
        now = self._clock()
        due = [tp for tp, at in self._due_at.items() if at <= now]
        if due:
            for tp in due:
                del self._due_at[tp]
            consumer.resume(*due)
            self._stats.waiting_partitions = len(self._due_at)

    async def _release(self, consumer: AIOKafkaConsumer, tp: TopicPartition,
                       records: Sequence[Any]) -> None:
        sends: list[asyncio.Future[Any]] = []
        committable: int | None = None
        for record in records:
            release_at = self._due(record)
            if release_at is not None and release_at > self._clock():
                # Not due: read it again when it is; nothing is held meanwhile.
                consumer.seek(tp, record.offset)
                consumer.pause(tp)
                self._due_at[tp] = release_at
                self._stats.waiting_partitions = len(self._due_at)
                break
            await self._pacer.take()
            sends.append(await self._send_back(record))
            committable = record.offset + 1
        if committable is None:
            return
        await asyncio.gather(*sends)  # a failed send raises: nothing committed, read again
        self._stats.released += len(sends)
        await consumer.commit({tp: committable})
