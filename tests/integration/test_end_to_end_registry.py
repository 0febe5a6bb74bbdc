"""The whole flow with a schema registry configured: every stage writes the Confluent wire
format, every stage reads it, and Confluent's own deserializer reads what analysts consume."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer

from schemas import wire
from schemas.models import DeliveryReport
from smsflow.devstack.flowrun import make_traffic, run_flow, warm_up
from smsflow.devstack.harness import isolated_settings, prepared_stack
from smsflow.devstack.stack import LocalStack
from smsflow.settings import Settings
from smsflow.topics import DLR, topic_name
from tests.paths import PLATFORM_CONFIG, SIM_CONFIG

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def registry_flow(
    kafka_bootstrap: str, schema_registry_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, LocalStack]]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(wire.ENV_URL, schema_registry_url)  # this process and the stack's children
        wire.reset_cache()
        settings = isolated_settings(kafka_bootstrap, tmp_path_factory.mktemp("sr"), "sr")
        with prepared_stack(
            settings, platform_config=PLATFORM_CONFIG, sim_config=SIM_CONFIG
        ) as stack:
            warm_up(settings, timeout_s=120)
            yield settings, stack
    wire.reset_cache()


def test_flow_runs_on_confluent_wire_format(
    registry_flow: tuple[Settings, LocalStack], schema_registry_url: str
) -> None:
    settings, stack = registry_flow
    result = run_flow(settings, make_traffic(200, seed=77), timeout_s=120)
    stack.check_alive()
    assert result.lost == 0
    assert result.statuses.total() == 200

    avro = pytest.importorskip("confluent_kafka.schema_registry.avro")
    registry = pytest.importorskip("confluent_kafka.schema_registry")
    client = registry.SchemaRegistryClient({"url": schema_registry_url})
    deserializer = avro.AvroDeserializer(client)
    consumer = Consumer({
        "bootstrap.servers": settings.kafka_bootstrap, "group.id": "sr-check",
        "auto.offset.reset": "earliest",
    })
    consumer.subscribe([topic_name(settings, DLR)])
    message = None
    while message is None or message.error() is not None:
        message = consumer.poll(10)
        assert message is not None, "no delivery report to check"
    consumer.close()
    value = message.value() or b""
    assert value[:1] == b"\x00", "sms.dlr records must be in Confluent wire format"
    serialization = pytest.importorskip("confluent_kafka.serialization")
    try:
        record = deserializer(value, serialization.SerializationContext(
            message.topic(), serialization.MessageField.VALUE))
    finally:
        client.close()  # its HTTP session
    assert record["message_id"] == DeliveryReport.from_avro(value).message_id
