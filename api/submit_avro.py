"""``sms.submitted`` values for the API's accepted messages, encoded without a model per message.

The general path (build a :class:`~schemas.models.SubmitRequest`, dump it, hand the dict to
fastavro) cost ~14 µs per message on this machine: ~6 µs of ``model_construct``, ~1 µs of
``model_dump`` and ~5 µs of ``fastavro.schemaless_writer``, whose per-call set-up dominates for
a ten-field record. A batch of 1,000 paid that 1,000 times (docs/performance.md#http-api).

:class:`SubmitEncoder` writes the same bytes directly: Avro binary is a concatenation of
zig-zag varints and length-prefixed UTF-8, and the fields shared by a whole request (tenant,
``submitted_at``) are encoded once. It is used only for the contract version it was written for
(the fingerprint is checked at construction) and only with the single-object framing; with a
schema registry, or after a contract change, :meth:`SubmitEncoder.for_topic` returns None and
the caller takes the general path. Byte-for-byte equality with fastavro is a unit test
(tests/unit/api/test_submit_avro.py).
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Final

from schemas.codec import AvroCodec
from schemas.models import MessageType, SubmitRequest
from schemas.specialized import timestamp_millis, write_long, write_string

#: The fields, in schema order, this encoder writes (checked against the contract).
FIELDS: Final = (
    "message_id", "tenant_id", "source", "destination", "body", "message_type",
    "submitted_at", "validity_s", "registered_delivery", "client_ref",
)
_SYMBOLS: Final = ("OTP", "TRANSACTIONAL", "MARKETING")


def zigzag(n: int) -> bytes:
    """An Avro ``long``/``int``: zig-zag, then base-128 varint, low group first."""
    out = bytearray()
    write_long(out, n)
    return bytes(out)


def _string(value: str) -> bytes:
    out = bytearray()
    write_string(out, value)
    return bytes(out)


_TYPE_INDEX: Final = {MessageType(symbol): zigzag(i) for i, symbol in enumerate(_SYMBOLS)}


def _timestamp_ms(at: datetime) -> int:
    # fastavro's timestamp-millis of an aware datetime: whole milliseconds since the epoch.
    if at.tzinfo is None:
        raise ValueError("submitted_at must be timezone-aware")
    return timestamp_millis(at)


class SubmitEncoder:
    """Encodes one request's messages; ``tenant_id`` and ``submitted_at`` are shared by all."""

    def __init__(self, header: bytes, tenant_id: str, submitted_at: datetime) -> None:
        self._header = header
        self._tenant = _string(tenant_id)
        self._at = zigzag(_timestamp_ms(submitted_at))

    @staticmethod
    @functools.cache  # one answer per codec object (codecs are built once per contract)
    def header_for(codec: object) -> bytes | None:
        """The single-object header to write, or None when this encoder does not apply (a
        registry's wire codec, or a contract that is not the one written for here)."""
        if not isinstance(codec, AvroCodec):
            return None
        fields = tuple(f["name"] for f in codec.contract.parsed["fields"])
        symbols = tuple(codec.contract.parsed["fields"][5]["type"]["symbols"])
        if fields != FIELDS or symbols != _SYMBOLS:
            return None
        return codec.header

    @classmethod
    def for_request(cls, tenant_id: str, submitted_at: datetime) -> SubmitEncoder | None:
        header = cls.header_for(SubmitRequest.codec())
        return None if header is None else cls(header, tenant_id, submitted_at)

    def encode(
        self, message_id: str, source: str, destination: str, body: str,
        message_type: MessageType, validity_s: int | None, registered_delivery: bool,
        client_ref: str | None,
    ) -> bytes:
        return b"".join((
            self._header,
            _string(message_id),
            self._tenant,
            _string(source),
            _string(destination),
            _string(body),
            _TYPE_INDEX[message_type],
            self._at,
            b"\x00" if validity_s is None else b"\x02" + zigzag(validity_s),
            b"\x01" if registered_delivery else b"\x00",
            b"\x00" if client_ref is None else b"\x02" + _string(client_ref),
        ))
