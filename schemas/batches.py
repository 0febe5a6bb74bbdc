"""``sms.dlr.raw`` records that carry several receipts: the sender's receipt batches.

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
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from smsflow import length_prefixed

__all__ = ["RECEIPT_BATCH_MAGIC", "is_receipt_batch", "pack_receipts", "receipt_values"]

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
    if record is None:
        return iter(())
    if not record.startswith(RECEIPT_BATCH_MAGIC):
        return iter((record,))
    return length_prefixed.unpack(record, RECEIPT_BATCH_MAGIC, "sms.dlr.raw receipt batch")
