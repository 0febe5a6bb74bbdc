"""Producing from the event loop and awaiting Kafka's acknowledgement.

``sms.submitted`` records go through the project's :class:`~connectors.producer.SmsProducer`
(idempotent, acks=all, keyed by tenant with the partitioner every other producer uses, the
contract's Avro encoding). A pump thread per producer serves delivery reports, and a request
awaits one future for all its messages: the loop is woken once per request, not once per
message. A message that fails or is not stored within ``message.timeout.ms`` fails the request.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from connectors.producer import SmsProducer
from schemas.models import SubmitRequest
from smsflow.domain.errors import TransientError
from smsflow.kafka_clients import producer_config
from smsflow.kafka_security import KafkaTarget


class DeliveryFailed(TransientError, RuntimeError):
    """Kafka did not store every record of a request."""


class _Group:
    """Delivery reports of one request's records, resolved as one future."""

    def __init__(self, loop: asyncio.AbstractEventLoop, count: int) -> None:
        self._loop = loop
        self._remaining = count
        self._errors: list[str] = []
        self._lock = threading.Lock()
        self.future: asyncio.Future[None] = loop.create_future()
        if count == 0:
            self.future.set_result(None)

    def report(self, error: KafkaError | None) -> None:  # in the pump thread
        with self._lock:
            if error is not None:
                self._errors.append(str(error))
            self._remaining -= 1
            done = self._remaining == 0
        if done:
            self._loop.call_soon_threadsafe(self._finish)

    def delivered(self, error: KafkaError | None, _message: Message) -> None:
        """librdkafka's on_delivery signature, so no closure per record is needed."""
        self.report(error)

    def _finish(self) -> None:
        if self.future.done():
            return
        if self._errors:
            self.future.set_exception(DeliveryFailed("; ".join(sorted(set(self._errors)))))
        else:
            self.future.set_result(None)


class _Pump:
    def __init__(self, poll: Callable[[float], int], name: str) -> None:
        self._poll = poll
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._poll(0.05)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5.0)


class KafkaOut:
    def __init__(self, bootstrap: KafkaTarget, submitted_topic: str, timeout_s: float) -> None:
        timeout_ms = int(timeout_s * 1000)
        self.submitted = SmsProducer(
            bootstrap, submitted_topic, record_failures=False,
            **{"message.timeout.ms": timeout_ms},
        )
        self.internal = Producer(
            producer_config(bootstrap, **{"linger.ms": 2, "message.timeout.ms": timeout_ms})
        )
        self._pumps = [
            _Pump(self.submitted.poll, "api-submitted-pump"),
            _Pump(self.internal.poll, "api-internal-pump"),
        ]

    async def submit(self, requests: Iterable[SubmitRequest]) -> None:
        """Produce every request to ``sms.submitted``; return once Kafka stored all of them."""
        batch = list(requests)
        group = _Group(asyncio.get_running_loop(), len(batch))
        for request in batch:
            self.submitted.submit(request, lambda _id, error: group.report(error))
        await group.future

    async def submit_encoded(self, key: bytes, values: list[bytes]) -> None:
        """Produce ``sms.submitted`` values already encoded (api/submit_avro.py), all under
        ``key`` (the tenant); return once Kafka stored all of them."""
        group = _Group(asyncio.get_running_loop(), len(values))
        for value in values:
            self.submitted.submit_encoded(key, value, group.delivered)
        await group.future

    async def put(self, topic: str, key: bytes, value: bytes) -> None:
        """Produce one internal record; return once Kafka stored it."""
        group = _Group(asyncio.get_running_loop(), 1)

        def delivered(error: KafkaError | None, _message: Message) -> None:
            group.report(error)

        self.internal.produce(topic, key=key, value=value, on_delivery=delivered)
        await group.future

    def reachable(self, timeout_s: float) -> bool:
        """Blocking metadata round trip (run it in a thread)."""
        try:
            self.internal.list_topics(timeout=timeout_s)
        except KafkaException:  # timed out or refused: /readyz says so
            return False
        return True

    def close(self, timeout_s: float = 10.0) -> None:
        self.submitted.flush(timeout_s)
        self.internal.flush(timeout_s)
        for pump in self._pumps:
            pump.stop()
