"""Producer client: how tenants' systems (and our tools) put messages on ``sms.submitted``.

Idempotent, acks=all: once :meth:`SmsProducer.flush` returns 0, every submitted message is in
Kafka and will reach a terminal state. Keyed by tenant id, so one tenant's messages stay in order
on one partition and per-tenant limits are exact there.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from schemas.models import MessageType, SubmitRequest
from smsflow.kafka_clients import producer_config
from smsflow.kafka_security import KafkaTarget

DeliveryCallback = Callable[[str, KafkaError | None], None]


class SmsProducer:
    def __init__(
        self,
        bootstrap: KafkaTarget,
        topic: str,
        *,
        linger_ms: int = 5,
        record_failures: bool = True,
        **config: Any,
    ) -> None:
        """``config``: further librdkafka settings (the API sets ``message.timeout.ms``).
        ``record_failures=False``: a long-running caller that handles every failure through
        ``on_delivery`` does not want :attr:`failed` to grow without bound."""
        self.topic = topic
        self._record_failures = record_failures
        self._producer = Producer(
            producer_config(
                bootstrap, **{"linger.ms": linger_ms, "compression.type": "lz4", **config}
            )
        )
        self.failed: list[tuple[str, str]] = []

    def submit(self, request: SubmitRequest, on_delivery: DeliveryCallback | None = None) -> None:
        def _delivered(error: KafkaError | None, _message: Message) -> None:
            if error is not None and self._record_failures:
                self.failed.append((request.message_id, str(error)))
            if on_delivery is not None:
                on_delivery(request.message_id, error)

        while True:
            try:
                self._producer.produce(
                    self.topic,
                    key=request.tenant_id.encode(),
                    value=request.to_avro(self.topic),
                    on_delivery=_delivered,
                )
                break
            except BufferError:
                # Local queue full: serve delivery callbacks until there is room again.
                self._producer.poll(0.05)
        self._producer.poll(0)

    def submit_encoded(
        self, key: bytes, value: bytes, on_delivery: Callable[[KafkaError | None, Message], None]
    ) -> None:
        """Produce a value already encoded with the contract (the API encodes a request's
        messages itself: api/submit_avro.py); delivery reports are served by the caller's
        ``poll`` (no ``poll(0)`` per record here)."""
        while True:
            try:
                self._producer.produce(self.topic, key=key, value=value, on_delivery=on_delivery)
                return
            except BufferError:
                self._producer.poll(0.05)

    def submit_raw(self, key: bytes | None, value: bytes) -> None:
        """Put arbitrary bytes on the topic (tests and bad-input drills)."""
        self._producer.produce(self.topic, key=key, value=value)

    def poll(self, timeout_s: float) -> int:
        """Serve delivery callbacks (from a thread of the caller's, e.g. the API's pump)."""
        return int(self._producer.poll(timeout_s))

    def flush(self, timeout_s: float = 30.0) -> int:
        """Wait for every submitted message to be acknowledged; returns how many are not."""
        return int(self._producer.flush(timeout_s))


def new_request(
    tenant_id: str,
    destination: str,
    body: str,
    *,
    source: str = "SMSFLOW",
    message_type: MessageType = MessageType.TRANSACTIONAL,
    client_ref: str | None = None,
    now: datetime | None = None,
) -> SubmitRequest:
    return SubmitRequest(
        message_id=str(uuid.uuid4()),
        tenant_id=tenant_id,
        source=source,
        destination=destination,
        body=body,
        message_type=message_type,
        submitted_at=now or datetime.now(UTC),
        client_ref=client_ref,
    )
