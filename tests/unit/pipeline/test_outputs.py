"""The worker's output producer on real librdkafka, without a broker: a record that cannot be
stored fails its future and the commit barrier, so no source is committed past it."""

from __future__ import annotations

import asyncio

import pytest
from confluent_kafka import KafkaException

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
