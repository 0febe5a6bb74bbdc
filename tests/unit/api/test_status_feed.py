"""The status feed's dict decoders give the events the contracts' models would give, and a
``sms.sent`` batch is folded outcome by outcome."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from api.status import Event, Stage
from api.status_feed import StatusStore, _rejected, _reported, _routed, _sent, _submitted
from connectors.producer import new_request
from schemas.batches import pack_sent
from schemas.models import (
    DeliveryReport,
    DeliveryStatus,
    Rejection,
    RoutedMessage,
    SubmitOutcome,
    SubmitStatus,
    TextEncoding,
)
from smsflow.settings import Settings
from smsflow.topics import SENT, topic_name

T0 = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
REQUEST = new_request("acme-bank", "+447700900123", "hi", client_ref="order-1", now=T0)
PLACE: dict[str, Any] = {"route_id": "uk-direct", "smsc_id": "smsc-uk", "operator_id": "gb-ee",
         "country": "GB", "destination": REQUEST.destination}


def test_submitted_and_routed() -> None:
    assert _submitted(REQUEST.to_avro()) == Event(
        REQUEST.message_id, "acme-bank", Stage.SUBMITTED, destination="+447700900123",
        client_ref="order-1", at=T0.timestamp(),
    )
    routed = RoutedMessage(request=REQUEST, encoding=TextEncoding.GSM7, parts=2,
                           routed_at=T0, **PLACE)
    assert _routed(routed.to_avro()) == Event(
        REQUEST.message_id, "acme-bank", Stage.ROUTED, destination="+447700900123",
        client_ref="order-1", route_id="uk-direct", parts=2,
    )


def test_sent_and_reported() -> None:
    outcome = SubmitOutcome(
        message_id=REQUEST.message_id, tenant_id="acme-bank", part_index=1, part_count=2,
        outcome=SubmitStatus.ACCEPTED, command_status=0, status_name="ESME_ROK", attempts=1,
        latency_ms=3.0, submitted_at=T0, sent_at=T0, expires_at=T0 + timedelta(days=1),
        **PLACE,
    )
    assert _sent(outcome.to_avro()) == Event(
        REQUEST.message_id, "acme-bank", Stage.SENT, route_id="uk-direct", parts=2,
        part_index=1, part_accepted=True,
    )
    done = T0 + timedelta(seconds=2)
    report = DeliveryReport(
        message_id=REQUEST.message_id, tenant_id="acme-bank", parts=2,
        status=DeliveryStatus.UNDELIVERABLE, error_code=1, reason="absent subscriber",
        smsc_message_ids=["a", "b"], submitted_at=T0, sent_at=T0, done_at=done, **PLACE,
    )
    assert _reported(report.to_avro()) == Event(
        REQUEST.message_id, "acme-bank", Stage.DONE, route_id="uk-direct", parts=2,
        status="UNDELIVERABLE", reason="absent subscriber", error_code=1, at=done.timestamp(),
    )


def test_rejected_with_and_without_a_message() -> None:
    rejection = Rejection(
        reason_code="UNKNOWN_OPERATOR", reason="no operator", stage="router",
        message_id=REQUEST.message_id, tenant_id="acme-bank", source_topic="sms.submitted",
        source_partition=0, source_offset=7, rejected_at=T0,
    )
    assert _rejected(rejection.to_avro()) == Event(
        REQUEST.message_id, "acme-bank", Stage.REJECTED, status="REJECTED",
        reason_code="UNKNOWN_OPERATOR", reason="no operator", at=T0.timestamp(),
    )
    anonymous = rejection.model_copy(update={"message_id": None, "tenant_id": None})
    assert _rejected(anonymous.to_avro()) is None


class _Message:
    """A consumed record, as the status feed's follower hands it over."""

    def __init__(self, topic: str, value: bytes) -> None:
        self._topic, self._value = topic, value

    def topic(self) -> str:
        return self._topic

    def value(self) -> bytes:
        return self._value

    def timestamp(self) -> tuple[int, int]:
        return 1, int(T0.timestamp() * 1000)


def test_a_sent_batch_gives_every_part_its_state(tmp_path: Path) -> None:
    """``sms.sent`` batches (schemas/batches.py): each outcome is folded as a record would be."""
    settings = Settings(kafka_bootstrap="127.0.0.1:1", topic_prefix="unit.", home=tmp_path)
    store = StatusStore(settings, window_s=86_400, clock=lambda: T0.timestamp())
    sent_topic = topic_name(settings, SENT)
    outcomes = [SubmitOutcome(
        message_id=REQUEST.message_id, tenant_id="acme-bank", part_index=index, part_count=2,
        outcome=SubmitStatus.ACCEPTED, command_status=0, status_name="ESME_ROK", attempts=1,
        latency_ms=3.0, submitted_at=T0, sent_at=T0, expires_at=T0 + timedelta(days=1),
        **PLACE,
    ) for index in range(2)]
    store._apply(_Message(sent_topic, pack_sent(o.to_avro(sent_topic) for o in outcomes)))  # type: ignore[arg-type]
    state = store.state("acme-bank", REQUEST.message_id)
    assert state is not None and state.stage is Stage.SENT
    assert state.parts_accepted == frozenset({0, 1}) and store.undecodable == 0
    store._apply(_Message(sent_topic, pack_sent([outcomes[0].to_avro(sent_topic)])[:-2]))  # type: ignore[arg-type]
    assert store.undecodable == 1
