"""The walking skeleton end to end on the real broker, with the real SMSC simulator.

One stack (simulator, faust worker, SMPP sender as separate processes) serves the module, on
topics and an app id of its own, so nothing here sees another test's traffic.
"""

from __future__ import annotations

import csv
import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka import Producer

from connectors.producer import new_request
from pipeline.agents.opt_out import TABLE as OPT_OUT_TABLE
from schemas.codec import codec
from schemas.models import (
    DeliveryReport,
    InboundKeyword,
    InboundMessage,
    Rejection,
    SubmitStatus,
)
from smsflow.cli.dlr import COLUMNS, export, read_reports
from smsflow.devstack.flowrun import make_traffic, run_flow, warm_up
from smsflow.devstack.harness import (
    isolated_settings,
    prepared_stack,
    read_all,
    read_outcomes,
    read_records,
)
from smsflow.devstack.stack import LocalStack
from smsflow.kafka_clients import producer_config
from smsflow.settings import Settings
from smsflow.topics import DLR, INBOUND, REJECTED, topic_name
from tests.integration.waiting import flow_drained
from tests.integration.windows import wait_for_windows
from tests.paths import PLATFORM_CONFIG, SIM_CONFIG

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def flow_settings(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return isolated_settings(kafka_bootstrap, tmp_path_factory.mktemp("stack"), "e2e")


@pytest.fixture(scope="module")
def running_stack(flow_settings: Settings) -> Iterator[LocalStack]:
    with prepared_stack(
        flow_settings, platform_config=PLATFORM_CONFIG, sim_config=SIM_CONFIG
    ) as stack:
        warm_up(flow_settings, timeout_s=120)
        yield stack
        stack.check_alive()


def test_2000_messages_each_sent_once_and_reported_once(
    flow_settings: Settings, running_stack: LocalStack
) -> None:
    requests = make_traffic(2000, seed=2000)
    result = run_flow(flow_settings, requests, timeout_s=240)
    running_stack.check_alive()

    assert result.lost == 0, f"no terminal state for {result.missing[:5]}"
    assert result.duplicates == 0
    # Every stage has committed all its input: a duplicate submit or report would be on its
    # topic now, so the counts below are final (not "final unless a duplicate comes later").
    flow_drained(flow_settings)
    ids = {r.message_id for r in requests}

    sent = read_outcomes(flow_settings)
    sent_parts = Counter((s.message_id, s.part_index) for s in sent if s.message_id in ids)
    assert {message_id for message_id, _ in sent_parts} == ids
    assert max(sent_parts.values()) == 1, "a part was submitted twice"
    part_counts = {s.message_id: s.part_count for s in sent if s.message_id in ids}
    assert sum(part_counts.values()) == len(sent_parts), "a part has no submit outcome"
    assert all(s.outcome is SubmitStatus.ACCEPTED for s in sent if s.message_id in ids)
    assert max(part_counts.values()) > 1, "traffic should include multi-part messages"

    reports = [DeliveryReport.from_avro(v) for v in read_all(flow_settings, DLR)]
    per_message = Counter(r.message_id for r in reports if r.message_id in ids)
    assert set(per_message) == ids
    assert set(per_message.values()) == {1}
    statuses = Counter(r.status.value for r in reports if r.message_id in ids)
    # The simulator delivers ~95-98 % and fails the rest with receipts; both must show up.
    assert statuses["DELIVERED"] > 1800
    assert statuses["UNDELIVERABLE"] + statuses["REJECTED"] + statuses["EXPIRED"] > 0
    for report in reports:
        if report.message_id in ids:
            assert len(report.smsc_message_ids) == report.parts
            assert report.submitted_at <= report.sent_at


def test_bad_records_are_rejected_with_a_reason_and_good_ones_flow(
    flow_settings: Settings, running_stack: LocalStack
) -> None:
    garbage = b"\x00\xffnot avro at all"
    wrong_schema = codec("Rejection").encode({
        "reason_code": "X", "reason": "a Rejection is not a SubmitRequest", "stage": "test",
        "source_topic": "t", "source_partition": 0, "source_offset": 0,
        "rejected_at": make_traffic(1)[0].submitted_at,
    })
    good = make_traffic(50, seed=50)
    # A quarantined tenant's records are held, not rejected: test_api_end_to_end's quarantine
    # test follows them to their release.
    refused = [
        new_request("acme-bank", "not-a-number", "bad destination"),
        new_request("acme-bank", "+33612345678", "no operator configured for France"),
        new_request("nobody", "+447700900123", "unknown tenant"),
    ]
    result = run_flow(
        flow_settings, [*good, *refused], timeout_s=120, extra_raw=[garbage, wrong_schema]
    )
    assert result.lost == 0
    assert result.statuses.total() == len(good)
    assert result.rejection_codes == Counter({
        "INVALID_NUMBER": 1, "UNKNOWN_OPERATOR": 1, "UNKNOWN_TENANT": 1,
    })

    rejections = [Rejection.from_avro(v) for v in read_all(flow_settings, REJECTED)]
    by_original = {r.original: r for r in rejections if r.message_id is None}
    assert by_original[garbage].reason_code == "UNDECODABLE"
    assert by_original[garbage].stage == "router"
    assert by_original[wrong_schema].reason_code == "SCHEMA_MISMATCH"
    assert by_original[wrong_schema].source_topic == topic_name(flow_settings, "sms.submitted")


def test_dlr_export_writes_every_report_as_csv_and_parquet(
    flow_settings: Settings, running_stack: LocalStack, tmp_path: Path
) -> None:
    run_flow(flow_settings, make_traffic(30, seed=30), timeout_s=120)
    on_topic = [DeliveryReport.from_avro(v) for v in read_all(flow_settings, DLR)]
    topic = topic_name(flow_settings, DLR)

    csv_path = tmp_path / "dlr.csv"
    reports = read_reports(flow_settings.kafka_bootstrap, topic, follow=False,
                           from_beginning=True)
    assert export(reports, csv_path, "csv") == len(on_topic)
    with csv_path.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == COLUMNS
    assert {r["message_id"] for r in rows} == {r.message_id for r in on_topic}

    parquet = pytest.importorskip("pyarrow.parquet")
    parquet_path = tmp_path / "dlr.parquet"
    reports = read_reports(flow_settings.kafka_bootstrap, topic, follow=False,
                           from_beginning=True, tenant="acme-bank")
    written = export(reports, parquet_path, "parquet")
    table = parquet.read_table(parquet_path)
    assert table.num_rows == written == sum(r.tenant_id == "acme-bank" for r in on_topic)
    assert set(table.column("tenant_id").to_pylist()) == {"acme-bank"}


def test_rolling_windows_match_the_raw_events(
    flow_settings: Settings, running_stack: LocalStack
) -> None:
    """Every submit outcome and report so far, counted per route, operator and tenant by the
    worker's windows, equals the count computed from sms.sent and sms.dlr themselves."""
    reference, windows = wait_for_windows(flow_settings)
    assert any(key.startswith("route:") for key in reference)
    assert windows == reference


def _mo_keyword(settings: Settings, keyword: InboundKeyword, subscriber: str) -> None:
    """What the sender stores for a subscriber's STOP/START to acme-bank's short code
    (tests/integration/test_inbound_ack.py covers that part from the SMSC on)."""
    topic = topic_name(settings, INBOUND)
    mo = InboundMessage(
        inbound_id=str(uuid.uuid4()), tenant_id="acme-bank", source=subscriber,
        destination="60001", text=keyword.name, data_coding=0, keyword=keyword,
        smsc_id="smsc-uk", bind="smsc-uk#0", received_at=datetime.now(UTC),
    )
    producer = Producer(producer_config(settings.kafka_bootstrap))
    producer.produce(topic, key=b"acme-bank", value=mo.to_avro(topic))
    assert producer.flush(30) == 0


def _opt_out_changed(settings: Settings, key: str, *, opted_out: bool) -> None:
    """Wait until the worker's opt-out table (its changelog) shows ``key`` in that state."""
    changelog = f"{settings.app_id}-{OPT_OUT_TABLE}-changelog"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        latest = dict(read_records(settings, changelog, topic_prefix=False))  # last per key
        stored = json.dumps(key).encode()  # faust's table keys are JSON
        if stored in latest and (latest[stored] is not None) == opted_out:
            return  # STOP: a value; START: a tombstone
        time.sleep(0.5)
    raise AssertionError(f"the opt-out table never showed {key} opted_out={opted_out}")


def test_stop_refuses_the_tenant_s_next_message_and_start_allows_it_again(
    flow_settings: Settings, running_stack: LocalStack
) -> None:
    subscriber = "+447700900555"
    _mo_keyword(flow_settings, InboundKeyword.OPT_OUT, subscriber)
    _opt_out_changed(flow_settings, f"acme-bank|{subscriber}", opted_out=True)

    to_subscriber = new_request("acme-bank", subscriber, "offer after STOP")
    other_tenant = new_request("shopfast", subscriber, "another tenant's message")
    result = run_flow(flow_settings, [to_subscriber, other_tenant], timeout_s=120)
    assert result.lost == 0
    assert result.rejection_codes == Counter({"OPTED_OUT": 1})
    assert result.statuses.total() == 1, "STOP to acme-bank does not stop shopfast"
    rejection = next(r for r in map(Rejection.from_avro, read_all(flow_settings, REJECTED))
                     if r.message_id == to_subscriber.message_id)
    assert rejection.reason_code == "OPTED_OUT" and rejection.stage == "router"

    _mo_keyword(flow_settings, InboundKeyword.OPT_IN, subscriber)
    _opt_out_changed(flow_settings, f"acme-bank|{subscriber}", opted_out=False)
    again = run_flow(flow_settings, [new_request("acme-bank", subscriber, "after START")],
                     timeout_s=120)
    assert again.lost == 0 and not again.rejection_codes
    assert again.statuses.total() == 1
