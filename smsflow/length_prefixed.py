"""Records that carry several values: a magic prefix, then each value with its length (4 bytes,
big-endian) before it. The worker's internal records (``sms.dlr.parts`` batches, timer
commands) and the sender's receipt batches on ``sms.dlr.raw`` (schemas/batches.py): one record
instead of one per value, so the worker pays Kafka's and faust's per-record cost once."""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator

_LENGTH = struct.Struct(">I")


def pack(magic: bytes, values: Iterable[bytes]) -> bytes:
    return magic + b"".join(_LENGTH.pack(len(value)) + value for value in values)


def unpack(record: bytes, magic: bytes, what: str) -> Iterator[bytes]:
    """The values of ``record`` (which starts with ``magic``); ``ValueError`` naming ``what``
    when it was cut short."""
    offset, end = len(magic), len(record)
    while offset < end:
        if offset + _LENGTH.size > end:
            raise ValueError(f"truncated {what}")
        (size,) = _LENGTH.unpack_from(record, offset)
        offset += _LENGTH.size
        if offset + size > end:
            raise ValueError(f"truncated {what}")
        yield record[offset : offset + size]
        offset += size


def values_of(record: bytes | None, magic: bytes, what: str) -> Iterator[bytes]:
    """The values of a record that may be a batch: the batch's when it starts with ``magic``,
    else the record itself as the one value (none for no record); ``ValueError`` naming
    ``what`` when a batch was cut short."""
    if record is None:
        return iter(())
    if not record.startswith(magic):
        return iter((record,))
    return unpack(record, magic, what)
