"""Confluent wire format against a real schema registry (Apicurio Registry's Confluent API).

* ``schema_registry_url`` (session): ``$SMSFLOW_SCHEMA_REGISTRY_URL`` if it names another
  registry (nothing is started); otherwise the local registry of ``<repo>/.smsflow`` on
  127.0.0.1:8081 (``$SMSFLOW_SCHEMA_REGISTRY_PORT``) — reused if it runs (and then left running),
  started if not (and then stopped at session end).

The registry keeps its schemas on disk, so every test uses subjects of its own (a uuid in the
topic name). Confluent's own Python deserializer reading our bytes, straight and through a real
Kafka topic, is the proof that any Confluent reader can decode them without our code.
"""

from __future__ import annotations

import json
import socket
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from schemas import wire
from schemas.codec import DecodeError
from schemas.models import SubmitRequest
from schemas.registry import contracts
from schemas.wire import (
    HEADER_LEN,
    RegistryUnavailableError,
    SchemaRegistryClient,
    WireCodec,
    frame,
    schema_text,
)
from smsflow.devstack.schema_registry import LocalSchemaRegistry
from smsflow.topics import AVRO_TOPICS, ROUTED, THROTTLED
from tests.integration.conftest import local_registry
from tests.unit.schemas.test_wire import (
    MODELS,
    avro_body,
    model_sample,
    newer_schema,
    older_schema,
    sample_record,
)

NAMES = sorted(contracts())


@pytest.fixture
def topic() -> str:
    """A topic name of this test's own: its subject is new in the (persistent) registry."""
    return f"test.wire.{uuid.uuid4().hex[:12]}"


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:  # our loopback registry
        return json.loads(response.read())


def _codec(name: str, url: str) -> WireCodec:
    """A codec with a client of its own: nothing cached, as in another process."""
    return WireCodec(contracts()[name], SchemaRegistryClient(url))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# --------------------------------------------------------------------------------------------
# Round trips and evolution
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_every_contract_registers_encodes_and_decodes(
    schema_registry_url: str, topic: str, name: str
) -> None:
    model = model_sample(name)
    data = _codec(name, schema_registry_url).encode(model.model_dump(mode="python"), topic)
    assert data[:1] == b"\x00"
    schema_id = int.from_bytes(data[1:HEADER_LEN], "big")

    # TopicNameStrategy: the subject <topic>-value now holds exactly our contract, under that id.
    subject = urllib.parse.quote(f"{topic}-value", safe="")
    latest = _get(f"{schema_registry_url}/subjects/{subject}/versions/latest")
    assert latest["id"] == schema_id
    assert json.loads(latest["schema"]) == contracts()[name].schema_json
    assert json.loads(_get(f"{schema_registry_url}/schemas/ids/{schema_id}")["schema"]) == (
        contracts()[name].schema_json
    )

    decoded = _codec(name, schema_registry_url).decode(data)  # resolves the id via the registry
    assert MODELS[name].model_validate(decoded) == model
    # The single-object framing keeps working next to it.
    assert _codec(name, schema_registry_url).decode(model.to_avro()) == decoded


def test_prime_registers_a_subject_per_topic(schema_registry_url: str) -> None:
    prefix = f"test.wire.{uuid.uuid4().hex[:12]}."
    pairs = [(prefix + spec.name, spec.value) for spec in AVRO_TOPICS]
    try:
        ids = wire.prime(pairs, schema_registry_url)
    finally:
        wire.reset_cache()
    assert set(ids) == {f"{topic}-value" for topic, _ in pairs}
    for subject, schema_id in ids.items():  # one by one: a long-lived registry pages /subjects
        quoted = urllib.parse.quote(subject, safe="")
        assert _get(f"{schema_registry_url}/subjects/{quoted}/versions/latest")["id"] == schema_id
    # sms.routed and sms.throttled both carry RoutedMessage: one schema, one id.
    assert ids[f"{prefix}{ROUTED}-value"] == ids[f"{prefix}{THROTTLED}-value"]


def test_same_schema_gets_the_same_id_on_every_topic(schema_registry_url: str) -> None:
    codec = _codec("RouteHealth", schema_registry_url)
    ids = {
        codec.schema_id(f"test.wire.{uuid.uuid4().hex[:12]}") for _ in range(2)
    } | {_codec("RouteHealth", schema_registry_url).schema_id()}
    assert len(ids) == 1


def test_record_from_an_older_registered_version_decodes(
    schema_registry_url: str, topic: str
) -> None:
    contract = contracts()["SubmitRequest"]
    old = older_schema(contract, "client_ref")
    client = SchemaRegistryClient(schema_registry_url)
    old_id = client.register(f"{topic}-value", json.dumps(old))
    old_record = sample_record(old)
    old_data = frame(old_id, avro_body(old, old_record))

    codec = _codec("SubmitRequest", schema_registry_url)
    new_id = codec.schema_id(topic)  # the current version becomes the subject's version 2
    assert new_id != old_id
    versions = _get(f"{schema_registry_url}/subjects/{topic}-value/versions")
    assert versions == [1, 2]

    decoded = _codec("SubmitRequest", schema_registry_url).decode(old_data)
    assert decoded["client_ref"] is None  # absent in the writer: the reader's default
    assert decoded["message_id"] == old_record["message_id"]
    assert SubmitRequest.model_validate(decoded).body == old_record["body"]


def test_record_from_a_newer_registered_version_decodes(
    schema_registry_url: str, topic: str
) -> None:
    new = newer_schema(contracts()["RouteHealth"])
    new_id = SchemaRegistryClient(schema_registry_url).register(f"{topic}-value", json.dumps(new))
    record = {**sample_record(new), "added_later": "from the future"}
    data = frame(new_id, avro_body(new, record))
    decoded = _codec("RouteHealth", schema_registry_url).decode(data)
    assert "added_later" not in decoded
    assert decoded["route_id"] == record["route_id"]


# --------------------------------------------------------------------------------------------
# Failures
# --------------------------------------------------------------------------------------------


def test_unknown_id_is_a_schema_mismatch(schema_registry_url: str) -> None:
    with pytest.raises(DecodeError) as caught:
        _codec("SubmitRequest", schema_registry_url).decode(frame(2**31 - 1, b"\x02"))
    assert caught.value.reason_code == "SCHEMA_MISMATCH"
    assert not isinstance(caught.value, RegistryUnavailableError)


def test_record_of_another_contract_is_a_schema_mismatch(
    schema_registry_url: str, topic: str
) -> None:
    data = _codec("RouteHealth", schema_registry_url).encode(
        model_sample("RouteHealth").model_dump(mode="python"), topic
    )
    with pytest.raises(DecodeError) as caught:
        _codec("SubmitRequest", schema_registry_url).decode(data)
    assert caught.value.reason_code == "SCHEMA_MISMATCH"


def test_wrong_api_path_is_unavailable_not_a_mismatch(schema_registry_url: str) -> None:
    """A misconfigured URL (the registry answers 404 for the path) must not dead-letter."""
    parsed = urllib.parse.urlsplit(schema_registry_url)
    wrong = f"{parsed.scheme}://{parsed.netloc}/no/such/api"
    with pytest.raises(RegistryUnavailableError):
        _codec("SubmitRequest", wrong).decode(frame(1, b"\x02"))


def test_registry_down_is_registry_unavailable() -> None:
    down = f"http://127.0.0.1:{_free_port()}/apis/ccompat/v7"
    with pytest.raises(RegistryUnavailableError) as caught:
        _codec("SubmitRequest", down).decode(frame(1, b"\x02"))
    assert caught.value.reason_code == "REGISTRY_UNAVAILABLE"
    assert not isinstance(caught.value, DecodeError)
    with pytest.raises(RegistryUnavailableError) as on_encode:
        _codec("SubmitRequest", down).encode(model_sample("SubmitRequest").model_dump(), "t")
    assert on_encode.value.reason_code == "REGISTRY_UNAVAILABLE"


@pytest.mark.slow
def test_registry_restart_keeps_ids_and_a_stopped_registry_is_unavailable(
    tmp_path: Path, schema_registry_url: str
) -> None:
    """A second, private registry: stopped, it is unavailable (known ids still decode from the
    cache); restarted, its file storage still maps the old id to the same schema."""
    registry = LocalSchemaRegistry(tmp_path / "home", _free_port())
    registry.exit_with_starter = True  # a killed test run must not leave it behind
    url = registry.start()
    try:
        codec = _codec("SubmitRequest", url)
        model = model_sample("SubmitRequest")
        data = codec.encode(model.model_dump(mode="python"), "sms.submitted")
        assert registry.is_running()
        registry.stop()
        assert registry.pid() is None and not registry.is_running()

        assert MODELS["SubmitRequest"].model_validate(codec.decode(data)) == model  # cached id
        with pytest.raises(RegistryUnavailableError):
            _codec("SubmitRequest", url).decode(data)  # a cold cache needs the registry

        assert registry.start() == url
        after_restart = _codec("SubmitRequest", url).decode(data)
        assert MODELS["SubmitRequest"].model_validate(after_restart) == model
    finally:
        registry.stop()
    assert not registry.stop()  # idempotent


def test_local_registry_status(schema_registry_url: str) -> None:
    registry = local_registry()
    if not registry.is_this(schema_registry_url):
        pytest.skip("an external registry is configured")
    assert registry.pid() is not None and registry.is_running()
    assert registry.url == schema_registry_url
    again = local_registry()
    assert again.start() == schema_registry_url and not again.launched  # adopted, not relaunched


# --------------------------------------------------------------------------------------------
# Any Confluent reader: confluent-kafka-python's own serdes
# --------------------------------------------------------------------------------------------


def _confluent() -> Any:
    serdes = pytest.importorskip(
        "confluent_kafka.schema_registry.avro",
        reason="needs confluent-kafka[schemaregistry] (authlib, httpx2, cachetools)",
    )
    return serdes


@pytest.mark.parametrize("name", NAMES)
def test_confluent_deserializer_reads_our_records(
    schema_registry_url: str, topic: str, name: str
) -> None:
    serdes = _confluent()
    from confluent_kafka.schema_registry import SchemaRegistryClient as ConfluentClient
    from confluent_kafka.serialization import MessageField, SerializationContext

    model = model_sample(name)
    data = _codec(name, schema_registry_url).encode(model.model_dump(mode="python"), topic)
    with ConfluentClient({"url": schema_registry_url}) as client:  # closes its HTTP session
        deserializer = serdes.AvroDeserializer(client)
        decoded = deserializer(data, SerializationContext(topic, MessageField.VALUE))
    assert MODELS[name].model_validate(decoded) == model


def test_confluent_serializer_records_decode_with_our_codec(
    schema_registry_url: str, topic: str
) -> None:
    serdes = _confluent()
    from confluent_kafka.schema_registry import SchemaRegistryClient as ConfluentClient
    from confluent_kafka.serialization import MessageField, SerializationContext

    model = model_sample("DeliveryReport")
    with ConfluentClient({"url": schema_registry_url}) as client:  # closes its HTTP session
        serializer = serdes.AvroSerializer(
            client, schema_text(contracts()["DeliveryReport"]),
            conf={"auto.register.schemas": True},
        )
        context = SerializationContext(topic, MessageField.VALUE)
        data = serializer(model.model_dump(mode="python"), context)
    assert data[:1] == b"\x00"
    assert MODELS["DeliveryReport"].model_validate(
        _codec("DeliveryReport", schema_registry_url).decode(data)
    ) == model


@pytest.mark.slow
def test_confluent_consumer_reads_our_records_from_kafka(
    schema_registry_url: str, kafka_bootstrap: str, topic_factory: Any
) -> None:
    serdes = _confluent()
    from confluent_kafka import DeserializingConsumer, Producer
    from confluent_kafka.schema_registry import SchemaRegistryClient as ConfluentClient

    topic = topic_factory()
    codec = _codec("SubmitRequest", schema_registry_url)
    sample = SubmitRequest.model_validate(model_sample("SubmitRequest").model_dump())
    sent = [sample.model_copy(update={"message_id": f"m-{i}"}) for i in range(5)]
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for model in sent:
        value = codec.encode(model.model_dump(), topic)
        producer.produce(topic, key=model.tenant_id.encode(), value=value)
    assert producer.flush(30) == 0

    client = ConfluentClient({"url": schema_registry_url})
    consumer = DeserializingConsumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": f"wire-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "value.deserializer": serdes.AvroDeserializer(client),
        }
    )
    received: list[Any] = []
    try:
        consumer.subscribe([topic])
        for _ in range(60):
            message = consumer.poll(1.0)
            if message is None:
                continue
            received.append(MODELS["SubmitRequest"].model_validate(message.value()))
            if len(received) == len(sent):
                break
    finally:
        consumer.close()
        client.close()  # its HTTP session
    assert received == sent
