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
    LedgerEntry,
    LedgerIndex,
    PartAction,
    decide,
    part_key,
)
from connectors.sender.ledger_store import AckWaiter, SubmitLedger
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


def test_entry_round_trips_and_garbage_is_refused() -> None:
    entry = LedgerEntry(INTENT, 200, 1_764_000_000_000)
    assert LedgerEntry.parse(entry.to_bytes()) == entry
    assert part_key("m-1", 2) == "m-1:2"
    for garbage in (b"{}", b'{"s":"X","ref":1,"at":1}', b'{"s":"I"}', b"[1]"):
        with pytest.raises(ValueError):
            LedgerEntry.parse(garbage)


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


def test_submit_ledger_state_is_pruned_to_the_horizon() -> None:
    produced: list[tuple[str, int | None]] = []

    def produce(topic: str, key: str, value: bytes, on_delivery: object, *,
                partition: int | None = None) -> None:
        produced.append((key, partition))
        assert callable(on_delivery)
        on_delivery(None, None)  # Kafka stored it

    ledger = SubmitLedger("127.0.0.1:1", "t", produce, horizon_ms=1000)
    stored: list[bool] = []
    ledger.claim("m", [0], partition=3)
    assert ledger.actions("m", 1)[0] == [PartAction.SKIP]  # in flight here
    ledger.write_done("m", 0, 3, reference=9, at_ms=5_000, then=stored.append)
    assert stored == [True] and produced == [("m:0", 3)]
    assert ledger.actions("m", 2) == ([PartAction.SKIP, PartAction.SUBMIT], 9)
    assert ledger.prune(now_ms=5_500) == 0 and len(ledger) == 1
    assert ledger.prune(now_ms=6_001) == 1 and len(ledger) == 0
    assert ledger.actions("m", 1)[0] == [PartAction.SUBMIT]
