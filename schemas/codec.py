"""Avro single-object encoding for every topic value.

Wire form (Avro specification, "Single-object encoding"):
``C3 01`` marker, the 8-byte little-endian CRC-64-AVRO fingerprint of the writer schema's
parsing canonical form, then the Avro binary body. Any Avro reader that has our ``.avsc`` files
can decode it without our code: look the fingerprint up, decode the body.

Decoding is strict and never guesses: a wrong marker, an unknown fingerprint or a truncated body
raises :class:`DecodeError` with a reason code, which the agents turn into a rejection event.
Records written by an older version of a schema (kept in ``schemas/avro/history``) are read with
Avro schema resolution into the current version, so producers and consumers can upgrade apart.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Mapping
from typing import Any, Final

import fastavro

from schemas import specialized
from schemas.registry import AvroContract, contracts, history
from smsflow.domain.errors import PermanentError

MARKER: Final = b"\xc3\x01"
HEADER_LEN: Final = 10


#: What fastavro raises on a corrupt body: a length past the end (EOFError), a bad enum or union
#: index (IndexError), invalid UTF-8, a timestamp out of range (OverflowError, found by
#: tests/fuzz: it escaped as a crash before). Each is the record's fault, never the reader's.
CORRUPT_BODY_ERRORS: tuple[type[Exception], ...] = (
    EOFError, ValueError, IndexError, UnicodeDecodeError, TypeError, OverflowError,
)


class DecodeError(PermanentError, ValueError):
    """A record that cannot be decoded; ``reason_code`` is stable, the message is for humans."""

    def __init__(self, reason_code: str, message: str) -> None:
        super().__init__(message)
        self.reason_code = reason_code


class AvroCodec:
    """Encodes and decodes the values of one contract (schema) as single-object Avro."""

    def __init__(self, contract: AvroContract) -> None:
        self.contract = contract
        self._header = MARKER + contract.fingerprint
        self._readers: dict[bytes, tuple[Any, Any]] = {
            contract.fingerprint: (contract.parsed, None)
        }
        # Generated for this schema (schemas/specialized.py); None keeps fastavro. Older
        # versions are read with fastavro's schema resolution.
        self._read = specialized.reader(contract.schema_json)
        self._write = specialized.writer(contract.schema_json)

    @property
    def header(self) -> bytes:
        """The single-object header every encoded value starts with (marker + fingerprint)."""
        return self._header

    def add_writer_schema(self, fingerprint: bytes, parsed_writer: Any) -> None:
        """Accept records written with an older (compatible) version of this contract."""
        self._readers[fingerprint] = (parsed_writer, self.contract.parsed)

    def encode(self, record: Mapping[str, Any]) -> bytes:
        return self.framed(self.header, record)

    def framed(self, header: bytes, record: Mapping[str, Any]) -> bytes:
        """``header`` followed by the Avro body of ``record`` in the current contract."""
        if self._write is None:
            buffer = io.BytesIO()
            buffer.write(header)
            fastavro.schemaless_writer(buffer, self.contract.parsed, record)
            return buffer.getvalue()
        out = bytearray(header)
        try:
            self._write(out, record)
        except (AttributeError, KeyError, struct.error) as exc:
            # What fastavro raises for a record that does not fit the schema.
            raise ValueError(f"{self.contract.name} record does not fit its schema: {exc!r}") \
                from exc
        return bytes(out)

    def read_current(self, data: bytes, start: int) -> dict[str, Any]:
        """The body at ``data[start:]``, written with the current contract (strict: corrupt or
        trailing bytes raise :class:`DecodeError`)."""
        if self._read is None:
            body = io.BytesIO(data)
            body.seek(start)
            try:
                read = fastavro.schemaless_reader(body, self.contract.parsed, None)
            except CORRUPT_BODY_ERRORS as exc:
                raise self._corrupt(exc) from exc
            if not isinstance(read, dict):
                raise DecodeError("UNDECODABLE", f"{self.contract.name} body is not a record")
            record, end = read, body.tell()
        else:
            try:
                record, end = self._read(data, start)
            except CORRUPT_BODY_ERRORS as exc:
                raise self._corrupt(exc) from exc
        if end != len(data):
            raise DecodeError("UNDECODABLE", f"{self.contract.name} body has trailing bytes")
        return record

    def _corrupt(self, exc: Exception) -> DecodeError:
        return DecodeError("UNDECODABLE", f"corrupt {self.contract.name} body: {exc}")

    def decode(self, data: bytes | None) -> dict[str, Any]:
        if not data:
            raise DecodeError("EMPTY_RECORD", "record value is empty or null")
        if len(data) < HEADER_LEN or data[:2] != MARKER:
            raise DecodeError(
                "UNDECODABLE", "not Avro single-object encoded (missing C3 01 marker)"
            )
        fingerprint = bytes(data[2:HEADER_LEN])
        reader = self._readers.get(fingerprint)
        if reader is None:
            raise DecodeError(
                "SCHEMA_MISMATCH",
                f"record was written with schema fingerprint {fingerprint.hex()}, "
                f"which is not a known version of {self.contract.name}",
            )
        writer_schema, reader_schema = reader
        if reader_schema is None:
            return self.read_current(bytes(data), HEADER_LEN)
        body = io.BytesIO(data[HEADER_LEN:])
        try:
            record = fastavro.schemaless_reader(body, writer_schema, reader_schema)
        except CORRUPT_BODY_ERRORS as exc:
            raise self._corrupt(exc) from exc
        if body.tell() != len(data) - HEADER_LEN:
            raise DecodeError(
                "UNDECODABLE", f"{self.contract.name} body has trailing bytes"
            )
        if not isinstance(record, dict):
            raise DecodeError("UNDECODABLE", f"{self.contract.name} body is not a record")
        return record


_CODECS: dict[str, AvroCodec] = {}


def codec(name: str) -> AvroCodec:
    """The codec of a contract by short name (``SubmitRequest`` …), built once."""
    found = _CODECS.get(name)
    if found is None:
        found = _CODECS[name] = AvroCodec(contracts()[name])
        for old in history():
            if old.name == name and old.fingerprint != found.contract.fingerprint:
                found.add_writer_schema(old.fingerprint, old.parsed)
    return found
