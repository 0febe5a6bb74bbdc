"""Byte-level helpers shared by the tracking states (pure, private).

Counters are stored as a flat ``array`` of unsigned 32-bit integers. On the wire a counter array
is *sparse*: a width byte, a bitmap with one bit per counter (set = non-zero), then the non-zero
counters only, in ``width`` byte planes (plane 0 = the low bytes of every non-zero counter, then
plane 1, ...), where ``width`` (1, 2 or 4) is the fewest bytes that hold the largest counter.
Zeros - most of a window: empty buckets, unused histogram bins - cost one bit each.

Every step of encoding runs in C (``bytes.translate``, slicing, big-int shifts,
``itertools.compress``): tens of microseconds for 600 counters, several times faster than a
general-purpose compressor on this data, for a similar size.
"""

from __future__ import annotations

import sys
from array import array
from itertools import compress
from typing import Final

from smsflow.domain.errors import PermanentError

__all__ = ["COUNTER_TYPECODE", "StateFormatError", "decode_counters", "encode_counters"]


class StateFormatError(PermanentError, ValueError):
    """Bytes that are not a state of this kind, version or spec (start from an empty state)."""


def _typecode(size: int) -> str:
    for code in ("B", "H", "I", "L"):
        if array(code).itemsize == size:
            return code
    raise RuntimeError(f"no array typecode of {size} bytes")  # pragma: no cover


COUNTER_TYPECODE: Final = _typecode(4)
_WIDTH_CODES: Final = {1: _typecode(1), 2: _typecode(2), 4: COUNTER_TYPECODE}
_NONZERO: Final = bytes([0] + [1] * 255)
_TO_ASCII: Final = bytes.maketrans(b"\x00\x01", b"01")
_FROM_ASCII: Final = bytes.maketrans(b"01", b"\x00\x01")
_LOW_BYTE_MASKS: dict[int, int] = {}


def _words(counters: array[int]) -> bytes:
    """The counters as little-endian uint32 words."""
    if sys.byteorder == "big":  # pragma: no cover - the wire format is little-endian everywhere
        counters = array(counters.typecode, counters)
        counters.byteswap()
    return counters.tobytes()


def _low_byte_mask(size: int) -> int:
    mask = _LOW_BYTE_MASKS.get(size)
    if mask is None:
        mask = _LOW_BYTE_MASKS[size] = int.from_bytes(b"\x01\x00\x00\x00" * size, "little")
    return mask


def encode_counters(counters: array[int]) -> bytes:
    """``width (1 byte) + bitmap (ceil(n/8) bytes) + width planes of the non-zero counters``."""
    nonzero = array(COUNTER_TYPECODE, filter(None, counters))
    count = len(nonzero)
    if not count:
        return b"\x00"
    size = len(counters)
    # One 0/1 byte per counter: OR the "byte is non-zero" flags of its four bytes.
    nz = int.from_bytes(_words(counters).translate(_NONZERO), "little")
    nz = (nz | nz >> 8 | nz >> 16 | nz >> 24) & _low_byte_mask(size)
    flags = nz.to_bytes(4 * size, "little")[::4]
    bitmap = int(flags.translate(_TO_ASCII), 2).to_bytes((size + 7) // 8, "big")
    values = _words(nonzero)
    if values[3::4].count(0) != count or values[2::4].count(0) != count:
        width = 4
    else:
        width = 1 if values[1::4].count(0) == count else 2
    return bytes((width,)) + bitmap + b"".join(values[plane::4] for plane in range(width))


def decode_counters(data: bytes | memoryview, size: int) -> array[int]:
    """Inverse of :func:`encode_counters` for an array of ``size`` counters."""
    out = array(COUNTER_TYPECODE, bytes(4 * size))
    if len(data) < 1:
        raise StateFormatError("missing counter block")
    width = data[0]
    if width == 0:
        if len(data) != 1:
            raise StateFormatError("trailing bytes after an empty counter block")
        return out
    if width not in _WIDTH_CODES:
        raise StateFormatError(f"bad counter width {width}")
    map_len = (size + 7) // 8
    if len(data) < 1 + map_len:
        raise StateFormatError("truncated counter bitmap")
    bits = int.from_bytes(data[1 : 1 + map_len], "big")
    if bits >> size:
        raise StateFormatError("counter bitmap sets bits beyond the array")
    flags = format(bits, f"0{size}b").encode("ascii").translate(_FROM_ASCII)
    positions = list(compress(range(size), flags))
    count = len(positions)
    body = bytes(data[1 + map_len :])
    if len(body) != width * count:
        raise StateFormatError("counter values do not match the bitmap")
    interleaved = bytearray(width * count)
    for plane in range(width):
        interleaved[plane::width] = body[plane * count : (plane + 1) * count]
    values = array(_WIDTH_CODES[width], bytes(interleaved))
    if sys.byteorder == "big":  # pragma: no cover
        values.byteswap()
    if 0 in values:
        raise StateFormatError("a counter flagged non-zero is zero")
    for position, value in zip(positions, values, strict=True):
        out[position] = value
    return out
