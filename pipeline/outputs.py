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
* A poller thread serves librdkafka's delivery reports (``poll`` releases the GIL while it
  waits) and hands each batch of outcomes to the event loop in **one** ``call_soon_threadsafe``,
  so futures complete on the loop, in the order the broker acknowledged them.
* **Commit barrier.** faust flushes *its* producer before every offset commit, which is what
  makes an agent's auto-acked source committable only after its outputs are stored. The guarded
  consumer calls :meth:`OutputProducer.flush` at the same place, so the rule holds for these
  outputs too: a commit waits until every record sent before it is stored.
* A record the broker refuses (or that times out after librdkafka's retries) is fatal: the
  future fails, the commit barrier raises, and the worker stops with its sources uncommitted
  (replayed by the next owner): never lost.
* A full local queue (``BufferError``) is back-pressure: ``send`` waits a moment and retries.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from smsflow.kafka_clients import producer_config

log = logging.getLogger(__name__)

__all__ = ["OutputProducer", "OutputTopic"]

Headers = Sequence[tuple[str, bytes]] | None

_POLL_S = 0.05  # the poller's wait for delivery reports; librdkafka wakes it when one arrives
_FULL_QUEUE_WAIT_S = 0.005


class OutputProducer:
    """One per worker process: see the module docstring."""

    def __init__(self, bootstrap: str, **overrides: Any) -> None:
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
        self._reports: list[tuple[asyncio.Future[None], KafkaError | None]] = []
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None
        self.sent = 0

    # ------------------------------------------------------------------ sending

    def _start(self) -> Producer:
        self._loop = asyncio.get_running_loop()
        self._producer = Producer(self._config)
        self._thread = threading.Thread(target=self._poll_forever, name="output-producer",
                                        daemon=True)
        self._thread.start()
        return self._producer

    async def send(self, topic: str, key: bytes | None, value: bytes | None,
                   headers: Headers = None) -> asyncio.Future[None]:
        """Queue one record; the returned future completes when the broker stored it."""
        producer = self._producer or self._start()
        future: asyncio.Future[None] = self._loop.create_future()  # type: ignore[union-attr]
        def delivered(error: KafkaError | None, _message: Message) -> None:
            # On the poller thread, which hands self._reports to the loop in batches (the list
            # is replaced at each hand-over: look it up now, never at send time).
            self._reports.append((future, error))

        while True:
            try:
                producer.produce(topic, value, key, on_delivery=delivered,
                                 headers=list(headers) if headers else None)
                break
            except BufferError:
                await asyncio.sleep(_FULL_QUEUE_WAIT_S)  # librdkafka's queue is full
        self._pending.add(future)
        self.sent += 1
        return future

    # ------------------------------------------------------------------ delivery reports

    def _poll_forever(self) -> None:
        producer, loop = self._producer, self._loop
        assert producer is not None and loop is not None
        while not self._stopping.is_set():
            producer.poll(_POLL_S)
            self._hand_over(loop)
        producer.flush(10)
        self._hand_over(loop)

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._reports:
            return
        batch, self._reports = self._reports, []
        try:
            loop.call_soon_threadsafe(self._resolve, batch)
        except RuntimeError:  # the loop is closed: the worker is gone
            pass

    def _resolve(self, batch: Iterable[tuple[asyncio.Future[None], KafkaError | None]]) -> None:
        pending = self._pending
        for future, error in batch:
            pending.discard(future)
            if future.done():
                continue
            if error is None:
                future.set_result(None)
            else:
                failure = KafkaException(error)
                if self._failure is None:
                    self._failure = failure
                    log.error("an output record was not stored: %s", error)
                future.set_exception(failure)

    # ------------------------------------------------------------------ barrier

    async def flush(self) -> None:
        """Wait until every record sent so far is stored; raise if one was refused."""
        if self._failure is not None:
            raise self._failure
        if not self._pending:
            return
        await asyncio.wait(list(self._pending))
        if self._failure is not None:
            raise self._failure

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def close(self, timeout_s: float = 10.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout_s)


class OutputTopic:
    """A topic the worker writes to, with the shape of faust's ``topic.send``."""

    __slots__ = ("_producer", "name")

    def __init__(self, producer: OutputProducer, name: str) -> None:
        self._producer = producer
        self.name = name

    def get_topic_name(self) -> str:
        return self.name

    async def send(self, *, key: bytes | None = None, value: bytes | None = None,
                   headers: Headers = None) -> asyncio.Future[None]:
        return await self._producer.send(self.name, key, value, headers)
