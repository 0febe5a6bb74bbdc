"""StoreRetry: a record Kafka refused is produced again, after a backoff, until stored."""

from __future__ import annotations

import gc
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from connectors.sender.store_retry import StoreRetry, backoff_s


class FakeKafka:
    """Answers each produce with the next verdict (None: stored; a KafkaError: refused)."""

    def __init__(self, verdicts: list[KafkaError | None]) -> None:
        self.verdicts = verdicts
        self.produced: list[tuple[str, str | None, bytes, dict[str, Any]]] = []

    def produce(self, topic: str, key: str | None, value: bytes, on_delivery: Any,
                **extra: Any) -> None:
        self.produced.append((topic, key, value, extra))
        on_delivery(self.verdicts.pop(0), None)


REFUSED = KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)


class RefusingAtOnce(FakeKafka):
    """librdkafka's produce() raising what its metadata already knows (an ACL revoked)."""

    def produce(self, topic: str, key: str | None, value: bytes, on_delivery: Any,
                **extra: Any) -> None:
        verdict = self.verdicts[0]
        if verdict is not None:
            self.verdicts.pop(0)
            self.produced.append((topic, key, value, extra))
            raise KafkaException(verdict)
        super().produce(topic, key, value, on_delivery, **extra)


def test_a_record_refused_at_once_by_produce_is_retried_like_a_refused_delivery() -> None:
    kafka = RefusingAtOnce([KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED), None])
    stored: list[KafkaError | None] = []
    store = StoreRetry(kafka.produce, stopping=lambda: False)
    store.produce("sms.sent", "k", b"v", lambda error, _m: stored.append(error))
    assert stored == [] and store.waiting() == 1 and store.refusals == 1
    assert store.run_due(now=1e12) == 1
    assert stored == [None] and store.waiting() == 0
    assert len(kafka.produced) == 2


def test_a_refused_record_is_produced_again_after_its_backoff_until_stored() -> None:
    kafka = FakeKafka([REFUSED, REFUSED, None])
    stored: list[KafkaError | None] = []
    store = StoreRetry(kafka.produce, stopping=lambda: False)

    store.produce("sms.sent", "k", b"v", lambda error, _m: stored.append(error),
                  headers=[("h", b"1")])

    assert stored == [] and store.waiting() == 1 and len(kafka.produced) == 1
    assert store.run_due(now=0.0) == 0  # its backoff has not ended
    assert store.run_due(now=1e12) == 1  # refused again: a longer backoff
    assert stored == [] and store.waiting() == 1
    assert store.run_due(now=1e12) == 1  # stored now
    assert stored == [None] and store.waiting() == 0 and store.refusals == 2
    # The same record every time, with its headers.
    assert {p[:3] for p in kafka.produced} == {("sms.sent", "k", b"v")}
    assert all(p[3] == {"headers": [("h", b"1")]} for p in kafka.produced)


def test_stored_at_once_calls_back_once_and_nothing_waits() -> None:
    kafka = FakeKafka([None])
    stored: list[KafkaError | None] = []
    store = StoreRetry(kafka.produce, stopping=lambda: False)
    store.produce("t", None, b"v", lambda error, _m: stored.append(error))
    assert stored == [None] and store.waiting() == 0 and store.run_due(now=1e12) == 0


def test_when_stopping_the_error_is_handed_back_and_not_retried() -> None:
    kafka = FakeKafka([REFUSED])
    stored: list[KafkaError | None] = []
    store = StoreRetry(kafka.produce, stopping=lambda: True)
    store.produce("t", None, b"v", lambda error, _m: stored.append(error))
    assert stored == [REFUSED] and store.waiting() == 0 and store.run_due(now=1e12) == 0


def test_backoff_doubles_up_to_ten_seconds() -> None:
    assert [backoff_s(n) for n in range(1, 8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def _cyclic_garbage_after(action: Any) -> int:
    """Objects only the cycle collector could free, left by ``action()``."""
    gc.collect()
    gc.disable()
    try:
        action()
        return gc.collect()
    finally:
        gc.enable()


def test_a_stored_record_leaves_no_reference_cycle_behind() -> None:
    """Its callback, and the submit job the callback holds, are freed by reference counting the
    moment Kafka stored the record. Two closures naming each other did not: ~35 objects a
    message waited for the collector, ~8 % of the sender's CPU (docs/performance.md)."""

    class Job:  # what the sender's callbacks hold
        def on_stored(self, _error: KafkaError | None, _message: Any) -> None:
            pass

    def produce_one_stored_and_one_retried() -> None:
        kafka = FakeKafka([None, REFUSED, None])
        store = StoreRetry(kafka.produce, stopping=lambda: False)
        store.produce("sms.sent", "k", b"v", Job().on_stored)
        store.produce("sms.sent", "k2", b"v", Job().on_stored)
        assert store.run_due(now=1e12) == 1 and store.waiting() == 0

    assert _cyclic_garbage_after(produce_one_stored_and_one_retried) == 0
