"""The sender's submit ledger: the decision table, the entry format, the bounded index, and the
dispatcher writing no PDU before its batch's intents are stored."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from connectors.sender.dispatch import SmscDispatcher
from connectors.sender.ledger import (
    DONE,
    INTENT,
    LedgerBatch,
    LedgerEntry,
    LedgerIndex,
    PartAction,
    decide,
    parse_record,
    part_key,
)
from connectors.sender.ledger_store import MAX_DONE_BATCH, AckWaiter, SubmitLedger
from connectors.sender.service import SenderService
from smsflow.config.store import load_yaml
from smsflow.settings import Settings
from tests.paths import PLATFORM_CONFIG
from tests.unit.connectors.sender.test_dispatch import FakeBind, _entry, _wait_until


@pytest.mark.parametrize(
    ("entry", "in_flight_here", "action"),
    [
        (None, False, PartAction.SUBMIT),
        (None, True, PartAction.SKIP),  # a re-send while its intent is still being written
        (LedgerEntry(DONE, 1, 10), False, PartAction.SKIP),
        (LedgerEntry(INTENT, 1, 10), True, PartAction.SKIP),
        (LedgerEntry(INTENT, 1, 10), False, PartAction.RESUBMIT_IN_DOUBT),
    ],
)
def test_decision_table(entry: LedgerEntry | None, in_flight_here: bool,
                        action: PartAction) -> None:
    assert decide(entry, in_flight_here=in_flight_here) is action


def test_batch_round_trips_and_garbage_is_refused() -> None:
    batch = LedgerBatch(INTENT, 1_764_000_000_000, {"m-1:0": 200, 'odd "id":1': 7})
    assert parse_record("~abc:1", batch.to_bytes()) == [
        ("m-1:0", LedgerEntry(INTENT, 200, 1_764_000_000_000)),
        ('odd "id":1', LedgerEntry(INTENT, 7, 1_764_000_000_000)),
    ]
    assert part_key("m-1", 2) == "m-1:2"
    # Non-ASCII and a lone surrogate (refused by orjson, written by json) round-trip too.
    for odd in ("ünï\u2028code\n\x00", "half \ud800 pair"):
        written = LedgerBatch(INTENT, 5, {odd: 1}).to_bytes()
        assert parse_record("~abc:2", written) == [(odd, LedgerEntry(INTENT, 1, 5))]
    for garbage in (b"{}", b'{"s":"X","ref":1,"at":1}', b'{"s":"I"}', b"[1]",
                    b'{"s":"D","at":1,"parts":[1]}', b'{"s":"D","at":1,"parts":{"m:0":"x"}}',
                    b'{"s":"D","at":1,"parts":{"m:0":true}}', b'{"s":"D","parts":{"m:0":1}}'):
        with pytest.raises(ValueError):
            parse_record("k", garbage)


def test_records_of_the_per_part_format_are_still_read() -> None:
    """Written by senders before batching: one entry, the record's key names the part."""
    assert parse_record("m-1:1", b'{"s":"D","ref":3,"at":5}') == [
        ("m-1:1", LedgerEntry(DONE, 3, 5))]
    with pytest.raises(ValueError):
        parse_record(None, b'{"s":"D","ref":3,"at":5}')


def test_done_is_not_undone_by_a_later_intent() -> None:
    """An in-doubt resubmission's INTENT may land after the DONE of the first attempt."""
    index = LedgerIndex(horizon_ms=1000)
    index.put("m:0", LedgerEntry(DONE, 1, 100), partition=0)
    index.put("m:0", LedgerEntry(INTENT, 1, 200), partition=0)
    found = index.get("m:0")
    assert found is not None and found.state == DONE


def test_index_forgets_revoked_partitions_and_entries_past_the_horizon() -> None:
    index = LedgerIndex(horizon_ms=1000)
    index.put("a:0", LedgerEntry(DONE, 0, 100), partition=0)
    index.put("b:0", LedgerEntry(DONE, 0, 900), partition=1)
    index.put("c:0", LedgerEntry(INTENT, 0, 1500), partition=1)
    index.forget_partition(0)
    assert index.get("a:0") is None and len(index) == 2
    assert index.prune(now_ms=2000) == 1  # b:0 is older than 2000 - 1000
    assert index.get("b:0") is None and index.get("c:0") is not None


def test_a_key_written_again_is_kept_until_its_newest_entry_ages_out() -> None:
    index = LedgerIndex(horizon_ms=1000)
    index.put("a:0", LedgerEntry(INTENT, 0, 100), partition=0)
    index.put("a:0", LedgerEntry(DONE, 0, 1500), partition=0)
    index.prune(now_ms=1600)
    assert index.get("a:0") is not None


def test_ack_waiter_is_true_only_when_every_record_was_stored() -> None:
    ok, failed = AckWaiter(), AckWaiter()
    for waiter in (ok, failed):
        waiter.expect()
        waiter.expect()
    threading.Timer(0.05, ok.on_delivery, (None, None)).start()
    ok.on_delivery(None, None)  # type: ignore[arg-type]
    assert ok.wait(5.0)
    failed.on_delivery(None, None)  # type: ignore[arg-type]
    failed.on_delivery(object(), None)  # type: ignore[arg-type]
    assert not failed.wait(5.0)
    never = AckWaiter()
    never.expect()
    assert not never.wait(0.05)


def test_dispatcher_writes_no_pdu_before_the_intents_are_stored() -> None:
    bind = FakeBind(window=8)
    stored = threading.Event()
    asked: list[list[str]] = []

    def before_send(contexts: list[str]) -> bool:
        asked.append(list(contexts))
        return stored.is_set()  # Kafka "down" until the event is set

    dispatcher: SmscDispatcher[str] = SmscDispatcher(
        "smsc-x", [bind], 8, on_no_bind=lambda _e: None, is_stale=lambda _c: False,
        on_taken=lambda _c: None, on_returned=lambda _c: None, on_bound=lambda: None,
        before_send=before_send,
    )
    dispatcher.start()
    try:
        for name in ("a", "b", "c"):
            dispatcher.put(_entry(name))
        _wait_until(lambda: len(asked) >= 2)  # refused, then retried at the re-check
        assert bind.sent == [] and dispatcher.queued_parts == 3
        stored.set()
        _wait_until(lambda: bind.sent == ["a", "b", "c"])
        assert asked[-1] == ["a", "b", "c"]  # the whole batch, one call
    finally:
        dispatcher.stop()


def test_the_sender_refuses_to_start_without_its_ledger_topic(tmp_path: Path) -> None:
    """It could store no intent, so it would submit nothing: an upgrade that skipped
    `smsflow topics apply` fails at start, loudly, instead of stalling."""

    class NoTopics:
        def list_topics(self, topic: str, timeout: float) -> SimpleNamespace:
            return SimpleNamespace(topics={})

    settings = Settings(kafka_bootstrap="127.0.0.1:1", topic_prefix="unit.", home=tmp_path)
    service = SenderService(settings, load_yaml(PLATFORM_CONFIG), group_id="unit")
    service._consumer = NoTopics()  # type: ignore[assignment]
    with pytest.raises(RuntimeError, match=r"unit\.sms\.sender\.ledger is missing"):
        service.run()
    assert service._pools == {}  # nothing was opened


class _Kafka:
    """A produce function that stores (acknowledges) each record at once, or refuses it."""

    def __init__(self, *, refuse: bool = False) -> None:
        self.records: list[tuple[str, int | None, bytes]] = []
        self.refuse = refuse

    def __call__(self, topic: str, key: str, value: bytes, on_delivery: object, *,
                 partition: int | None = None) -> None:
        self.records.append((key, partition, value))
        assert callable(on_delivery)
        on_delivery("refused" if self.refuse else None, None)


def test_submit_ledger_state_is_pruned_to_the_horizon() -> None:
    kafka = _Kafka()
    ledger = SubmitLedger("127.0.0.1:1", "t", kafka, horizon_ms=1000)
    stored: list[bool] = []
    ledger.claim("m", [0], partition=3)
    assert ledger.actions("m", 1)[0] == [PartAction.SKIP]  # in flight here
    ledger.write_done("m", 0, 3, reference=9, then=stored.append)
    assert stored == [] and kafka.records == []  # waits for the round's flush
    assert ledger.flush_done() == 1 and stored == [True]
    [(_key, partition, value)] = kafka.records
    [(part, entry)] = parse_record(None, value)
    assert (part, partition, entry.state, entry.ref) == ("m:0", 3, DONE, 9)
    assert ledger.actions("m", 2) == ([PartAction.SKIP, PartAction.SUBMIT], 9)
    assert ledger.prune(now_ms=entry.at_ms + 500) == 0 and len(ledger) == 1
    assert ledger.prune(now_ms=entry.at_ms + 1001) == 1 and len(ledger) == 0
    assert ledger.actions("m", 1)[0] == [PartAction.SUBMIT]


def test_intents_and_dones_are_one_record_per_partition() -> None:
    kafka = _Kafka()
    ledger = SubmitLedger("127.0.0.1:1", "t", kafka, horizon_ms=60_000)
    assert ledger.write_intents([("a", 0, 1, 5), ("a", 1, 1, 5), ("b", 0, 2, 0)], 1.0)
    assert ledger.flush_done() == 0 and len(kafka.records) == 2
    intents = {partition: parse_record(None, value) for _k, partition, value in kafka.records}
    assert {p: [(k, e.state, e.ref) for k, e in v] for p, v in intents.items()} == {
        1: [("a:0", INTENT, 5), ("a:1", INTENT, 5)], 2: [("b:0", INTENT, 0)]}
    stored: list[bool] = []
    for message_id, index, partition in (("a", 0, 1), ("b", 0, 2), ("a", 1, 1)):
        ledger.write_done(message_id, index, partition, 0, stored.append)
    assert ledger.flush_done() == 3 and stored == [True, True, True]
    dones = kafka.records[2:]
    assert sorted((p, [k for k, _e in parse_record(None, v)]) for _k, p, v in dones) == [
        (1, ["a:0", "a:1"]), (2, ["b:0"])]
    keys = [key for key, _p, _v in kafka.records]
    assert len(set(keys)) == 4  # unique: the topic is compacted


def test_a_full_round_of_dones_is_written_without_waiting_for_the_flush() -> None:
    kafka = _Kafka()
    ledger = SubmitLedger("127.0.0.1:1", "t", kafka, horizon_ms=60_000)
    for index in range(MAX_DONE_BATCH):
        ledger.write_done("m", index, 0, 0, lambda _stored: None)
    assert len(kafka.records) == 1 and ledger.flush_done() == 0


def test_a_refused_done_leaves_its_parts_in_doubt() -> None:
    """Only a stopping sender sees a refusal (the retrying produce keeps trying otherwise):
    the parts stay in flight, nothing is marked DONE, and ``then`` hears it."""
    ledger = SubmitLedger("127.0.0.1:1", "t", _Kafka(refuse=True), horizon_ms=60_000)
    ledger.claim("m", [0], partition=0)
    stored: list[bool] = []
    ledger.write_done("m", 0, 0, 0, stored.append)
    ledger.flush_done()
    assert stored == [False] and ledger.actions("m", 1)[0] == [PartAction.SKIP]
