"""The worker's output producer: librdkafka (confluent-kafka) instead of faust's per-record sends.

Why: faust's ``await topic.send(...)`` costs about 230 µs of worker CPU per record on this
kind of machine (aiokafka builds and writes one small produce request after another, on the
event loop); librdkafka batches in C, off the event loop, for a few µs per ``produce`` call
(docs/performance.md has the before/after). Every record the agents pass on goes through here:
``sms.routed``, ``sms.throttled``, ``sms.dlr.parts``, ``sms.dlr``, ``sms.rejected``, the
tracking deltas, route health, timer commands and parked records. faust's own producer still
writes the table changelogs.

Theory of operation
-------------------
* :meth:`OutputProducer.send` hands the record to librdkafka and returns an asyncio future that
  completes once the broker stored it (``acks=all``, idempotent), exactly like the future faust's
  ``topic.send`` returns: the scheduled stages ack their sources on it and
  :func:`~pipeline.after_delivery.after_delivery` writes done markers from it.
* Delivery reports are served on the event loop itself: while records are in flight, a pump
  task calls ``poll(0)`` every 2 ms, which completes the futures in place. A poller thread
  measured worse: every report took the GIL from the event loop (docs/performance.md). The
  pump ends when nothing is in flight and the next send starts a new one, so an idle worker
  has no task left over (its shutdown does not wait out a task that would never end).
* **Commit barrier.** faust flushes *its* producer before every offset commit, which is what
  makes an agent's auto-acked source committable only after its outputs are stored. The guarded
  consumer calls :meth:`OutputProducer.flush` at the same place, so the rule holds for these
  outputs too: a commit waits until every record sent before it is stored.
* A record the broker refuses (or that times out after librdkafka's retries) is fatal: the
  future fails, the commit barrier raises, and the worker stops with its sources uncommitted
  (replayed by the next owner): never lost.
* A full local queue (``BufferError``) is back-pressure: ``send`` waits a moment and retries.
* **Grouped hand-over.** ``send`` queues the record and its future in Python; a callback
  1 ms later hands everything queued by then to librdkafka, in order. A ``produce`` call
  that finds its partition's queue empty wakes librdkafka's broker thread (and contends for
  its lock): spread out, as agents send one or two records per event, it cost ~14 µs of
  wall time per call; in groups of 4, ~7 µs, of 16, ~3 µs (a trickle benchmark on this
  machine). Handing over at once on the next loop iteration made groups of only 2.4 records
  and no measurable difference; 1 ms later, ~5 % less worker CPU per message
  (docs/performance.md). The commit barrier hands the queue over before it waits, so nothing
  queued escapes it. A ``produce`` that raises at once (topic
  authorization) fails that record's future and every later commit, as a refused delivery
  does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from functools import partial
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from smsflow.kafka_clients import producer_config
from smsflow.kafka_security import KafkaTarget

log = logging.getLogger(__name__)

__all__ = ["OutputProducer", "OutputTopic"]

Headers = Sequence[tuple[str, bytes]] | None
#: A record waiting for the next hand-over: topic, key, value, headers, partition, its future.
_Queued = tuple[str, bytes | None, bytes | None, Headers, int | None, "asyncio.Future[None]"]

_PUMP_EVERY_S = 0.002  # how often delivery reports are served while records are in flight
_FULL_QUEUE_WAIT_S = 0.005
#: How long a record sent waits in Python for others to hand over with it (module docstring,
#: "Grouped hand-over"). Far below the producer's linger (5 ms): no latency to speak of.
_HAND_OVER_EVERY_S = 0.001


class OutputProducer:
    """One per worker process: see the module docstring."""

    def __init__(self, bootstrap: KafkaTarget, **overrides: Any) -> None:
        self._config = producer_config(
            bootstrap,
            **{
                "linger.ms": 5,
                "batch.num.messages": 10_000,
                "queue.buffering.max.messages": 500_000,
                "compression.type": "lz4",
                **overrides,
            },
        )
        self._producer: Producer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: set[asyncio.Future[None]] = set()
        #: Records sent since the loop last ran :meth:`_hand_over` (see "Grouped hand-over").
        self._queued: list[_Queued] = []
        self._hand_over_at: asyncio.Handle | None = None
        #: How long a record waits for others before the hand-over: longer while the worker is
        #: behind (pipeline/backlog_batching.py), when waiting costs no one anything.
        self.hand_over_delay_s = _HAND_OVER_EVERY_S
        self._max_queued = int(self._config["queue.buffering.max.messages"])
        self._pump_task: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None
        self.sent = 0

    # ------------------------------------------------------------------ sending

    def _start(self) -> Producer:
        self._loop = asyncio.get_running_loop()
        self._producer = Producer(self._config)
        return self._producer

    async def send(self, topic: str, key: bytes | None, value: bytes | None,
                   headers: Headers = None, *, partition: int | None = None,
                   ) -> asyncio.Future[None]:
        """Queue one record (in ``partition``, else the key's); the returned future completes
        when the broker stored it."""
        while True:
            try:
                return self.send_soon(topic, key, value, headers, partition=partition)
            except BufferError:
                await asyncio.sleep(_FULL_QUEUE_WAIT_S)  # librdkafka's queue is full

    def send_soon(self, topic: str, key: bytes | None, value: bytes | None,
                  headers: Headers = None, *, partition: int | None = None,
                  ) -> asyncio.Future[None]:
        """:meth:`send` for callers that cannot wait (faust's table writes): raises
        ``BufferError`` if librdkafka's queue (500,000 records) is full."""
        producer = self._producer if self._producer is not None else self._start()
        loop = self._loop
        assert loop is not None
        if len(self._queued) + len(producer) >= self._max_queued:
            producer.poll(0)
            raise BufferError("the output producer's queue is full")
        future: asyncio.Future[None] = loop.create_future()
        self._queued.append((topic, key, value, headers, partition, future))
        if self._hand_over_at is None:
            self._hand_over_at = loop.call_later(self.hand_over_delay_s, self._hand_over)
        self._pending.add(future)
        pump = self._pump_task
        if pump is None or pump.done():  # nothing was in flight: serve the reports again
            self._pump_task = loop.create_task(self._pump(), name="output-producer")
        self.sent += 1
        return future

    def _hand_over(self) -> None:
        """Give librdkafka every record queued since the last hand-over, in order."""
        self._hand_over_at = None
        queued, self._queued = self._queued, []
        producer = self._producer
        assert producer is not None
        produce, delivered = producer.produce, self._delivered
        for index, (topic, key, value, headers, partition, future) in enumerate(queued):
            try:
                if partition is None:
                    produce(topic, value, key, on_delivery=partial(delivered, future),
                            headers=list(headers) if headers else None)
                else:
                    produce(topic, value, key, partition, on_delivery=partial(delivered, future),
                            headers=list(headers) if headers else None)
            except BufferError:  # its byte limit: serve reports, then go on from this record
                producer.poll(0)
                self._queued[:0] = queued[index:]
                assert self._loop is not None
                self._hand_over_at = self._loop.call_later(_FULL_QUEUE_WAIT_S, self._hand_over)
                return
            except Exception as exc:  # refused at once (e.g. topic authorization), or a bug
                # Failed here, not raised: this runs as a loop callback, where a raise would
                # leave the rest of the group unproduced and their futures (and every commit
                # barrier) waiting for ever. A failed future stops the worker uncommitted.
                self._fail(future, exc)

    # ------------------------------------------------------------------ delivery reports

    async def _pump(self) -> None:
        """Serve delivery reports on the event loop while records are in flight: no thread, no
        GIL hand-offs; a few hundred cheap ``poll(0)`` calls a second at most."""
        producer = self._producer
        assert producer is not None
        # Re-checked right before returning (no await in between): a send finds this task
        # either still serving or done, never ending without serving its record.
        while self._pending:
            await asyncio.sleep(_PUMP_EVERY_S)
            try:
                producer.poll(0)  # runs _delivered for every report that arrived
            except Exception:  # the pump must outlive anything a report throws at it
                log.exception("serving the output producer's delivery reports failed")

    def _delivered(self, future: asyncio.Future[None], error: KafkaError | None,
                   _message: Message) -> None:
        if error is None:
            self._pending.discard(future)
            if not future.done():
                future.set_result(None)
            return
        self._fail(future, KafkaException(error))

    def _fail(self, future: asyncio.Future[None], failure: Exception) -> None:
        self._pending.discard(future)
        if future.done():
            return
        if self._failure is None:
            self._failure = failure
            log.error("an output record was not stored: %s", failure)
        future.set_exception(failure)

    # ------------------------------------------------------------------ barrier

    async def flush(self) -> None:
        """Wait until every record sent so far is stored; raise if one was refused."""
        if self._queued:
            self._hand_over_now()
        # One test of the failure, after the wait: a delivery report may set it meanwhile, and
        # compiled (mypyc) code would trust a narrowing to None made before the await.
        if self._pending and self._failure is None:
            await asyncio.wait(list(self._pending))
        if self._failure is not None:
            raise self._failure

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def close(self, timeout_s: float = 10.0) -> None:
        if self._queued:
            self._hand_over_now()
        if self._pump_task is not None:
            self._pump_task.cancel()
        if self._producer is not None:
            self._producer.flush(timeout_s)

    def _hand_over_now(self) -> None:
        if self._hand_over_at is not None:
            self._hand_over_at.cancel()
        self._hand_over()


class OutputTopic:
    """A topic the worker writes to, with the shape of faust's ``topic.send``."""

    __slots__ = ("_producer", "name")

    def __init__(self, producer: OutputProducer, name: str) -> None:
        self._producer = producer
        self.name = name

    def get_topic_name(self) -> str:
        return self.name

    async def send(self, *, key: bytes | None = None, value: bytes | None = None,
                   headers: Headers = None, partition: int | None = None,
                   ) -> asyncio.Future[None]:
        return await self._producer.send(self.name, key, value, headers, partition=partition)
