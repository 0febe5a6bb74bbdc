"""Correlation on a real broker with a real worker: records are written to ``sms.sent`` and
``sms.dlr.raw`` exactly as the sender writes them (same keys, same partitioner), in the awkward
orders real SMSCs produce, and the test reads what the worker reports on ``sms.dlr`` and
dead-letters on ``sms.rejected``."""

from __future__ import annotations

import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from confluent_kafka import Producer

from schemas.batches import pack_receipts, pack_sent, sent_key
from schemas.models import (
    DeliveryReport,
    DeliveryStatus,
    ReceiptEvent,
    ReceiptState,
    Rejection,
    SubmitOutcome,
    SubmitStatus,
)
from schemas.summaries import sent_summary_header
from schemas.wire import UNDECODABLE
from smsflow.devstack.harness import isolated_settings, read_all
from smsflow.devstack.stack import ManagedProcess, stack_env
from smsflow.domain.tracking import REASON_RECEIPT_UNMATCHED, SELF_EXPIRED_REASON
from smsflow.kafka_clients import producer_config
from smsflow.murmur2 import partition_of
from smsflow.settings import Settings
from smsflow.topics import (
    DLR,
    DLR_PARTS,
    DLR_PARTS_TIMERS,
    DLR_RAW,
    DLR_TIMERS,
    REJECTED,
    SENT,
    apply_topics,
    topic_name,
)
from tests.integration.waiting import worker_consumed
from tests.integration.windows import wait_for_windows

pytestmark = pytest.mark.slow

SMSC = "smsc-uk"
#: Short clocks so expiry and dead-lettering happen within the test. The receipt TTL must
#: outlast the early-receipt test's wait for the worker's commit (over 4 s once on a loaded CI
#: machine, which dead-lettered the receipt before its submit outcome came).
RECEIPT_TTL_S = 12
TRACKING_ENV = {
    "SMSFLOW_DLR_EXPIRY_GRACE_S": "1",
    "SMSFLOW_DLR_RECEIPT_TTL_S": str(RECEIPT_TTL_S),
    "SMSFLOW_DLR_DONE_TTL_S": "600",
}


@pytest.fixture(scope="module")
def tracking_settings(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = isolated_settings(kafka_bootstrap, tmp_path_factory.mktemp("dlr"), "dlr")
    apply_topics(settings)
    return settings


@pytest.fixture(scope="module")
def worker(tracking_settings: Settings) -> Iterator[ManagedProcess]:
    env = {**stack_env(tracking_settings), **TRACKING_ENV}
    process = ManagedProcess(
        "worker-0", [sys.executable, "-m", "smsflow.cli", "worker", "--loglevel", "info"],
        tracking_settings.home / "logs" / "worker-0.log",
    )
    process.start(env)
    try:
        # Warm-up: one complete pair must come out as a report (the worker has joined).
        producer = _producer(tracking_settings)
        probe = _sent("probe")
        _send(producer, tracking_settings, probe)
        _send(producer, tracking_settings, _receipt(probe))
        _wait_reports(tracking_settings, {"probe"}, timeout_s=120, process=process)
        yield process
    finally:
        process.stop()


def _producer(settings: Settings) -> Producer:
    return Producer(producer_config(settings.kafka_bootstrap, **{"linger.ms": 0}))


def _now() -> datetime:
    return datetime.now(UTC)


def _sent(
    message_id: str, *, part: int = 0, parts: int = 1, smsc_id: str | None = None,
    validity_s: float = 3_600, outcome: SubmitStatus = SubmitStatus.ACCEPTED,
) -> SubmitOutcome:
    now = _now()
    accepted = outcome is SubmitStatus.ACCEPTED
    return SubmitOutcome(
        message_id=message_id, tenant_id="acme", client_ref=None, route_id="uk-direct",
        smsc_id=SMSC, operator_id="gb-ee", country="GB", destination="+447700900123",
        part_index=part, part_count=parts, outcome=outcome,
        smsc_message_id=(smsc_id or f"{uuid.uuid4().int % 10**12:x}") if accepted else None,
        command_status=0 if accepted else 0x45, status_name="ESME_ROK" if accepted else
        "ESME_RSUBMITFAIL", attempts=1, latency_ms=3.0, reason=None if accepted else "refused",
        submitted_at=now, sent_at=now, expires_at=now + timedelta(seconds=validity_s),
    )


def _receipt(sent: SubmitOutcome, state: ReceiptState = ReceiptState.DELIVERED,
             bind: str = "rx-0") -> ReceiptEvent:
    assert sent.smsc_message_id is not None
    now = _now()
    return ReceiptEvent(
        smsc_id=sent.smsc_id, smsc_message_id=sent.smsc_message_id,
        raw_message_id=sent.smsc_message_id, state=state,
        error_code=None if state is ReceiptState.DELIVERED else 1, done_at=now,
        received_at=now, bind=bind,
    )


def _send(producer: Producer, settings: Settings, record: SubmitOutcome | ReceiptEvent) -> None:
    """As the sender writes them: key ``<smsc>:<smsc message id>`` (failed parts: by part)."""
    if isinstance(record, SubmitOutcome):
        topic = topic_name(settings, SENT)
        key = (f"{record.smsc_id}:{record.smsc_message_id}" if record.smsc_message_id
               else f"{record.message_id}:{record.part_index}")
    else:
        topic = topic_name(settings, DLR_RAW)
        key = f"{record.smsc_id}:{record.smsc_message_id}"
    producer.produce(topic, key=key.encode(), value=record.to_avro(topic))
    producer.flush(10)


def _reports(settings: Settings) -> list[DeliveryReport]:
    return [DeliveryReport.from_avro(v) for v in read_all(settings, DLR)]


def _wait_reports(settings: Settings, ids: set[str], *, timeout_s: float = 60,
                  process: ManagedProcess | None = None) -> list[DeliveryReport]:
    deadline = time.monotonic() + timeout_s
    while True:
        reports = [r for r in _reports(settings) if r.message_id in ids]
        if {r.message_id for r in reports} == ids:
            return reports
        if process is not None and not process.alive():
            pytest.fail(f"worker died:\n{process.log_tail()}")
        if time.monotonic() > deadline:
            pytest.fail(f"reports missing for {ids - {r.message_id for r in reports}}")
        time.sleep(0.5)


def _settle(settings: Settings) -> None:
    """Until the worker has committed every input record: every report they cause, a wrong
    duplicate included, is on sms.dlr by then (outputs are stored before their sources are
    committed), so counting afterwards is final."""
    worker_consumed(settings, [SENT, DLR_RAW, DLR_TIMERS, DLR_PARTS, DLR_PARTS_TIMERS])


def test_receipt_before_submit_outcome_and_on_another_bind(
    tracking_settings: Settings, worker: ManagedProcess
) -> None:
    producer = _producer(tracking_settings)
    sent = _sent("early-receipt")
    receipt_sent_at = time.monotonic()
    _send(producer, tracking_settings, _receipt(sent, bind="rx-7"))  # receipt first
    worker_consumed(tracking_settings, [DLR_RAW])  # the receipt waits in dlr-pending
    waited = time.monotonic() - receipt_sent_at
    assert waited < RECEIPT_TTL_S, f"the commit took {waited:.1f} s, past the receipt TTL"
    _send(producer, tracking_settings, sent)
    [report] = _wait_reports(tracking_settings, {"early-receipt"})
    assert report.status is DeliveryStatus.DELIVERED
    assert report.smsc_message_ids == [sent.smsc_message_id]


def test_duplicates_give_exactly_one_report(
    tracking_settings: Settings, worker: ManagedProcess
) -> None:
    producer = _producer(tracking_settings)
    sent = _sent("dup")
    receipt = _receipt(sent, ReceiptState.UNDELIVERABLE)
    for record in (sent, sent, receipt, receipt, sent):  # duplicates before and after completion
        _send(producer, tracking_settings, record)
    _wait_reports(tracking_settings, {"dup"})
    _settle(tracking_settings)
    reports = [r for r in _reports(tracking_settings) if r.message_id == "dup"]
    assert [r.status for r in reports] == [DeliveryStatus.UNDELIVERABLE]
    assert not [r for r in _rejections(tracking_settings) if r.message_id == "dup"]


def test_multipart_message_reports_once_with_the_worst_part(
    tracking_settings: Settings, worker: ManagedProcess
) -> None:
    producer = _producer(tracking_settings)
    parts = [_sent("multi", part=i, parts=3) for i in range(3)]
    states = [ReceiptState.DELIVERED, ReceiptState.UNDELIVERABLE, ReceiptState.DELIVERED]
    for part, state in zip(parts, states, strict=True):
        _send(producer, tracking_settings, part)
        _send(producer, tracking_settings, _receipt(part, state))
        _send(producer, tracking_settings, _receipt(part, state))  # an SMSC re-send
    [report] = _wait_reports(tracking_settings, {"multi"})
    _settle(tracking_settings)
    assert [r.message_id for r in _reports(tracking_settings)].count("multi") == 1
    assert report.status is DeliveryStatus.UNDELIVERABLE
    assert report.parts == 3 and len(report.smsc_message_ids) == 3


def test_failed_submit_reports_failed_without_a_receipt(
    tracking_settings: Settings, worker: ManagedProcess
) -> None:
    producer = _producer(tracking_settings)
    failed = _sent("refused", outcome=SubmitStatus.FAILED)
    _send(producer, tracking_settings, failed)
    _send(producer, tracking_settings, failed)  # replayed
    [report] = _wait_reports(tracking_settings, {"refused"})
    _settle(tracking_settings)
    assert [r.message_id for r in _reports(tracking_settings)].count("refused") == 1
    assert report.status is DeliveryStatus.FAILED


def test_no_receipt_within_validity_is_reported_expired_by_us_once(
    tracking_settings: Settings, worker: ManagedProcess
) -> None:
    producer = _producer(tracking_settings)
    sent = _sent("silent", validity_s=1)  # validity ends in 1 s; grace 1 s
    _send(producer, tracking_settings, sent)
    [report] = _wait_reports(tracking_settings, {"silent"}, timeout_s=30)
    assert report.status is DeliveryStatus.EXPIRED
    assert report.reason == SELF_EXPIRED_REASON
    assert abs((report.done_at - sent.expires_at).total_seconds()) < 0.01  # the validity end
    # The SMSC's receipt arrives after we gave up: dropped, still one report, no dead letter.
    _send(producer, tracking_settings, _receipt(sent))
    _settle(tracking_settings)
    assert [r.message_id for r in _reports(tracking_settings)].count("silent") == 1
    assert not [r for r in _rejections(tracking_settings)
                if r.original and sent.smsc_message_id
                and sent.smsc_message_id.encode() in r.original]


def test_receipt_without_submit_outcome_is_dead_lettered_after_its_ttl(
    tracking_settings: Settings, worker: ManagedProcess
) -> None:
    producer = _producer(tracking_settings)
    orphan = _receipt(_sent("never-sent", smsc_id="feedbeef"))
    _send(producer, tracking_settings, orphan)
    deadline = time.monotonic() + RECEIPT_TTL_S + 30
    while True:
        found = [r for r in _rejections(tracking_settings)
                 if r.reason_code == REASON_RECEIPT_UNMATCHED and "feedbeef" in r.reason]
        if found or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert len(found) == 1, found
    [rejection] = found
    assert rejection.source_topic == topic_name(tracking_settings, DLR_RAW)
    assert rejection.original is not None
    assert ReceiptEvent.from_avro(rejection.original).smsc_message_id == "feedbeef"
    assert "feedbeef" in rejection.reason


def _rejections(settings: Settings) -> list[Rejection]:
    return [Rejection.from_avro(v) for v in read_all(settings, REJECTED)]


def test_every_message_once_under_a_mixed_load(
    tracking_settings: Settings, worker: ManagedProcess
) -> None:
    """300 messages with receipts in either order, some twice: one report each."""
    producer = Producer(producer_config(tracking_settings.kafka_bootstrap))
    sent_topic, raw_topic = (topic_name(tracking_settings, SENT),
                             topic_name(tracking_settings, DLR_RAW))
    ids = {f"mix-{n}" for n in range(300)}
    for n, message_id in enumerate(sorted(ids)):
        sent = _sent(message_id)
        key = f"{sent.smsc_id}:{sent.smsc_message_id}".encode()
        receipt = _receipt(sent, ReceiptState.DELIVERED if n % 7 else ReceiptState.REJECTED)
        records = [(sent_topic, sent.to_avro(sent_topic)), (raw_topic, receipt.to_avro(raw_topic))]
        if n % 2:
            records.reverse()
        if n % 5 == 0:
            records.append(records[-1])
        for topic, value in records:
            producer.produce(topic, key=key, value=value)
    producer.flush(30)
    _wait_reports(tracking_settings, ids, timeout_s=120)
    _settle(tracking_settings)
    counted = Counter(r.message_id for r in _reports(tracking_settings) if r.message_id in ids)
    assert set(counted.values()) == {1}


def test_receipt_batches_complete_each_part_and_reject_only_what_is_unreadable(
    tracking_settings: Settings, worker: ManagedProcess
) -> None:
    """The sender's receipt batches (schemas/batches.py): one record per partition, no key.
    Each receipt in it completes its own part, a duplicate in the same batch is dropped, an
    unreadable value is dead-lettered with its bytes while its neighbours complete, and a batch
    cut short is dead-lettered whole."""
    producer = _producer(tracking_settings)
    sent_topic, raw_topic = (topic_name(tracking_settings, SENT),
                             topic_name(tracking_settings, DLR_RAW))
    partitions = tracking_settings.partitions
    outcomes = [_sent(f"batched-{n}") for n in range(40)]
    by_partition: dict[int, list[bytes]] = {}
    for sent in outcomes:
        key = f"{sent.smsc_id}:{sent.smsc_message_id}"
        producer.produce(sent_topic, key=key.encode(), value=sent.to_avro(sent_topic))
        by_partition.setdefault(partition_of(key.encode(), partitions), []).append(
            _receipt(sent).to_avro(raw_topic))
    garbage = b"\x07neither framing"
    first = min(by_partition)
    by_partition[first] += [by_partition[first][0], garbage]  # a duplicate, an unreadable one
    for partition, values in by_partition.items():
        producer.produce(raw_topic, value=pack_receipts(values), partition=partition)
    cut = pack_receipts([_receipt(_sent("cut-short")).to_avro(raw_topic)])[:-3]
    producer.produce(raw_topic, value=cut, partition=first)
    producer.flush(10)

    ids = {sent.message_id for sent in outcomes}
    _wait_reports(tracking_settings, ids)
    _settle(tracking_settings)
    reports = Counter(r.message_id for r in _reports(tracking_settings) if r.message_id in ids)
    assert set(reports.values()) == {1}, reports
    rejected = [r for r in _rejections(tracking_settings)
                if r.source_topic == raw_topic and r.original in (garbage, cut)]
    assert sorted(r.original == cut for r in rejected) == [False, True], rejected
    assert all(r.stage == "dlr" and r.reason_code == UNDECODABLE for r in rejected), rejected
    assert not any(r.message_id == "cut-short" for r in _reports(tracking_settings))


def test_submit_outcome_batches_complete_their_parts_and_count_in_the_windows(
    tracking_settings: Settings, worker: ManagedProcess
) -> None:
    """Batches of submit outcomes on ``sms.sent`` (schemas/batches.py; no sender writes them
    yet, every reader takes them): each outcome meets its receipt, a failed part is reported
    FAILED, a duplicate in a batch is dropped, and the tracking feed counts every outcome by
    its own summary header."""
    producer = _producer(tracking_settings)
    sent_topic, raw_topic = (topic_name(tracking_settings, SENT),
                             topic_name(tracking_settings, DLR_RAW))
    route = f"sent-batch-{uuid.uuid4().hex[:6]}"
    outcomes = [_sent(f"{route}-{n}").model_copy(update={"route_id": route})
                for n in range(30)]
    failed = _sent(f"{route}-failed", outcome=SubmitStatus.FAILED).model_copy(
        update={"route_id": route})
    by_partition: dict[int, list[SubmitOutcome]] = {}
    for sent in [*outcomes, failed]:
        key = sent_key(sent.smsc_id, sent.smsc_message_id, sent.message_id, sent.part_index)
        by_partition.setdefault(partition_of(key.encode(), tracking_settings.partitions),
                                []).append(sent)
    by_partition[min(by_partition)].append(by_partition[min(by_partition)][0])  # a duplicate
    for partition, batch in by_partition.items():
        headers: list[tuple[str, str | bytes | None]] = [
            sent_summary_header(s.route_id, s.operator_id, s.tenant_id,
                                s.outcome is SubmitStatus.ACCEPTED, s.command_status,
                                s.latency_ms, s.attempts) for s in batch]
        producer.produce(sent_topic, value=pack_sent(s.to_avro(sent_topic) for s in batch),
                         headers=headers, partition=partition)
    for sent in outcomes:
        receipt = _receipt(sent)
        producer.produce(raw_topic, key=f"{receipt.smsc_id}:{receipt.smsc_message_id}".encode(),
                         value=receipt.to_avro(raw_topic))
    producer.flush(10)

    ids = {sent.message_id for sent in [*outcomes, failed]}
    _wait_reports(tracking_settings, ids)
    _settle(tracking_settings)
    reports = [r for r in _reports(tracking_settings) if r.message_id in ids]
    assert Counter(r.message_id for r in reports) == dict.fromkeys(ids, 1)
    assert {r.message_id: r.status for r in reports}[failed.message_id] is DeliveryStatus.FAILED
    reference, windows = wait_for_windows(tracking_settings)
    # 30 accepted (and the duplicate: the windows count records as the reference does), 1 failed.
    assert reference[f"route:{route}"]["accepted"] == 31
    assert reference[f"route:{route}"]["failed"] == 1
    assert windows[f"route:{route}"]["accepted"] == 31
    assert windows[f"route:{route}"]["failed"] == 1
    assert windows[f"route:{route}"]["DELIVERED"] == 30


def test_worker_log_has_no_errors(tracking_settings: Settings, worker: ManagedProcess) -> None:
    log = Path(worker.log_path).read_text(errors="replace")
    assert "Traceback" not in log, worker.log_tail(60)
