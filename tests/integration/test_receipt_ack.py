"""Receipts are acknowledged to the SMSC only after Kafka stored them.

The sender answers a receipt's ``deliver_sm_resp`` from the delivery report of its
``ReceiptEvent``: ``ESME_ROK`` once stored, a temporary error when the produce failed, so the
SMSC keeps the receipt and delivers it again (instead of a SIGKILL or a broker failure losing
it after the SMSC was told it arrived).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, Producer

from connectors.producer import new_request
from connectors.sender.service import SenderService
from schemas.batches import receipt_values
from schemas.models import ReceiptEvent, RoutedMessage, TextEncoding
from smsflow.config.store import load_yaml
from smsflow.devstack.harness import isolated_settings, read_records
from smsflow.topics import DLR_RAW, THROTTLED, apply_topics, topic_name
from tests.integration.simulators import platform_simulator, pointed_at
from tests.paths import PLATFORM_CONFIG

FAILURES = 2


class FailingReceipts:
    """The sender's producer, except that the first ``failures`` records for ``topic`` are not
    stored: their delivery reports (through ``poll``, like librdkafka's) carry an error."""

    def __init__(self, real: Producer, topic: str, failures: int) -> None:
        self._real = real
        self._topic = topic
        self._left = failures
        self._lock = threading.Lock()
        self._failed: list[Callable[[KafkaError | None, Any], None]] = []

    def produce(self, topic: str, *args: Any, **kwargs: Any) -> None:
        with self._lock:
            fail = topic == self._topic and self._left > 0
            if fail:
                self._left -= 1
                self._failed.append(kwargs["on_delivery"])
        if not fail:
            self._real.produce(topic, *args, **kwargs)

    def poll(self, timeout: float = -1) -> int:
        with self._lock:
            failed, self._failed = self._failed, []
        for on_delivery in failed:
            on_delivery(KafkaError(KafkaError._MSG_TIMED_OUT), None)
        return len(failed) + self._real.poll(timeout)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def test_receipt_not_stored_is_not_acknowledged_and_comes_again(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = isolated_settings(kafka_bootstrap, tmp_path, "receiptack", partitions=1)
    apply_topics(settings)
    sim = platform_simulator(
        seed=5, profiles={"default": {"receipt_delay_ms": 10, "delivery_ratio": 1.0}},
        receipt_retry_ms=50)
    service = SenderService(settings, pointed_at(load_yaml(PLATFORM_CONFIG), sim.port, binds=1),
                            group_id=f"receiptack-{uuid.uuid4().hex[:8]}")
    service.drain_timeout_s = 1.0
    raw = topic_name(settings, DLR_RAW)
    service._producer = FailingReceipts(service._producer, raw, FAILURES)  # type: ignore[assignment]
    runner = threading.Thread(target=service.run, name="sender-under-test", daemon=True)
    runner.start()
    try:
        now = datetime.now(UTC)
        routed = RoutedMessage(
            request=new_request("acme-bank", "+447401200001", "receipt ack", now=now),
            destination="+447401200001", route_id="uk-direct", smsc_id="smsc-uk",
            operator_id="op", country="GB", encoding=TextEncoding.GSM7, parts=1, routed_at=now,
        )
        throttled = topic_name(settings, THROTTLED)
        producer = Producer({"bootstrap.servers": settings.kafka_bootstrap})
        producer.produce(throttled, key=b"p", value=routed.to_avro(throttled))
        producer.flush(10)

        stats = sim.wait_for(lambda s: s.receipts_acked >= 1, timeout=60)
        # Each failed produce answered with a temporary error, never ESME_ROK; the SMSC resent
        # the receipt until one copy was stored, and only that one was acknowledged.
        assert stats.receipts_nacked == FAILURES
        assert stats.receipts_acked == 1
        assert stats.receipts_sent == FAILURES + 1
        stored = [ReceiptEvent.from_avro(receipt) for _key, value in read_records(settings, DLR_RAW)
                  for receipt in receipt_values(value)]
        assert len(stored) == 1 and stored[0].smsc_id == "smsc-uk"
    finally:
        service.stop()
        runner.join(30)
        sim.stop()
    assert not runner.is_alive()
