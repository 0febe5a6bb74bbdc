"""The sender answers an SMSC's deliver_sm only once Kafka has what it produced (no broker:
the producer is a fake whose delivery reports the test fires)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError

from connectors.sender.service import SenderService
from connectors.smpp.models import InboundDeliver
from smsflow.config.models import Inbound
from smsflow.config.store import load_yaml
from smsflow.domain.smpp_status import ESME_ROK, ESME_RX_T_APPN
from smsflow.settings import Settings
from tests.paths import PLATFORM_CONFIG

BIND = "smsc-uk#0"
RECEIPT = (b"id:0000002587 sub:001 dlvrd:001 submit date:2401151230 done date:240115123145 "
           b"stat:DELIVRD err:000 text:Hello")


class FakeProducer:
    def __init__(self) -> None:
        self.produced: list[tuple[str, Callable[[KafkaError | None, Any], None] | None]] = []

    def produce(self, topic: str, **kwargs: Any) -> None:
        self.produced.append((topic, kwargs.get("on_delivery")))

    def report(self, index: int, error: KafkaError | None = None) -> None:
        on_delivery = self.produced[index][1]
        assert on_delivery is not None
        on_delivery(error, None)


@pytest.fixture
def service(tmp_path: Path) -> tuple[SenderService, FakeProducer]:
    settings = Settings(kafka_bootstrap="127.0.0.1:1", topic_prefix="unit.", home=tmp_path)
    config = load_yaml(PLATFORM_CONFIG)
    # acme-bank owns the short code 60001; nobody owns "SMSFLOW".
    tenants = tuple(t.model_copy(update={"inbound": Inbound(numbers=("60001",))})
                    if t.id == "acme-bank" else t for t in config.tenants)
    service = SenderService(settings, config.model_copy(update={"tenants": tenants}),
                            group_id="unit")
    producer = FakeProducer()
    service._producer = producer  # type: ignore[assignment]
    return service, producer


def _deliver(esm_class: int, text: bytes, destination: str = "SMSFLOW") -> InboundDeliver:
    return InboundDeliver(bind_name=BIND, source_addr="447700900123",
                          destination_addr=destination, esm_class=esm_class, short_message=text,
                          tlvs={})


class Acks:
    def __init__(self) -> None:
        self.statuses: list[int] = []

    def __call__(self, status: int) -> bool:
        self.statuses.append(status)
        return True


@pytest.mark.parametrize("error", [None, KafkaError(KafkaError._MSG_TIMED_OUT)])
def test_receipt_acknowledged_only_from_its_delivery_report(
    service: tuple[SenderService, FakeProducer], error: KafkaError | None
) -> None:
    sender, producer = service
    ack = Acks()
    sender.deliveries.on_deliver(_deliver(0x04, RECEIPT), ack)
    assert [topic for topic, _ in producer.produced] == ["unit.sms.dlr.raw"]
    assert ack.statuses == []  # handed to the producer, not stored yet: not answered
    producer.report(0, error)
    assert ack.statuses == [ESME_ROK if error is None else ESME_RX_T_APPN]


def test_unparseable_receipt_acknowledged_after_its_rejection_is_stored(
    service: tuple[SenderService, FakeProducer],
) -> None:
    sender, producer = service
    ack = Acks()
    sender.deliveries.on_deliver(_deliver(0x04, b"not a receipt"), ack)
    assert [topic for topic, _ in producer.produced] == ["unit.sms.rejected"]
    assert ack.statuses == []
    producer.report(0)
    assert ack.statuses == [ESME_ROK]


@pytest.mark.parametrize("error", [None, KafkaError(KafkaError._MSG_TIMED_OUT)])
@pytest.mark.parametrize(("destination", "topic"), [
    ("60001", "unit.sms.inbound"),
    ("SMSFLOW", "unit.sms.rejected"),  # no tenant's number: dead-lettered, MO_UNKNOWN_DESTINATION
])
def test_mobile_originated_message_acknowledged_only_once_stored(
    service: tuple[SenderService, FakeProducer], error: KafkaError | None, destination: str,
    topic: str,
) -> None:
    sender, producer = service
    ack = Acks()
    sender.deliveries.on_deliver(_deliver(0x00, b"hello", destination), ack)
    assert [topic for topic, _ in producer.produced] == [topic]
    assert ack.statuses == []  # not stored yet: the SMSC waits
    producer.report(0, error)
    assert ack.statuses == [ESME_ROK if error is None else ESME_RX_T_APPN]
