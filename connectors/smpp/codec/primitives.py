"""SMPP 3.4 wire primitives: errors, C-Octet Strings, TLVs and stream framing.

Everything the PDU bodies of :mod:`connectors.smpp.codec.pdus` and the client's hot-path
readers in :mod:`connectors.smpp.codec.client_bodies` are built from.
"""

from __future__ import annotations

import struct

from connectors.smpp.codec.constants import _TLV_HEAD, HEADER_LEN, MAX_PDU_LEN, Status
from smsflow.domain.errors import PermanentError


class PduError(PermanentError, ValueError):
    """A PDU (or a part of it) is malformed. ``status`` is the SMPP status to answer with."""

    def __init__(self, message: str, status: int = Status.ESME_RSYSERR) -> None:
        super().__init__(message)
        self.status = int(status)


class FrameError(PduError):
    """The byte stream cannot be framed (bad command_length); the connection must be dropped."""

    def __init__(self, message: str) -> None:
        super().__init__(message, Status.ESME_RINVCMDLEN)


# --------------------------------------------------------------------------------------------
# Primitive helpers
# --------------------------------------------------------------------------------------------


def read_cstring(buf: bytes, pos: int, max_len: int | None = None) -> tuple[str, int]:
    """Read a NUL-terminated C-Octet String starting at ``pos``.

    Returns ``(value, position after the NUL)``. ``max_len`` counts the terminating NUL, as in
    the SMPP specification tables (for example 16 for ``system_id``).
    """
    try:
        end = buf.index(b"\x00", pos)
    except ValueError:
        raise PduError(f"unterminated C-Octet String at offset {pos}") from None
    if max_len is not None and end - pos + 1 > max_len:
        raise PduError(f"C-Octet String at offset {pos} longer than {max_len - 1}")
    return buf[pos:end].decode("latin-1"), end + 1


def _cstr(value: str) -> bytes:
    if "\x00" in value:
        raise PduError("C-Octet String value contains NUL")
    return value.encode("latin-1") + b"\x00"


def decode_tlvs(
    buf: bytes, pos: int = 0, end: int | None = None, *, first_wins: bool = False
) -> dict[int, bytes]:
    """Parse optional parameters from ``buf[pos:end]`` into ``{tag: value}``.

    Every tag is kept, known or not; a repeated tag keeps its last value, or its first with
    ``first_wins`` (what the client reads receipts with).
    """
    if end is None:
        end = len(buf)
    tlvs: dict[int, bytes] = {}
    while pos < end:
        if end - pos < 4:
            raise PduError("truncated TLV header", Status.ESME_RINVOPTPARSTREAM)
        tag, length = _TLV_HEAD.unpack_from(buf, pos)
        pos += 4
        if pos + length > end:
            raise PduError(f"TLV 0x{tag:04x} value overruns the PDU", Status.ESME_RINVPARLEN)
        if first_wins:
            tlvs.setdefault(tag, bytes(buf[pos : pos + length]))
        else:
            tlvs[tag] = bytes(buf[pos : pos + length])
        pos += length
    return tlvs


def encode_tlvs(tlvs: dict[int, bytes] | None) -> bytes:
    if not tlvs:
        return b""
    parts: list[bytes] = []
    for tag, value in tlvs.items():
        if len(value) > 0xFFFF:
            raise PduError(f"TLV 0x{tag:04x} value too long")
        parts.append(_TLV_HEAD.pack(tag, len(value)))
        parts.append(value)
    return b"".join(parts)


def tlv_cstring(value: str) -> bytes:
    """Encode a C-Octet String TLV value (including its terminating NUL)."""
    return _cstr(value)


def tlv_str(value: bytes) -> str:
    """Decode a C-Octet String TLV value; tolerates a missing terminator."""
    if value.endswith(b"\x00"):
        value = value[:-1]
    return value.decode("latin-1")


def tlv_int(value: bytes) -> int:
    """Decode a big-endian integer TLV value of any width."""
    return int.from_bytes(value, "big")


class FrameSplitter:
    """Split a byte stream, fed in arbitrary chunks, into complete PDU frames (``bytes``).

    ``feed()`` returns the frames completed by the chunk, in order; a partial frame is kept until
    the rest arrives. A ``command_length`` below 16 or above ``max_len`` raises
    :class:`FrameError` (the stream cannot be resynchronised; drop the connection).
    """

    __slots__ = ("_buf", "max_len")

    def __init__(self, max_len: int = MAX_PDU_LEN) -> None:
        self._buf = b""
        self.max_len = max_len

    @property
    def buffered(self) -> int:
        """Bytes held waiting for the rest of a frame."""
        return len(self._buf)

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        buf = self._buf + data if self._buf else bytes(data)
        n = len(buf)
        pos = 0
        frames: list[bytes] = []
        append = frames.append
        max_len = self.max_len
        unpack_from = _U32.unpack_from
        while n - pos >= 4:
            (length,) = unpack_from(buf, pos)
            if length < HEADER_LEN or length > max_len:
                self._buf = b""
                raise FrameError(f"invalid command_length {length}")
            end = pos + length
            if end > n:
                break
            append(buf[pos:end])
            pos = end
        self._buf = buf[pos:] if pos < n else b""
        return frames


_U32 = struct.Struct(">I")
