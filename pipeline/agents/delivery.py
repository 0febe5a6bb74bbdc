"""Delivery agents: receipts ↔ submit outcomes → exactly one terminal report per message.

Stage 1, ``correlate`` (``sms.sent`` + ``sms.dlr.raw`` + its own ``sms.dlr.timers``, all keyed
``<smsc>:<smsc message id>`` and co-partitioned; a ``sms.dlr.raw`` record carries one receipt or
the sender's batch of them, schemas/batches.py, taken receipt by receipt): whichever of a
submit outcome and its terminal receipt arrives first waits in the ``dlr-pending`` table as a
:class:`~smsflow.domain.tracking.PendingEntry`; the second completes the part, emits a
``PartOutcome`` for the partition of its message id (batched per partition:
:mod:`pipeline.part_batches`), and leaves a *done marker* so a replayed or duplicated record
is dropped instead of stored as a new wait. The pure rules are
:func:`~smsflow.domain.tracking.on_arrival` and :func:`~smsflow.domain.tracking.on_timer`:

* no receipt by the end of the validity period (+ grace): we emit EXPIRED ourselves;
* a receipt whose submit outcome never comes is dead-lettered after its TTL
  (``RECEIPT_UNMATCHED`` on ``sms.rejected``, with the receipt's bytes);
* done markers are forgotten after their TTL;
* an accepted part whose submit asked for no receipt (``receipt_requested`` false) ends at
  once with status ACCEPTED: nothing is stored for it and no timer runs (a receipt the SMSC
  sends anyway finds no submit outcome and is dead-lettered like any unmatched receipt).

Timers reach the agent as commands on ``sms.dlr.timers`` (see :mod:`pipeline.key_timers`), so
every table change happens inside the stream and is as crash-safe as the rest.
Intermediate receipts (ENROUTE, ACCEPTD) are kept on ``sms.dlr.raw`` and counted, not stored:
they end nothing.

Stage 2, ``aggregate`` (``sms.dlr.parts`` + ``sms.dlr.parts.timers``, partitioned by message
id; a ``sms.dlr.parts`` record carries one part or a batch, taken part by part): collects a
multi-part message's parts in ``dlr-parts`` until all are in, emits one ``DeliveryReport`` on
``sms.dlr`` keyed by tenant id, and leaves a done marker there too.

Exactly one report per message holds for duplicated receipts and submit outcomes, replays, and
receipts after our own EXPIRED. A done marker is written only once the output it stands for is
stored (see :mod:`pipeline.after_delivery`): a crash in the milliseconds between the two would
repeat the report when the record is replayed, so on the first record of each ``sms.dlr.parts``
partition after an assignment the aggregator reads back which of the replayable messages already
have their report on ``sms.dlr`` (:mod:`pipeline.reported_tail`) and marks those done instead of
reporting them again. A crash between a *part* and its marker in ``correlate`` repeats the part,
which the aggregator drops (done marker, or part index already collected). Measured in
docs/delivery-tracking.md.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, cast

import faust

from pipeline.after_delivery import after_delivery
from pipeline.app import Worker
from pipeline.decoding import decode, decode_fields_or_reject
from pipeline.faults import DieAtReport
from pipeline.faust_patches.commit_hooks import add_commit_barrier
from pipeline.key_timers import KeyTimers, command_keys
from pipeline.outputs import OutputTopic
from pipeline.part_batches import PartBatcher, unpack
from pipeline.part_value import PartEnd, part_value
from pipeline.rejections import reject
from pipeline.reported_tail import ReportedTail, TailScan
from pipeline.tracking_policy import correlation_policy
from schemas.batches import is_receipt_batch, is_sent_batch, receipt_values, sent_key, sent_values
from schemas.models import (
    DeliveryReport,
    DeliveryStatus,
    PartOutcome,
    ReceiptEvent,
    ReceiptState,
    SubmitOutcome,
    SubmitStatus,
)
from schemas.retrying import decode_fields
from schemas.summaries import report_summary_header
from schemas.wire import UNDECODABLE
from smsflow import length_prefixed
from smsflow.domain.delivery import message_status
from smsflow.domain.receipts import TERMINAL_STATUS_BY_STATE
from smsflow.domain.tracking import (
    REASON_RECEIPT_UNMATCHED,
    SELF_EXPIRED_REASON,
    Arrival,
    CorrelationPolicy,
    EntryKind,
    PendingEntry,
    StateFormatError,
    TimerAction,
    done_marker,
    on_arrival,
    on_timer,
    pending_receipt,
    pending_sent,
)
from smsflow.kafka_security import kafka_connection
from smsflow.topics import DLR, DLR_PARTS, DLR_PARTS_TIMERS, DLR_RAW, DLR_TIMERS, REJECTED, SENT

log = logging.getLogger(__name__)

STAGE = "dlr"
#: ``reason`` of a part that ends ACCEPTED: the SMSC took it, and no receipt was requested.
NO_RECEIPT_REASON = "no receipt requested"


def terminal_status(state: ReceiptState) -> DeliveryStatus | None:
    """The part status a receipt state ends a part with; None for an intermediate state.

    The table is the domain's (``TERMINAL_STATUS_BY_STATE``, docs/architecture.md); the wire
    contracts use the domain's enums.
    """
    return TERMINAL_STATUS_BY_STATE.get(state)


def _sent_key_of(fields: dict[str, Any]) -> str:
    """The key the sender gives a record of one ``SubmitOutcome`` (these are its fields)."""
    return sent_key(fields["smsc_id"], fields["smsc_message_id"], fields["message_id"],
                    fields["part_index"])


def _receipt_key_of(fields: dict[str, Any]) -> str:
    """The key the sender gives a record of one ``ReceiptEvent`` (these are its fields)."""
    return f"{fields['smsc_id']}:{fields['smsc_message_id']}"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000  # a sixth of datetime.now(UTC).timestamp()'s cost


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _pending_due(value: bytes) -> int | None:
    try:
        return PendingEntry.from_bytes(value).due_ms
    except StateFormatError:
        return None


#: Receipt states by symbol (a member finds itself too): a dict lookup where
#: ``ReceiptState(...)`` costs a microsecond (enum's call machinery).
_RECEIPT_STATES: dict[str, ReceiptState] = {state.value: state for state in ReceiptState}


def _terminal(state: ReceiptState) -> DeliveryStatus:
    status = terminal_status(state)
    if status is None:
        raise ValueError(f"receipt state {state.value} ends nothing")
    return status


def receipt_end(receipt: ReceiptEvent | dict[str, Any]) -> PartEnd:
    """How a part ends whose terminal receipt (a model, or its fields as the Avro reader gives
    them) matched its submit outcome."""
    fields = receipt.avro_fields() if isinstance(receipt, ReceiptEvent) else receipt
    state = _RECEIPT_STATES[fields["state"]]
    return PartEnd(
        status=_terminal(state),
        error_code=fields["error_code"],
        reason=None if state is ReceiptState.DELIVERED else f"receipt {state}",
        # When we learned it; the receipt's own "done date" is often minute-precision only.
        done_at=fields["received_at"],
    )


def accepted_end(sent_at: datetime) -> PartEnd:
    """How a part ends that the SMSC accepted (at ``sent_at``) without a receipt request."""
    return PartEnd(
        status=DeliveryStatus.ACCEPTED, error_code=None, reason=NO_RECEIPT_REASON,
        done_at=sent_at,  # when the SMSC accepted it: all we will ever know
    )


def complete_part(sent: SubmitOutcome, receipt: ReceiptEvent) -> PartOutcome:
    """The terminal outcome of a part whose terminal receipt matched its submit outcome."""
    return receipt_end(receipt).outcome(sent)


def accepted_part(sent: SubmitOutcome) -> PartOutcome:
    """The terminal outcome of a part the SMSC accepted without a receipt request."""
    return accepted_end(sent.sent_at).outcome(sent)

_COLLECTING = b"C"  # + length-prefixed PartOutcome records
_DONE = b"D"  # + due_ms (>q): the message was reported; drop late copies until then
_DUE = struct.Struct(">q")


def _parts_due(value: bytes) -> int | None:
    if value[:1] == _DONE and len(value) == 1 + _DUE.size:
        due: int = _DUE.unpack_from(value, 1)[0]
        return due
    return None


def pack_parts(blobs: list[bytes]) -> bytes:
    """A collecting message's parts as stored after :data:`_COLLECTING`."""
    return length_prefixed.pack(b"", blobs)


def unpack_parts(data: bytes) -> list[bytes]:
    return list(length_prefixed.unpack(data, b"", "dlr-parts entry"))


def _part_index(part: dict[str, Any]) -> int:
    index: int = part["sent"]["part_index"]
    return index


def report_fields(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The message's one report, as ``DeliveryReport`` fields, from all its parts'
    ``PartOutcome`` fields (status: the worst part's). Fields, not models: the aggregator reads
    records the correlator wrote, which the Avro reader has checked against the contract, and
    building and validating the models cost it about a tenth of its time per message."""
    parts.sort(key=_part_index)
    first = parts[0]
    sent = first["sent"]
    status = message_status([p["status"] for p in parts])
    worst = next((p for p in parts if p["status"] == status), first)
    return {
        "message_id": sent["message_id"],
        "tenant_id": sent["tenant_id"],
        "client_ref": sent["client_ref"],
        "route_id": sent["route_id"],
        "smsc_id": sent["smsc_id"],
        "operator_id": sent["operator_id"],
        "country": sent["country"],
        "destination": sent["destination"],
        "parts": sent["part_count"],
        "status": status,
        "error_code": worst["error_code"],
        "reason": worst["reason"],
        "smsc_message_ids": [p["sent"]["smsc_message_id"] for p in parts
                             if p["sent"]["smsc_message_id"]],
        "submitted_at": sent["submitted_at"],
        "sent_at": max(p["sent"]["sent_at"] for p in parts),
        "done_at": max(p["done_at"] for p in parts),
    }


def report_of(parts: list[PartOutcome]) -> DeliveryReport:
    """:func:`report_fields` of models, as a model."""
    return DeliveryReport.from_avro_fields(report_fields([p.avro_fields() for p in parts]))


def _partition_count(app: faust.App, topic: str) -> Callable[[], int]:
    """The topic's partition count as the worker's consumer knows it, 0 until it does (it reads
    the topic, so its metadata has it soon after start); kept once known."""
    known = 0

    def count() -> int:
        nonlocal known
        if not known:
            known = app.consumer.topic_partitions(topic) or 0
        return known

    return count


async def _timer_command_keys(rejected_out: OutputTopic, event: faust.EventT[bytes]) -> list[str]:
    """The table keys a timer command names (pipeline/key_timers.py); a batch cut short is
    dead-lettered whole, with its bytes (its keys are commanded again at the next rebuild)."""
    try:
        return command_keys(event.key, event.value)
    except ValueError as exc:
        await reject(event, rejected_out, stage=STAGE, reason_code=UNDECODABLE, detail=str(exc))
        return []


@dataclass
class DeliveryAgents:
    """What :func:`register` leaves for the rest of the worker to read (metrics, logs)."""

    counts: Counter[str] = field(default_factory=Counter)
    correlator_timers: KeyTimers | None = None
    aggregator_timers: KeyTimers | None = None


def register(worker: Worker) -> DeliveryAgents:
    """The ``correlate`` and ``aggregate`` agents, their tables and timers, on ``worker``."""
    agents = DeliveryAgents()
    policy = correlation_policy(worker.settings)
    correlator_timers, parts_out = _register_correlate(worker, agents.counts, policy)
    aggregator_timers = _register_aggregate(worker, agents.counts, policy)
    agents.correlator_timers, agents.aggregator_timers = correlator_timers, aggregator_timers
    counts = agents.counts

    @worker.app.timer(interval=30.0)
    async def log_counts() -> None:
        if counts:
            log.info("delivery: %s; timers pending=%d/%d, keys commanded=%d/%d in %d/%d "
                     "records; sms.dlr.parts: %d parts in %d records",
                     dict(sorted(counts.items())), len(correlator_timers),
                     len(aggregator_timers), correlator_timers.commands_sent,
                     aggregator_timers.commands_sent, correlator_timers.command_records,
                     aggregator_timers.command_records, parts_out.parts, parts_out.records)

    return agents


def _register_correlate(worker: Worker, counts: Counter[str],
                        policy: CorrelationPolicy) -> tuple[KeyTimers, PartBatcher]:
    """``correlate``: submit outcome ⋈ terminal receipt per part, in ``dlr-pending``; its
    timers and the batcher of its parts."""
    app = worker.app
    rejected_out = worker.output(REJECTED)
    dlr_timers_out = worker.output(DLR_TIMERS)
    sent_topic_name, dlr_raw_topic_name = worker.name(SENT), worker.name(DLR_RAW)
    dlr_timers_topic_name, dlr_parts_topic_name = worker.name(DLR_TIMERS), worker.name(DLR_PARTS)
    parts_out = PartBatcher(worker.outputs, dlr_parts_topic_name,
                            _partition_count(app, dlr_parts_topic_name),
                            delay_s=worker.settings.parts_batch_ms / 1000)
    # Held parts are handed over and stored before any offset is committed.
    add_commit_barrier(app, parts_out.flush)
    # No default factory: a missing key reads as None through .get().
    pending = app.Table("dlr-pending", key_type=str, value_type=bytes)

    #: Done markers whose output is sent but not yet stored (so not yet in the table): consulted
    #: before the table so a duplicate arriving meanwhile is dropped. Memory only: after a crash
    #: the replay repeats the output (at-least-once); cleared at every rebalance for the same
    #: reason (the partition's next owner replays).
    _completing: dict[str, PendingEntry] = {}

    def forget_in_flight(_sender: Any, *args: Any, **_: Any) -> None:
        _completing.clear()

    app.on_partitions_revoked.connect(cast(Any, forget_in_flight))

    def _waiting(key: str) -> PendingEntry | None:
        """The key's entry: a completion in flight first, else the table's."""
        marker = _completing.get(key)
        return marker if marker is not None else _entry(pending.get(key), key)

    def _entry(value: bytes | None, key: str) -> PendingEntry | None:
        if value is None:
            return None
        try:
            return PendingEntry.from_bytes(value)
        except StateFormatError as exc:  # written by an older version: start the key afresh
            log.warning("dlr-pending %s: unreadable entry dropped (%s)", key, exc)
            counts["unreadable_entry"] += 1
            return None

    correlator_timers = KeyTimers(
        app, name="correlate", table=pending, command_topic=dlr_timers_out, due_of=_pending_due,
        partitions=_partition_count(app, dlr_timers_topic_name),
    )
    _command_keys = partial(_timer_command_keys, rejected_out)

    def _store(key: str, entry: PendingEntry) -> None:
        pending[key] = entry.to_bytes()
        correlator_timers.schedule(key, entry.due_ms)

    def _store_marker(key: str, marker: PendingEntry) -> None:
        if _completing.get(key) is marker:
            del _completing[key]
        _store(key, marker)

    async def _emit_part(
        event: faust.EventT[bytes], key: str, sent_value: bytes, end: PartEnd, *, now_ms: int,
    ) -> None:
        """Send the part on (spliced from its ``sms.sent`` value, pipeline/part_value.py, or
        else encoded from the model; batched per partition, pipeline/part_batches.py); once it
        is stored, replace the key's entry with a done marker (until then the waiting entry
        stays: a replay repeats the part instead of losing it)."""
        spliced = part_value(sent_value, end)
        if spliced is None:  # a registry's framing: the model's way
            sent = await decode(SubmitOutcome, sent_value)
            message_id, value = sent.message_id, end.outcome(sent).to_avro(dlr_parts_topic_name)
        else:
            message_id, value = spliced
        on_stored = None
        if key:
            marker = done_marker(end.status, now_ms=now_ms,
                                 self_expired=end.reason == SELF_EXPIRED_REASON, policy=policy)
            _completing[key] = marker
            on_stored = partial(_store_marker, key, marker)
        await parts_out.add(message_id, value, event, on_stored)

    @app.agent(worker.topic(SENT, DLR_RAW, DLR_TIMERS))
    async def correlate(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            topic = event.message.topic
            if topic == dlr_timers_topic_name:
                for timed_key in await _command_keys(event):
                    await _on_timer(event, timed_key)
                continue
            if topic == dlr_raw_topic_name and is_receipt_batch(event.value):
                await _each_in_batch(event, receipt_values, ReceiptEvent, _receipt_key_of,
                                     _on_receipt)
                continue
            if topic == sent_topic_name and is_sent_batch(event.value):
                await _each_in_batch(event, sent_values, SubmitOutcome, _sent_key_of, _on_sent)
                continue
            key = (event.key or b"").decode()
            # Fields, not models: both topics are written by our sender, and the Avro reader
            # has checked every value; the correlator reads a few of them.
            is_sent = topic == sent_topic_name
            fields = await decode_fields_or_reject(SubmitOutcome if is_sent else ReceiptEvent,
                                                   event, rejected_out, stage=STAGE)
            if fields is None:
                continue
            raw = event.value or b""
            if is_sent:
                await _on_sent(event, key, fields, raw)
            else:
                await _on_receipt(event, key, fields, raw)

    async def _on_sent(
        event: faust.EventT[bytes], key: str, sent: dict[str, Any], raw: bytes
    ) -> None:
        """A ``SubmitOutcome`` (its fields) of one part."""
        now_ms = _now_ms()
        if sent["outcome"] == SubmitStatus.FAILED:
            # Nothing to wait for; keyed <message id>:<part>, deduplicated by the aggregator.
            counts["submit_failed"] += 1
            await _emit_part(event, "", raw, PartEnd(
                status=DeliveryStatus.FAILED, error_code=sent["command_status"],
                reason=sent["reason"] or sent["status_name"], done_at=sent["sent_at"],
            ), now_ms=now_ms)
            return
        if not sent["receipt_requested"]:
            # No receipt will come: the part ends now, with no waiting entry and no expiry timer.
            # Not keyed for a done marker, like a failed part: the aggregator drops a replayed copy.
            counts["sent_no_receipt"] += 1
            await _emit_part(event, "", raw, accepted_end(sent["sent_at"]), now_ms=now_ms)
            return
        waiting = _waiting(key)
        arrival = on_arrival(waiting, EntryKind.SENT)
        counts[f"sent_{arrival.value.lower()}"] += 1
        if arrival is Arrival.STORE:
            _store(key, pending_sent(raw, sent_at_ms=_ms(sent["sent_at"]),
                                     expires_at_ms=_ms(sent["expires_at"]), policy=policy))
        elif arrival is Arrival.COMPLETE and waiting is not None:
            receipt = await decode_fields(ReceiptEvent, waiting.payload)
            await _emit_part(event, key, raw, receipt_end(receipt), now_ms=now_ms)
        # DUPLICATE / AFTER_DONE: an at-least-once copy; the first one is handled.

    async def _on_receipt(
        event: faust.EventT[bytes], key: str, receipt: dict[str, Any], raw: bytes
    ) -> None:
        """A ``ReceiptEvent`` (its fields) of one part."""
        state = _RECEIPT_STATES[receipt["state"]]
        if terminal_status(state) is None:
            counts[f"intermediate_{state.value.lower()}"] += 1
            return
        now_ms = _now_ms()
        waiting = _waiting(key)
        arrival = on_arrival(waiting, EntryKind.RECEIPT)
        counts[f"receipt_{arrival.value.lower()}"] += 1
        if arrival is Arrival.STORE:
            _store(key, pending_receipt(raw, now_ms=now_ms, policy=policy))
        elif arrival is Arrival.COMPLETE and waiting is not None:
            # The stored submit outcome is spliced, not decoded again (pipeline/part_value.py).
            await _emit_part(event, key, waiting.payload, receipt_end(receipt), now_ms=now_ms)

    async def _each_in_batch(
        event: faust.EventT[bytes], values_of: Callable[[bytes | None], Iterator[bytes]],
        model: type[SubmitOutcome] | type[ReceiptEvent], key_of: Callable[[dict[str, Any]], str],
        handle: Callable[[faust.EventT[bytes], str, dict[str, Any], bytes], Awaitable[None]],
    ) -> None:
        """A batch record of the sender's (schemas/batches.py): each value as if it were a
        record of its own, keyed as the sender keys one. A value that cannot be read is
        rejected alone, a batch cut short whole (with its bytes)."""
        try:
            values = list(values_of(event.value))
        except ValueError as exc:
            await reject(event, rejected_out, stage=STAGE, reason_code=UNDECODABLE,
                         detail=str(exc))
            return
        for value in values:
            fields = await decode_fields_or_reject(model, event, rejected_out, stage=STAGE,
                                                   value=value)
            if fields is not None:
                await handle(event, key_of(fields), fields, value)

    async def _on_timer(event: faust.EventT[bytes], key: str) -> None:
        entry = _waiting(key)
        if entry is None:
            return  # completed (and forgotten) since the command was sent
        now_ms = _now_ms()
        decision = on_timer(entry, now_ms, policy)
        counts[f"timer_{decision.action.value.lower()}"] += 1
        if decision.action is TimerAction.WAIT:
            correlator_timers.schedule(key, entry.due_ms)  # an early or duplicate command
        elif decision.action is TimerAction.EXPIRE:
            expired = PartEnd(
                status=DeliveryStatus.EXPIRED, error_code=None, reason=SELF_EXPIRED_REASON,
                done_at=datetime.fromtimestamp(entry.at_ms / 1000, tz=UTC),  # the validity end
            )
            await _emit_part(event, key, entry.payload, expired, now_ms=now_ms)
        elif decision.action is TimerAction.RETRY and decision.entry is not None:
            _store(key, decision.entry)
        elif decision.action is TimerAction.DEAD_LETTER:
            receipt = await decode(ReceiptEvent, entry.payload)
            waited_s = (now_ms - entry.at_ms) / 1000
            future = await reject(
                event, rejected_out, stage=STAGE, reason_code=REASON_RECEIPT_UNMATCHED,
                detail=f"receipt {receipt.state} for {key} found no submit outcome in "
                       f"{waited_s:.0f} s",
                original=entry.payload, original_topic=dlr_raw_topic_name,
            )
            after_delivery(future, event, partial(_forget, key))
        elif decision.action is TimerAction.FORGET:
            _forget(key)

    def _forget(key: str) -> None:
        pending.pop(key, None)
        correlator_timers.cancel(key)

    @app.timer(interval=1.0)
    async def correlator_tick() -> None:
        await correlator_timers.tick()

    return correlator_timers, parts_out


def _register_aggregate(worker: Worker, counts: Counter[str],
                        policy: CorrelationPolicy) -> KeyTimers:
    """``aggregate``: a message's parts in ``dlr-parts`` until all are in; one report."""
    app = worker.app
    rejected_out, dlr_out = worker.output(REJECTED), worker.output(DLR)
    dlr_parts_timers_out = worker.output(DLR_PARTS_TIMERS)
    dlr_parts_timers_topic_name, dlr_topic_name = worker.name(DLR_PARTS_TIMERS), worker.name(DLR)
    dlr_parts_topic_name = worker.name(DLR_PARTS)
    collected = app.Table("dlr-parts", key_type=str, value_type=bytes)
    #: Messages reported whose report is not yet stored (the correlator's _completing).
    _reporting: set[str] = set()
    # Crash recovery (pipeline/reported_tail.py): the sms.dlr.parts partitions read back since
    # the last assignment; replayable messages already on sms.dlr; partition -> end of its
    # replay, after which the set is no longer needed.
    tail = ReportedTail(kafka_connection(worker.settings), dlr_parts_topic_name, dlr_topic_name,
                        group_id=worker.group_id)
    _checked: set[int] = set()
    _on_dlr: set[str] = set()
    _replay_end: dict[int, int] = {}
    die_at_report = DieAtReport.from_env()

    def forget_in_flight(_sender: Any, *args: Any, **_: Any) -> None:
        _reporting.clear()
        _checked.clear()  # the next owner of each partition reads it back again
        _replay_end.clear()
        _on_dlr.clear()

    async def _read_back(partition: int, offset: int, timestamp_s: float | None) -> None:
        """Which replayable messages of ``partition`` already have a report on sms.dlr."""
        since_ms = int((timestamp_s or datetime.now(UTC).timestamp()) * 1000)
        try:
            scan: TailScan = await asyncio.to_thread(tail.scan, partition, offset, since_ms)
        except Exception:  # Kafka trouble: carry on at-least-once (duplicates, never loss)
            log.exception("reading back sms.dlr for sms.dlr.parts[%d] failed", partition)
            counts["read_back_failed"] += 1
            return
        counts["read_back"] += 1
        if scan.reported:
            _on_dlr.update(scan.reported)
            _replay_end[partition] = scan.replay_end
        log.info("sms.dlr.parts[%d] from offset %d: %d replayable, %d already reported "
                 "(%d reports read in %.2f s)", partition, offset, scan.replayable,
                 len(scan.reported), scan.reports_read, scan.seconds)

    def _past_replay(partition: int, offset: int) -> None:
        """Forget the replay's reported messages once a record past it arrives (the last
        replayed record, at ``end - 1``, still needs them)."""
        end = _replay_end.get(partition)
        if end is not None and offset >= end:
            del _replay_end[partition]
            if not _replay_end:
                _on_dlr.clear()

    app.on_partitions_revoked.connect(cast(Any, forget_in_flight))

    aggregator_timers = KeyTimers(
        app, name="aggregate", table=collected, command_topic=dlr_parts_timers_out,
        due_of=_parts_due, partitions=_partition_count(app, dlr_parts_timers_topic_name),
    )
    _command_keys = partial(_timer_command_keys, rejected_out)

    def _mark_done(key: str) -> None:
        _reporting.discard(key)
        due = _now_ms() + policy.done_ttl_ms
        collected[key] = _DONE + _DUE.pack(due)
        aggregator_timers.schedule(key, due)

    @app.agent(worker.topic(DLR_PARTS, DLR_PARTS_TIMERS))
    async def aggregate(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            if event.message.topic == dlr_parts_timers_topic_name:
                for timed_key in await _command_keys(event):
                    _on_parts_timer(timed_key)
                continue
            partition = event.message.partition
            if partition not in _checked:
                _checked.add(partition)
                await _read_back(partition, event.message.offset, event.message.timestamp)
            elif _replay_end:
                _past_replay(partition, event.message.offset)
            try:
                values = list(unpack(event.value or b""))
            except ValueError as exc:  # a batch cut short: dead-lettered whole, with its bytes
                await reject(event, rejected_out, stage=STAGE, reason_code=UNDECODABLE,
                             detail=str(exc))
                continue
            for value in values:
                await _on_part(event, value)

    async def _on_part(event: faust.EventT[bytes], value: bytes) -> None:
        """One part of a ``sms.dlr.parts`` record: collected, reported, or dropped as a copy."""
        part = await decode_fields_or_reject(PartOutcome, event, rejected_out, stage=STAGE,
                                             value=value)
        if part is None:
            return
        sent = part["sent"]
        key: str = sent["message_id"]
        stored = collected.get(key)
        if key in _reporting or (stored is not None and stored[:1] == _DONE):
            counts["part_after_done"] += 1
            return
        if sent["part_count"] == 1:
            parts = [part]
        else:
            collecting = stored is not None and stored[:1] == _COLLECTING
            blobs = unpack_parts(stored[1:]) if collecting and stored else []
            parts = [await decode_fields(PartOutcome, blob) for blob in blobs]
            if any(p["sent"]["part_index"] == sent["part_index"] for p in parts):
                counts["part_duplicate"] += 1
                return
            parts.append(part)
            if len(parts) < sent["part_count"]:
                collected[key] = _COLLECTING + pack_parts([*blobs, value])
                return
        if key in _on_dlr:  # reported before a crash, its marker lost: mark it now
            _on_dlr.discard(key)
            counts["reported_before_crash"] += 1
            _mark_done(key)
            return
        report = report_fields(parts)
        tenant_id: str = report["tenant_id"]
        future = await dlr_out.send(
            key=tenant_id.encode(), value=DeliveryReport.encode_fields(report, dlr_topic_name),
            headers=[report_summary_header(report["route_id"], report["operator_id"],
                                           tenant_id, str(report["status"]))],
        )
        # Until the report is stored, a replayed part reports again instead of being dropped.
        _reporting.add(key)
        if die_at_report is not None:
            die_at_report.watch(future, key)
        after_delivery(future, event, partial(_mark_done, key))
        counts["reported"] += 1

    def _on_parts_timer(key: str) -> None:
        stored = collected.get(key)
        if stored is None:
            return
        due = _parts_due(stored)
        if due is None:
            return  # still collecting: no timer
        if due <= _now_ms():
            del collected[key]
            aggregator_timers.cancel(key)
        else:
            aggregator_timers.schedule(key, due)

    @app.timer(interval=1.0)
    async def aggregator_tick() -> None:
        await aggregator_timers.tick()

    return aggregator_timers
