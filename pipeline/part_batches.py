"""``sms.dlr.parts`` records in batches: the parts the correlator completes, one record per
partition instead of one per part.

Why: ``sms.dlr.parts`` is internal (only the aggregator reads it), yet each part was a record
of its own, so the worker paid faust's per-event cost for it a second time (1.25 events per
message, with a produce and a fetch each). The correlator now hands each part to
:class:`PartBatcher`, which keeps them per ``sms.dlr.parts`` partition for
``SMSFLOW_PARTS_BATCH_MS`` (5 ms; longer while the worker is in a backlog, as long as the
output producer then holds its records) and writes each partition's parts as one record:
:data:`BATCH_MAGIC`, then each part's ``PartOutcome`` value length-prefixed (:func:`pack`,
:func:`unpack`). The aggregator takes such a record part by part, exactly as it took the
records one by one; records of one part (the older format, and the fallback below) are still
read.

The partition is the one Kafka's default partitioner gives the part's message id (murmur2,
as every producer of ours and faust use): so a message's parts, its timer commands on
``sms.dlr.parts.timers`` (keyed by message id) and its ``dlr-parts`` table row stay on one
partition, as before. While the worker does not know the topic's partition count yet (a
consumer whose metadata is still arriving), a part is written alone, keyed by its message id.

Guarantees are the correlator's as before: a part's done marker is written only once its
batch record is stored (:func:`~pipeline.after_delivery.after_delivery`, per part, with the
event that completed it), and the worker's commit barrier hands over every held part and
waits for it before any offset is committed (:meth:`PartBatcher.flush`).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import faust

from pipeline.after_delivery import after_delivery
from pipeline.outputs import OutputProducer
from smsflow import length_prefixed
from smsflow.murmur2 import partition_of

__all__ = ["BATCH_MAGIC", "PartBatcher", "pack", "partition_of", "unpack"]

#: First bytes of a batch record: neither Avro single-object (C3 01) nor Confluent (00) framing.
BATCH_MAGIC = b"\xffPB1"
_RETRY_FULL_QUEUE_S = 0.005

#: What a held part waits to do once its record is stored (None: nothing).
OnStored = Callable[[], None] | None


def pack(values: list[bytes]) -> bytes:
    return length_prefixed.pack(BATCH_MAGIC, values)


def unpack(record: bytes) -> Iterator[bytes]:
    """The part values of a ``sms.dlr.parts`` record: the batch's, or the record itself."""
    return length_prefixed.values_of(record, BATCH_MAGIC, "sms.dlr.parts batch")


class PartBatcher:
    """One per worker: see the module docstring."""

    def __init__(self, producer: OutputProducer, topic: str,
                 partitions: Callable[[], int], *, delay_s: float = 0.001,
                 max_parts: int = 1000) -> None:
        self._producer = producer
        self._topic = topic
        #: The topic's partition count as the worker knows it (0: not known yet).
        self._partitions = partitions
        self.delay_s = delay_s
        self._max_parts = max_parts
        self._held: dict[int, list[tuple[bytes, faust.EventT[Any], OnStored]]] = (
            defaultdict(list))
        self._count = 0
        self._flush_at: asyncio.TimerHandle | None = None
        #: Parts sent, and the records they took (in the delivery agents' 30 s log line).
        self.parts = 0
        self.records = 0

    async def add(self, message_id: str, value: bytes, event: faust.EventT[Any],
                  on_stored: OnStored) -> None:
        """Send the part; ``on_stored()`` (in ``event``'s context) once its record is stored."""
        self.parts += 1
        partitions = self._partitions()
        key = message_id.encode()
        if partitions <= 0 or self.delay_s <= 0:
            future = await self._producer.send(self._topic, key, value)
            self.records += 1
            if on_stored is not None:
                after_delivery(future, event, on_stored)
            return
        self._held[partition_of(key, partitions)].append((value, event, on_stored))
        self._count += 1
        if self._count >= self._max_parts:
            self.hand_over()
        elif self._flush_at is None:
            # In a backlog the output producer holds its records longer anyway
            # (pipeline/backlog_batching.py): hold the parts as long, for fuller batches.
            delay = max(self.delay_s, self._producer.hand_over_delay_s)
            self._flush_at = asyncio.get_running_loop().call_later(delay, self.hand_over)

    def hand_over(self) -> None:
        """Give the output producer one record per partition of what is held. A full producer
        queue keeps the rest held and tries again shortly."""
        if self._flush_at is not None:
            self._flush_at.cancel()
            self._flush_at = None
        while self._held:
            partition, parts = next(iter(self._held.items()))
            try:
                future = self._producer.send_soon(
                    self._topic, None, pack([value for value, _, _ in parts]),
                    partition=partition)
            except BufferError:
                self._flush_at = asyncio.get_running_loop().call_later(
                    _RETRY_FULL_QUEUE_S, self.hand_over)
                return
            del self._held[partition]
            self._count -= len(parts)
            self.records += 1
            for _, event, on_stored in parts:
                if on_stored is not None:
                    after_delivery(future, event, on_stored)

    async def flush(self) -> None:
        """The commit barrier: every held part handed over, then every output stored."""
        while self._held:
            self.hand_over()
            if self._held:
                await asyncio.sleep(_RETRY_FULL_QUEUE_S)
        await self._producer.flush()
