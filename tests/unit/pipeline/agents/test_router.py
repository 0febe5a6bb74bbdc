"""The router agent's pure adapters: refusal reasons, the decision and the routed record."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pipeline.agents.router import UNKNOWN_OPERATOR_ID, refusal, routed_fields
from pipeline.app import Worker
from schemas.models import RoutedMessage, SubmitRequest, TextEncoding
from smsflow.config.store import load_yaml
from smsflow.domain import route_engine
from smsflow.domain.inbound import opt_out_key
from smsflow.domain.route_engine import RouteRejection
from smsflow.domain.validation import MAX_PARTS
from tests.paths import PLATFORM_CONFIG

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
CONFIG = PLATFORM_CONFIG


@pytest.fixture(scope="module")
def engine() -> route_engine.Snapshot:
    config = load_yaml(CONFIG)
    return route_engine.build_snapshot(route_engine.build_catalogue(config), {},
                                       NOW.timestamp())


def _request(tenant: str = "acme-bank", destination: str = "+447700900123",
             body: str = "your code is 1234", source: str = "ACME") -> SubmitRequest:
    return SubmitRequest(message_id="m-1", tenant_id=tenant, source=source,
                         destination=destination, body=body, submitted_at=NOW)


def _refused(request: SubmitRequest, engine: route_engine.Snapshot) -> str:
    decided = refusal(request, engine, NOW.timestamp())
    assert isinstance(decided, RouteRejection), decided
    return decided.reason_code


@pytest.mark.parametrize(("request_", "reason_code"), [
    (_request(body=""), "EMPTY_BODY"),
    (_request(source=""), "INVALID_SOURCE"),
    (_request(body="x" * (153 * MAX_PARTS + 1)), "MESSAGE_TOO_LONG"),
    (_request(tenant="nobody"), "UNKNOWN_TENANT"),
    (_request(tenant="suspended-co"), "TENANT_QUARANTINED"),
    (_request(destination="not-a-number"), "INVALID_NUMBER"),
])
def test_a_refused_request_gets_its_reason_code(
    request_: SubmitRequest, reason_code: str, engine: route_engine.Snapshot
) -> None:
    assert _refused(request_, engine) == reason_code


def test_a_routable_request_becomes_a_routed_record_sized_in_parts(
    engine: route_engine.Snapshot,
) -> None:
    request = _request(body="ж" * 71)  # UCS-2: 70 characters a part alone, 67 when split
    decided = refusal(request, engine, NOW.timestamp())
    assert not isinstance(decided, RouteRejection), decided
    decision, plan = decided
    fields = routed_fields(request, decision, plan, NOW)
    routed = RoutedMessage.model_validate(fields)  # what the fields say, validated
    assert RoutedMessage.encode_fields(fields) == routed.to_avro()
    assert routed.request == request
    assert (routed.route_id, routed.smsc_id) == (decision.route_id, decision.smsc_id)
    assert routed.destination == "+447700900123"
    assert routed.encoding is TextEncoding.UCS2 and routed.parts == 2
    assert routed.operator_id == (decision.operator_id or UNKNOWN_OPERATOR_ID)
    assert routed.routed_at == NOW
    assert routed.from_avro(routed.to_avro("unit.sms.routed")) == routed


def test_the_factory_gives_the_router_its_tenant_lanes_on_sms_submitted(worker: Worker) -> None:
    router = next(stage for stage in worker.stages if stage.name == "router")
    assert router.source_topic == "unit.sms.submitted"
    assert any(name.endswith(".route") for name in worker.app.agents)


def test_an_opted_out_subscriber_is_refused_for_that_tenant_only(
    engine: route_engine.Snapshot,
) -> None:
    opted_out = {opt_out_key("acme-bank", "447700900123")}  # stored without the +: normalized
    decided = refusal(_request(), engine, NOW.timestamp(), opted_out)
    assert isinstance(decided, RouteRejection) and decided.reason_code == "OPTED_OUT"
    assert "+447700900123" in decided.detail
    other_number = refusal(_request(destination="+447700900124"), engine, NOW.timestamp(),
                           opted_out)
    other_tenant = refusal(_request(tenant="shopfast"), engine, NOW.timestamp(), opted_out)
    assert not isinstance(other_number, RouteRejection), other_number
    assert not isinstance(other_tenant, RouteRejection), other_tenant


def test_an_unroutable_message_keeps_its_own_reason_even_if_opted_out(
    engine: route_engine.Snapshot,
) -> None:
    opted_out = {opt_out_key("acme-bank", "+447700900123")}
    assert refusal(_request(body=""), engine, NOW.timestamp(), opted_out) == refusal(
        _request(body=""), engine, NOW.timestamp())
