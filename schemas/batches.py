"""Records that carry several values: the sender's receipt batches on ``sms.dlr.raw``, and
the submit-outcome batches every reader of ``sms.sent`` accepts.

Why: the correlator is the only reader of ``sms.dlr.raw``, and a record of its own per
receipt made the delivery worker pay faust's per-event cost (and a fetch, and the sender a
produce) once per part. The sender now writes the receipts of a few milliseconds as one record
per partition (connectors/sender/receipt_batches.py; docs/performance.md#batched-receipts).

Framing: :data:`RECEIPT_BATCH_MAGIC` (``FF 52 42 31``, "\\xffRB1"), then each receipt's
``ReceiptEvent`` value (the contract's own encoding: Avro single-object, or the registry's
framing) with its length before it, 4 bytes big-endian. Any reader can split it without our
code and decode each value with the ``ReceiptEvent`` schema. The record has no key; it is
written to the partition Kafka's default partitioner gives every receipt in it
(``<smsc_id>:<smsc_message_id>``), so the co-partitioning with ``sms.sent`` holds receipt by
receipt. A record of one receipt (``SMSFLOW_RECEIPT_BATCH_MS=0``, and older senders) is the
value itself, keyed by the receipt: :func:`receipt_values` reads both.

``sms.sent`` batches (readers first: every reader takes them, no sender writes them yet;
docs/performance.md#batched-receipts): :data:`SENT_BATCH_MAGIC` (``FF 53 42 31``,
"\\xffSB1"), then each ``SubmitOutcome`` value length-prefixed, written like a receipt batch
to the partition of its outcomes' keys (:func:`sent_key`). Its headers hold one
``smsflow-summary`` header per outcome, in the values' order (schemas/summaries.py), which
:func:`sent_entries` hands to each value; a batch whose summaries do not match its values hands
none, and readers decode the values instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from schemas.summaries import SUMMARY_HEADER
from smsflow import length_prefixed

__all__ = [
    "RECEIPT_BATCH_MAGIC", "SENT_BATCH_MAGIC", "is_receipt_batch", "is_sent_batch",
    "pack_receipts", "pack_sent", "receipt_values", "sent_entries", "sent_key", "sent_values",
]

Headers = Sequence[tuple[str, bytes | str | None]]

#: First bytes of a receipt batch: neither Avro single-object (C3 01) nor Confluent (00) framing.
RECEIPT_BATCH_MAGIC = b"\xffRB1"


def pack_receipts(values: Iterable[bytes]) -> bytes:
    """One ``sms.dlr.raw`` record of these ``ReceiptEvent`` values."""
    return length_prefixed.pack(RECEIPT_BATCH_MAGIC, values)


def is_receipt_batch(record: bytes | None) -> bool:
    return record is not None and record.startswith(RECEIPT_BATCH_MAGIC)


def receipt_values(record: bytes | None) -> Iterator[bytes]:
    """The ``ReceiptEvent`` values of an ``sms.dlr.raw`` record: a batch's, or the record
    itself. ``ValueError`` when a batch was cut short."""
    return length_prefixed.values_of(record, RECEIPT_BATCH_MAGIC, "sms.dlr.raw receipt batch")


#: First bytes of a batch of submit outcomes on ``sms.sent``.
SENT_BATCH_MAGIC = b"\xffSB1"


def sent_key(smsc_id: str, smsc_message_id: str | None, message_id: str, part_index: int) -> str:
    """The key of a ``sms.sent`` record of one outcome: ``<smsc_id>:<smsc_message_id>`` when
    the SMSC accepted the part (so it meets its receipt), else ``<message_id>:<part_index>``."""
    if smsc_message_id:
        return f"{smsc_id}:{smsc_message_id}"
    return f"{message_id}:{part_index}"


def pack_sent(values: Iterable[bytes]) -> bytes:
    """One ``sms.sent`` record of these ``SubmitOutcome`` values (headers: one summary each)."""
    return length_prefixed.pack(SENT_BATCH_MAGIC, values)


def is_sent_batch(record: bytes | None) -> bool:
    return record is not None and record.startswith(SENT_BATCH_MAGIC)


def sent_values(record: bytes | None) -> Iterator[bytes]:
    """The ``SubmitOutcome`` values of a ``sms.sent`` record: a batch's, or the record itself.
    ``ValueError`` when a batch was cut short."""
    return length_prefixed.values_of(record, SENT_BATCH_MAGIC, "sms.sent outcome batch")


def sent_entries(record: bytes | None, headers: Iterable[tuple[str, bytes | str | None]] | None,
                 ) -> list[tuple[bytes | None, Headers | None]]:
    """The outcomes of a ``sms.sent`` record, each as ``(value, headers for it)``: the record
    itself with its headers, or each value of a batch with its own summary header (None when the
    batch's summary headers do not pair with its values). ``ValueError`` when a batch was cut
    short."""
    if record is None or not record.startswith(SENT_BATCH_MAGIC):
        return [(record, None if headers is None else list(headers))]
    values = list(sent_values(record))
    summaries = [(name, value) for name, value in headers or () if name == SUMMARY_HEADER]
    if len(summaries) != len(values):
        return [(value, None) for value in values]
    return [(value, [summary]) for value, summary in zip(values, summaries, strict=True)]
