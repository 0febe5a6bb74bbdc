"""Our confluent-kafka producers and faust/aiokafka must put a key on the same partition."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from confluent_kafka import Consumer, Producer

from smsflow.kafka_clients import producer_config
from tests.integration.conftest import TopicFactory

KEYS = [b"acme-bank", b"shopfast", b"promo-blast", b"uk-direct", b"smsc-uk:12345", b"t-42"]


def test_same_key_same_partition_as_faust(
    kafka_bootstrap: str, topic_factory: TopicFactory
) -> None:
    topic = topic_factory(partitions=4)
    producer = Producer(producer_config(kafka_bootstrap))
    for key in KEYS:
        producer.produce(topic, key=key, value=b"v")
    assert producer.flush(30) == 0

    consumer = Consumer({
        "bootstrap.servers": kafka_bootstrap, "group.id": f"{topic}-check",
        "auto.offset.reset": "earliest",
    })
    consumer.subscribe([topic])
    placed: dict[bytes, int] = {}
    while len(placed) < len(KEYS):
        message = consumer.poll(10)
        assert message is not None, "records did not arrive"
        if message.error() is None:
            placed[message.key() or b""] = message.partition() or 0
    consumer.close()

    faust_partitioner = DefaultPartitioner()
    partitions = list(range(4))
    expected = {key: faust_partitioner(key, partitions, partitions) for key in KEYS}
    assert placed == expected
