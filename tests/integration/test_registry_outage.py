"""A schema-registry outage against the real broker and registry: the configuration reader (the
sender's and the webhooks connector's) waits for the registry instead of treating the record as
absent, and reads it once the registry answers again."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from confluent_kafka import Producer

from schemas import wire
from schemas.models import ConfigRecord
from smsflow.config.kafka_io import read_config_records
from tests.integration.conftest import TopicFactory
from tests.integration.test_schema_registry import _free_port
from tests.unit.schemas.test_wire import model_sample


@pytest.fixture
def registry_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    wire.reset_cache()
    yield monkeypatch
    wire.reset_cache()


def test_config_reader_waits_out_an_unreachable_registry(
    kafka_bootstrap: str, schema_registry_url: str, topic_factory: TopicFactory,
    registry_env: pytest.MonkeyPatch,
) -> None:
    topic = topic_factory(partitions=1)
    registry_env.setenv(wire.ENV_URL, schema_registry_url)
    record = model_sample("ConfigRecord")
    assert isinstance(record, ConfigRecord)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    producer.produce(topic, key=b"limits/platform", value=record.to_avro(topic))
    assert producer.flush(30) == 0

    # A reader whose registry is unreachable (nothing listens there; cold schema cache).
    wire.reset_cache()
    registry_env.setenv(wire.ENV_URL, f"http://127.0.0.1:{_free_port()}/apis/ccompat/v7")
    result: list[list[tuple[str, ConfigRecord | None]]] = []
    reader = threading.Thread(
        target=lambda: result.append(read_config_records(kafka_bootstrap, topic)), daemon=True
    )
    reader.start()
    reader.join(3.0)
    assert reader.is_alive() and not result  # waiting, not "record absent"

    registry_env.setenv(wire.ENV_URL, schema_registry_url)  # the registry is back
    wire.reset_cache()  # the environment is read once per process (as after a restart)
    deadline = time.monotonic() + 60
    while reader.is_alive() and time.monotonic() < deadline:
        reader.join(0.5)
    assert result == [[("limits/platform", record)]]
