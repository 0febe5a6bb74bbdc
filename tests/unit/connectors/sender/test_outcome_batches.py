"""The sender's outcome batches (connectors/sender/outcome_batches.py): one ``sms.sent`` record
per partition with a summary header per outcome in order, each outcome finished with that
record's result; an outcome in doubt, and a batch of one, as the plain keyed record (no broker:
the produce function is a recorder whose delivery reports the test fires)."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError

from connectors.sender import outcome_batches
from connectors.sender.ledger import IN_DOUBT_HEADER
from connectors.sender.outcome_batches import OutcomeBatcher
from schemas.batches import is_sent_batch, sent_entries, sent_values
from schemas.summaries import SUMMARY_HEADER
from smsflow.murmur2 import partition_of
from tests.unit.connectors.sender.batch_fakes import (
    PARTITIONS,
    Callbacks,
    Recorder,
    keys_by_partition,
)

TOPIC = "unit.sms.sent"


def _summary(key: str) -> tuple[str, bytes]:
    return (SUMMARY_HEADER, f"summary of {key}".encode())


def _add(batcher: OutcomeBatcher, finished: Callbacks, key: str, *, in_doubt: bool = False,
         ) -> None:
    batcher.add(key, f"value of {key}".encode(), _summary(key), finished.callback(key),
                in_doubt=in_doubt)


def _batcher(recorder: Recorder, delay_s: float = 3600.0) -> OutcomeBatcher:
    batcher = OutcomeBatcher(recorder, TOPIC, delay_s=delay_s)
    batcher.use_partitions(PARTITIONS)
    return batcher


def test_one_record_per_partition_with_a_summary_per_outcome_in_order() -> None:
    recorder, finished = Recorder(), Callbacks()
    batcher = _batcher(recorder)
    by_partition = keys_by_partition(40)
    assert all(len(keys) > 1 for keys in by_partition.values())
    for keys in by_partition.values():
        for key in keys:
            _add(batcher, finished, key)
    assert recorder.records == []  # held for the delay
    assert batcher.flush() == 40
    assert sorted(r.partition or 0 for r in recorder.records) == sorted(by_partition)
    for record in recorder.records:
        assert record.topic == TOPIC and record.key is None and is_sent_batch(record.value)
        assert record.partition is not None
        keys = by_partition[record.partition]
        assert [v.decode() for v in sent_values(record.value)] == [f"value of {k}" for k in keys]
        # Each reader pairs the i-th summary with the i-th value.
        assert sent_entries(record.value, record.headers) == [
            (f"value of {k}".encode(), [_summary(k)]) for k in keys]
    assert finished.results == {}  # nothing stored yet: no outcome finished
    stopping = recorder.records[0]
    stopping.on_delivery(KafkaError(KafkaError._MSG_TIMED_OUT), None)
    for record in recorder.records[1:]:
        record.on_delivery(None, None)
    assert set(finished.results) == {k for keys in by_partition.values() for k in keys}
    assert stopping.partition is not None
    assert {k for k, e in finished.results.items() if e is not None} == set(
        by_partition[stopping.partition])
    assert (batcher.items, batcher.records) == (40, len(by_partition))


def test_an_outcome_in_doubt_is_a_flagged_record_of_its_own() -> None:
    """docs/operations.md#in-doubt-parts lists them by the header of their record."""
    recorder, finished = Recorder(), Callbacks()
    batcher = _batcher(recorder)
    _add(batcher, finished, "smsc-uk:1", in_doubt=True)
    [record] = recorder.records  # at once, not held
    assert (record.key, record.value) == ("smsc-uk:1", b"value of smsc-uk:1")
    assert record.headers == [_summary("smsc-uk:1"), (IN_DOUBT_HEADER, b"1")]
    record.on_delivery(None, None)
    assert finished.results == {"smsc-uk:1": None}


def test_a_batch_of_one_is_the_plain_keyed_record_on_its_partition() -> None:
    recorder, finished = Recorder(), Callbacks()
    batcher = _batcher(recorder, delay_s=0.01)
    try:
        _add(batcher, finished, "smsc-uk:1")
        assert recorder.produced.wait(5), "the held outcome was never written"
        [record] = recorder.records
        assert (record.key, record.value) == ("smsc-uk:1", b"value of smsc-uk:1")
        assert record.headers == [_summary("smsc-uk:1")]
        assert record.partition == partition_of(b"smsc-uk:1", PARTITIONS)
    finally:
        batcher.stop()


def test_a_full_batch_is_written_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outcome_batches, "MAX_BATCH", 3)
    recorder, finished = Recorder(), Callbacks()
    batcher = _batcher(recorder)
    for n in range(3):
        _add(batcher, finished, f"smsc-uk:{n}")
    assert sum(len(list(sent_values(r.value))) for r in recorder.records) == 3


@pytest.mark.parametrize("partitions, delay_s", [(None, 0.005), (PARTITIONS, 0.0)])
def test_a_record_per_outcome_without_partitions_or_delay(
    partitions: int | None, delay_s: float
) -> None:
    """Before the partition count is known, and with SMSFLOW_SENT_BATCH_MS=0 (readable by
    readers older than the batches): keyed records of one outcome, as before."""
    recorder, finished = Recorder(), Callbacks()
    batcher = OutcomeBatcher(recorder, TOPIC, delay_s=delay_s)
    batcher.use_partitions(partitions)
    _add(batcher, finished, "smsc-uk:1")
    [record] = recorder.records
    assert (record.key, record.partition, record.headers) == (
        "smsc-uk:1", None, [_summary("smsc-uk:1")])
    record.on_delivery(None, None)
    assert finished.results == {"smsc-uk:1": None}


def test_stop_writes_what_is_held_and_later_outcomes_go_alone() -> None:
    recorder, finished = Recorder(), Callbacks()
    batcher = _batcher(recorder, delay_s=3600.0)
    for key in ("smsc-uk:1", "smsc-uk:2"):
        _add(batcher, finished, key)
    batcher.stop()
    assert sum(len(list(sent_values(r.value))) for r in recorder.records) == 2
    written = len(recorder.records)
    _add(batcher, finished, "smsc-uk:3")
    assert recorder.records[written].key == "smsc-uk:3"
