"""The sender's receipt batches (connectors/sender/receipt_batches.py): one record per
``sms.dlr.raw`` partition, each receipt answered with that record's result (no broker: the
produce function is a recorder whose delivery reports the test fires)."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import KafkaError

from connectors.sender import receipt_batches
from connectors.sender.receipt_batches import ReceiptBatcher
from schemas.batches import is_receipt_batch, receipt_values
from tests.unit.connectors.sender.batch_fakes import (
    PARTITIONS,
    Callbacks,
    Recorder,
    keys_by_partition,
)

TOPIC = "unit.sms.dlr.raw"


def _batcher(recorder: Recorder, delay_s: float = 3600.0) -> ReceiptBatcher:
    batcher = ReceiptBatcher(recorder, TOPIC, delay_s=delay_s)
    batcher.use_partitions(PARTITIONS)
    return batcher


def test_one_record_per_partition_and_each_receipt_answered_with_its_result() -> None:
    recorder, answers = Recorder(), Callbacks()
    batcher = _batcher(recorder)
    by_partition = keys_by_partition(24)
    for keys in by_partition.values():
        for key in keys:
            batcher.add(key, key.encode(), answers.callback(key))
    assert recorder.records == []  # held for the delay
    assert batcher.flush() == 24
    assert sorted(r.partition or 0 for r in recorder.records) == sorted(by_partition)
    assert all(r.partition is not None for r in recorder.records)
    for record in recorder.records:
        assert record.topic == TOPIC and record.key is None and is_receipt_batch(record.value)
        assert record.partition is not None
        assert [v.decode() for v in receipt_values(record.value)] == by_partition[record.partition]
    assert answers.results == {}  # nothing stored yet: no receipt answered
    failed = recorder.records[0]
    failed.on_delivery(KafkaError(KafkaError._MSG_TIMED_OUT), None)
    for record in recorder.records[1:]:
        record.on_delivery(None, None)
    assert set(answers.results) == {k for keys in by_partition.values() for k in keys}
    assert failed.partition is not None
    assert {k for k, e in answers.results.items() if e is not None} == set(
        by_partition[failed.partition])
    assert (batcher.items, batcher.records) == (24, len(by_partition))


def test_written_after_the_delay_without_a_flush() -> None:
    recorder, answers = Recorder(), Callbacks()
    batcher = _batcher(recorder, delay_s=0.01)
    try:
        batcher.add("smsc-uk:1", b"one", answers.callback("smsc-uk:1"))
        assert recorder.produced.wait(5), "the held receipt was never written"
        assert [list(receipt_values(r.value)) for r in recorder.records] == [[b"one"]]
    finally:
        batcher.stop()


def test_a_full_batch_is_written_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(receipt_batches, "MAX_BATCH", 3)
    recorder, answers = Recorder(), Callbacks()
    batcher = _batcher(recorder)
    for n in range(3):
        batcher.add(f"smsc-uk:{n}", b"r", answers.callback(f"smsc-uk:{n}"))
    assert sum(len(list(receipt_values(r.value))) for r in recorder.records) == 3


@pytest.mark.parametrize("partitions, delay_s", [(None, 0.005), (PARTITIONS, 0.0)])
def test_a_record_per_receipt_without_partitions_or_delay(
    partitions: int | None, delay_s: float
) -> None:
    """Before the partition count is known, and with SMSFLOW_RECEIPT_BATCH_MS=0 (readable by
    workers older than the batches): keyed records of one receipt, as before."""
    recorder, answers = Recorder(), Callbacks()
    batcher = ReceiptBatcher(recorder, TOPIC, delay_s=delay_s)
    batcher.use_partitions(partitions)
    batcher.add("smsc-uk:1", b"one", answers.callback("smsc-uk:1"))
    [record] = recorder.records
    assert (record.key, record.value, record.partition) == ("smsc-uk:1", b"one", None)
    record.on_delivery(None, None)
    assert answers.results == {"smsc-uk:1": None}


def test_stop_writes_what_is_held_and_later_receipts_go_alone() -> None:
    recorder, answers = Recorder(), Callbacks()
    batcher = _batcher(recorder, delay_s=3600.0)
    batcher.add("smsc-uk:1", b"one", answers.callback("smsc-uk:1"))
    started = time.monotonic()
    batcher.stop()
    assert time.monotonic() - started < 5  # the writing thread did not sleep out its delay
    assert [list(receipt_values(r.value)) for r in recorder.records] == [[b"one"]]
    batcher.add("smsc-uk:2", b"two", answers.callback("smsc-uk:2"))
    assert (recorder.records[-1].key, recorder.records[-1].value) == ("smsc-uk:2", b"two")
