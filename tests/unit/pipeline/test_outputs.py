"""The worker's output producer on real librdkafka, without a broker: a record that cannot be
stored fails its future and the commit barrier, so no source is committed past it."""

from __future__ import annotations

import asyncio

import pytest
from confluent_kafka import KafkaError, KafkaException

from pipeline.outputs import OutputProducer, OutputTopic


def test_an_unstored_record_fails_its_future_and_the_commit_barrier() -> None:
    async def scenario() -> None:
        producer = OutputProducer("127.0.0.1:1", **{"message.timeout.ms": 300})
        topic = OutputTopic(producer, "nowhere")
        future = await topic.send(key=b"k", value=b"v")
        assert producer.in_flight == 1
        with pytest.raises(KafkaException):
            await asyncio.wait_for(producer.flush(), timeout=10)
        assert future.done() and isinstance(future.exception(), KafkaException)
        assert producer.in_flight == 0
        with pytest.raises(KafkaException):  # every later commit fails too
            await producer.flush()
        producer.close(timeout_s=1)

    asyncio.run(scenario())


def test_the_delivery_pump_runs_only_while_records_are_in_flight() -> None:
    """An idle worker has no pump task left: its shutdown would otherwise wait for it."""
    async def scenario() -> None:
        producer = OutputProducer("127.0.0.1:1", **{"message.timeout.ms": 200})
        topic = OutputTopic(producer, "nowhere")
        for _ in range(2):  # a second burst after the pump ended gets a new pump
            future = await topic.send(key=b"k", value=b"v")
            assert producer.in_flight == 1
            await asyncio.wait([future], timeout=10)
            assert future.done() and producer.in_flight == 0
            await asyncio.sleep(0.05)
            pumps = [t for t in asyncio.all_tasks() if t.get_name() == "output-producer"]
            assert pumps == []
        producer.close(timeout_s=1)

    asyncio.run(scenario())


class _RecordingProducer:
    """librdkafka's Producer as the output producer uses it: produce calls recorded."""

    def __init__(self, refuse: set[str] | None = None, broken_keys: set[bytes] | None = None,
                 ) -> None:
        self.produced: list[tuple[str, bytes | None, int | None]] = []
        self.refuse = refuse or set()
        self.broken_keys = broken_keys or set()

    def produce(self, topic: str, value: bytes | None, key: bytes | None,
                partition: int | None = None, **_: object) -> None:
        if topic in self.refuse:
            raise KafkaException(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED))
        if key in self.broken_keys:  # stands for any non-Kafka error (a bug) in produce
            raise TypeError("value must be bytes")
        self.produced.append((topic, key, partition))

    def poll(self, _timeout: float) -> int:
        return 0

    def __len__(self) -> int:
        return len(self.produced)


def _with(fake: _RecordingProducer, **overrides: object) -> OutputProducer:
    producer = OutputProducer("127.0.0.1:1", **overrides)
    producer._loop = asyncio.get_running_loop()
    producer._producer = fake  # type: ignore[assignment]
    return producer


def test_records_sent_in_one_loop_iteration_are_handed_over_together_in_order() -> None:
    async def scenario() -> None:
        fake = _RecordingProducer()
        producer = _with(fake)
        for n in range(3):
            await OutputTopic(producer, "sms.routed").send(key=b"%d" % n, value=b"v")
        producer.send_soon("changelog", b"c", b"v", partition=2)
        await asyncio.sleep(0)
        assert fake.produced == []  # queued: handed over together, a moment later
        await asyncio.sleep(0.01)
        assert fake.produced == [("sms.routed", b"0", None), ("sms.routed", b"1", None),
                                 ("sms.routed", b"2", None), ("changelog", b"c", 2)]

    asyncio.run(scenario())


def test_the_commit_barrier_hands_queued_records_over_before_it_waits() -> None:
    async def scenario() -> None:
        fake = _RecordingProducer()
        producer = _with(fake)
        future = producer.send_soon("sms.dlr", b"k", b"v")
        barrier = asyncio.ensure_future(producer.flush())
        await asyncio.sleep(0)  # the barrier ran first: it handed the record over itself
        assert fake.produced == [("sms.dlr", b"k", None)]
        assert not barrier.done()  # ... and waits for its delivery report
        producer._delivered(future, None, None)  # type: ignore[arg-type]
        await asyncio.wait_for(barrier, 1)

    asyncio.run(scenario())


def test_a_record_refused_at_hand_over_fails_its_future_and_every_commit() -> None:
    async def scenario() -> None:
        fake = _RecordingProducer(refuse={"sms.rejected"})
        producer = _with(fake)
        refused = producer.send_soon("sms.rejected", b"k", b"v")
        after = producer.send_soon("sms.routed", b"k", b"v")
        await asyncio.sleep(0.01)
        assert isinstance(refused.exception(), KafkaException)
        assert fake.produced == [("sms.routed", b"k", None)]  # the next one still goes
        producer._delivered(after, None, None)  # type: ignore[arg-type]
        with pytest.raises(KafkaException):
            await producer.flush()

    asyncio.run(scenario())


def test_a_full_queue_refuses_at_once_so_callers_back_off() -> None:
    async def scenario() -> None:
        producer = _with(_RecordingProducer(), **{"queue.buffering.max.messages": 2})
        producer.send_soon("t", b"1", b"v")
        producer.send_soon("t", b"2", b"v")
        with pytest.raises(BufferError):
            producer.send_soon("t", b"3", b"v")

    asyncio.run(scenario())


def test_any_refusal_at_hand_over_fails_that_record_and_the_rest_still_go() -> None:
    """The hand-over runs as a loop callback: an exception there must not strand the rest of
    the group (their futures, and the commit barrier, would wait for ever)."""
    async def scenario() -> None:
        fake = _RecordingProducer(broken_keys={b"k"})
        producer = _with(fake)
        broken = producer.send_soon("sms.routed", b"k", b"v")
        after = producer.send_soon("sms.routed", b"k2", b"v")
        await asyncio.sleep(0.01)
        assert isinstance(broken.exception(), TypeError)
        assert fake.produced == [("sms.routed", b"k2", None)]
        producer._delivered(after, None, None)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            await producer.flush()

    asyncio.run(scenario())
