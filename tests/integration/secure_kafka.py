"""Settings and small clients for tests against a private broker's secured listeners.

The broker is the test module's own (a temp home, free ports; the shared broker at
127.0.0.1:9092 is never touched), started with ``sasl_ssl_port`` and/or ``ssl_port``: the dev
CA, SCRAM user and client certificate of smsflow/devstack/broker_sasl.py and broker_mtls.py.
Clients are configured only through Settings and the project's builders.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from pydantic import SecretStr

from pipeline.app import build_app
from smsflow.devstack.broker import LocalBroker
from smsflow.kafka_clients import aiokafka_config, client_config, producer_config
from smsflow.kafka_security import kafka_connection
from smsflow.settings import Settings

DEADLINE_S = 20.0


def sasl_settings(broker: LocalBroker, tmp_path: Path, password: str | None = None,
                  user: str | None = None) -> Settings:
    """SASL_SSL (SCRAM-SHA-512) as the broker's user; ``password`` replaces the right one."""
    material = broker.sasl_ssl_material()
    secret = tmp_path / f"kafka-password-{uuid.uuid4().hex[:6]}"
    secret.write_text(material.password if password is None else password)
    return Settings(
        kafka_bootstrap=f"127.0.0.1:{broker.sasl_ssl_port}",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username=material.user if user is None else user,
        kafka_sasl_password=SecretStr(f"file:{secret}"),
        kafka_ssl_ca_file=material.ca_file,
        home=tmp_path,
        app_id=f"sasl-{uuid.uuid4().hex[:8]}",
        partitions=1,
    )


def mtls_settings(broker: LocalBroker, tmp_path: Path, *, with_cert: bool = True) -> Settings:
    """SSL to the listener requiring a client certificate; ``with_cert=False``: none given."""
    material = broker.mtls_material()
    return Settings(
        kafka_bootstrap=f"127.0.0.1:{broker.ssl_port}",
        kafka_security_protocol="SSL",
        kafka_ssl_ca_file=material.ca_file,
        kafka_ssl_cert_file=material.cert_file if with_cert else None,
        kafka_ssl_key_file=material.key_file if with_cert else None,
        home=tmp_path,
        app_id=f"mtls-{uuid.uuid4().hex[:8]}",
        partitions=1,
    )


def new_topic(settings: Settings, label: str = "sec") -> str:
    name = f"{label}-{uuid.uuid4().hex[:8]}"
    admin = AdminClient(client_config(kafka_connection(settings)))
    admin.create_topics([NewTopic(name, 1, 1)])[name].result(timeout=DEADLINE_S)
    return name


def produce_one(settings: Settings, topic: str, value: bytes) -> None:
    producer = Producer(producer_config(kafka_connection(settings)))
    producer.produce(topic, value, key=b"k")
    assert producer.flush(DEADLINE_S) == 0


def consume_one(settings: Settings, topic: str) -> bytes | None:
    """The first record's value, read with a confluent-kafka consumer (None: none in time)."""
    consumer = Consumer(client_config(
        kafka_connection(settings),
        **{"group.id": f"g-{uuid.uuid4().hex[:6]}", "auto.offset.reset": "earliest"},
    ))
    consumer.subscribe([topic])
    try:
        deadline = time.monotonic() + DEADLINE_S
        message = None
        while message is None and time.monotonic() < deadline:
            message = consumer.poll(0.5)
        assert message is None or message.error() is None, message.error()
        return None if message is None else message.value()
    finally:
        consumer.close()


async def faust_then_aiokafka(settings: Settings, topic: str) -> bytes | None:
    """faust (the worker's app, built from settings) sends ``from-faust`` through its own
    producer; a plain aiokafka consumer reads it back."""
    worker = build_app(settings)
    producer = worker.app.producer
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"k", b"from-faust", partition=None,
                                     timestamp=None, headers=None)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(topic, **aiokafka_config(
        kafka_connection(settings), group_id=f"a-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
    ))
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), DEADLINE_S)
        value: bytes | None = record.value
        return value
    finally:
        await consumer.stop()
