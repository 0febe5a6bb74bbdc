"""GSM-7 / UCS-2 detection, encoding and concatenated-SMS segmentation.

Rules (also in ``docs/smpp.md``):

* A text is sent as **GSM-7** when every character is in the GSM 03.38 basic
  set or its extension table; extension characters (``^ { } \\ [ ~ ] | €`` and
  form feed) cost two septets (``ESC`` + code).  Otherwise it is sent as
  **UCS-2** (UTF-16BE, ``data_coding`` 0x08); characters outside the BMP
  (emoji, ...) are surrogate pairs and cost two 16-bit units.
* Single-part limits: 160 septets / 70 UCS-2 units.  Above that the message is
  split into parts of at most 153 septets / 67 units, each prefixed by a 6-byte
  UDH concatenation header ``05 00 03 <ref> <total> <seq>`` (8-bit reference,
  IEI 0x00) and sent with ``esm_class`` UDHI (0x40).  An escape sequence or a
  surrogate pair is never split across parts.
* GSM-7 payloads are **unpacked**: one septet per octet, ``data_coding`` 0x00
  (SMSC default alphabet).  That is what SMSCs expect over SMPP; the SMSC packs
  septets for the air interface (and adds the UDH fill bits itself).  Unpacked
  multipart payloads are at most 6 + 153 = 159 octets, well under the 254-octet
  ``short_message`` limit.

Pure module.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from smsflow.domain.errors import PermanentError

__all__ = [
    "DATA_CODING_GSM7",
    "DATA_CODING_UCS2",
    "ESM_CLASS_UDHI",
    "GSM7_MULTI_SEPTETS",
    "GSM7_SINGLE_SEPTETS",
    "MAX_PARTS",
    "UCS2_MULTI_UNITS",
    "UCS2_SINGLE_UNITS",
    "EncodingError",
    "Segment",
    "SegmentPlan",
    "TextEncoding",
    "concat_udh",
    "decode_payload",
    "detect_encoding",
    "gsm7_decode",
    "gsm7_encode",
    "gsm7_septets",
    "is_gsm7",
    "part_count",
    "plan_segments",
    "reassemble",
    "ucs2_units",
]

DATA_CODING_GSM7: Final = 0x00
DATA_CODING_UCS2: Final = 0x08
ESM_CLASS_UDHI: Final = 0x40

GSM7_SINGLE_SEPTETS: Final = 160
GSM7_MULTI_SEPTETS: Final = 153
UCS2_SINGLE_UNITS: Final = 70
UCS2_MULTI_UNITS: Final = 67
MAX_PARTS: Final = 255  # the 8-bit concatenation header counts up to 255 parts

_ESC: Final = 0x1B
_UDH_CONCAT_8BIT: Final = bytes((0x05, 0x00, 0x03))

# GSM 03.38 basic character set, indexed by septet value (0x1B = escape).
_GSM7_BASIC: Final = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# GSM 03.38 extension table: character -> septet following ESC.
_GSM7_EXTENSION: Final[dict[str, int]] = {
    "\f": 0x0A,
    "^": 0x14,
    "{": 0x28,
    "}": 0x29,
    "\\": 0x2F,
    "[": 0x3C,
    "~": 0x3D,
    "]": 0x3E,
    "|": 0x40,
    "€": 0x65,
}

_ENCODE: Final[dict[str, bytes]] = {
    **{ch: bytes((code,)) for code, ch in enumerate(_GSM7_BASIC) if code != _ESC},
    **{ch: bytes((_ESC, code)) for ch, code in _GSM7_EXTENSION.items()},
}
_DECODE_BASIC: Final[dict[int, str]] = {
    code: ch for code, ch in enumerate(_GSM7_BASIC) if code != _ESC
}
_DECODE_EXTENSION: Final[dict[int, str]] = {code: ch for ch, code in _GSM7_EXTENSION.items()}

assert len(_GSM7_BASIC) == 128


class EncodingError(PermanentError, ValueError):
    """Text or payload that cannot be encoded, decoded or segmented."""


class TextEncoding(StrEnum):
    """Values are the Avro symbols of ``RoutedMessage.encoding`` (released: do not change)."""

    GSM7 = "GSM7"
    UCS2 = "UCS2"

    @property
    def data_coding(self) -> int:
        return DATA_CODING_GSM7 if self is TextEncoding.GSM7 else DATA_CODING_UCS2


@dataclass(frozen=True, slots=True)
class Segment:
    """One SMS part, ready to be put in ``short_message``."""

    seq: int  # 1-based part number
    payload: bytes  # UDH (if any) + encoded body
    udh: bytes  # b"" for a single-part message
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2) in the body

    @property
    def body(self) -> bytes:
        return self.payload[len(self.udh) :]


@dataclass(frozen=True, slots=True)
class SegmentPlan:
    """How a text is sent: encoding, data_coding, parts."""

    encoding: TextEncoding
    data_coding: int
    segments: tuple[Segment, ...]
    units: int  # total septets / UTF-16 units of the text
    reference: int | None  # concatenation reference, None for single-part

    @property
    def part_count(self) -> int:
        """Number of SMS parts: the billing and rate-limit unit."""
        return len(self.segments)

    @property
    def is_multipart(self) -> bool:
        return len(self.segments) > 1

    @property
    def esm_class(self) -> int:
        """``esm_class`` to submit the parts with (UDHI for multipart)."""
        return ESM_CLASS_UDHI if self.is_multipart else 0x00

    @property
    def payloads(self) -> tuple[bytes, ...]:
        return tuple(segment.payload for segment in self.segments)

    def select(self, seqs: Iterable[int]) -> SegmentPlan:
        """The same plan restricted to some parts (e.g. to resend failed parts).

        Each payload keeps its own UDH, so the handset still reassembles the
        full message from parts sent at different times.
        """
        wanted = set(seqs)
        unknown = wanted - {segment.seq for segment in self.segments}
        if unknown:
            raise ValueError(f"no such parts: {sorted(unknown)}")
        if len(wanted) == len(self.segments):
            return self  # every part: the usual first attempt (the sender selects per record)
        segments = tuple(s for s in self.segments if s.seq in wanted)
        if not segments:
            raise ValueError("select() needs at least one part")
        return SegmentPlan(
            encoding=self.encoding,
            data_coding=self.data_coding,
            segments=segments,
            units=sum(s.units for s in segments),
            reference=self.reference,
        )


# The hot paths below run in C: a set test over the text's characters, and str.translate to
# the unpacked septets (as latin-1 code points, one or two per character) then .encode. Both
# measured ~5-7x faster than a Python loop per character (docs/performance.md).
_GSM7_CHARS: Final = frozenset(_ENCODE)
_GSM7_SEPTETS: Final = {ord(ch): code.decode("latin-1") for ch, code in _ENCODE.items()}


def is_gsm7(text: str) -> bool:
    """True when every character of ``text`` is in the GSM-7 basic or extension set."""
    return _GSM7_CHARS.issuperset(text)


def _gsm7_unpacked(text: str) -> bytes:
    """:func:`gsm7_encode` of a text already known to be GSM-7."""
    return text.translate(_GSM7_SEPTETS).encode("latin-1")


def detect_encoding(text: str) -> TextEncoding:
    return TextEncoding.GSM7 if is_gsm7(text) else TextEncoding.UCS2


def gsm7_septets(text: str) -> int:
    """Septet count of a GSM-7 text (extension characters count 2)."""
    return len(gsm7_encode(text))


def gsm7_encode(text: str) -> bytes:
    """Unpacked GSM-7: one septet per octet, extension chars as ``ESC code``."""
    if not is_gsm7(text):
        bad = next(ch for ch in text if ch not in _GSM7_CHARS)
        raise EncodingError(f"not a GSM-7 character: {bad!r}")
    return _gsm7_unpacked(text)


def gsm7_decode(data: bytes) -> str:
    """Inverse of :func:`gsm7_encode`.

    Lenient like handsets: an unknown extension code decodes as the basic
    character (3GPP TS 23.038), a trailing lone ESC is dropped.
    """
    out: list[str] = []
    escaped = False
    for octet in data:
        if octet > 0x7F:
            raise EncodingError(f"not a septet: 0x{octet:02X}")
        if escaped:
            escaped = False
            ext = _DECODE_EXTENSION.get(octet)
            out.append(ext if ext is not None else _DECODE_BASIC.get(octet, " "))
        elif octet == _ESC:
            escaped = True
        else:
            out.append(_DECODE_BASIC[octet])
    return "".join(out)


def _ucs2_encode(text: str) -> bytes:
    try:
        return text.encode("utf-16-be")
    except UnicodeEncodeError as exc:
        raise EncodingError(f"cannot encode as UCS-2: {exc.reason}") from None


def ucs2_units(text: str) -> int:
    """UTF-16 code units of ``text`` (non-BMP characters count 2)."""
    return len(_ucs2_encode(text)) // 2


def concat_udh(reference: int, total: int, seq: int) -> bytes:
    """6-byte concatenation UDH: ``05 00 03 ref total seq`` (8-bit reference)."""
    for name, value, low in (("reference", reference, 0), ("total", total, 1), ("seq", seq, 1)):
        if not low <= value <= 0xFF:
            raise ValueError(f"{name} out of range: {value}")
    if seq > total:
        raise ValueError(f"seq {seq} > total {total}")
    return _UDH_CONCAT_8BIT + bytes((reference, total, seq))


def _pack_units(units: Sequence[bytes], limit: int) -> list[list[bytes]]:
    """Greedily pack indivisible unit groups into parts of at most ``limit`` octets."""
    parts: list[list[bytes]] = [[]]
    size = 0
    for unit in units:
        if size + len(unit) > limit:
            parts.append([])
            size = 0
        parts[-1].append(unit)
        size += len(unit)
    return parts


def _ucs2_groups(text: str) -> list[bytes]:
    # One group per code point: 2 octets in the BMP, 4 (a surrogate pair) above.
    return [_ucs2_encode(ch) for ch in text]


def part_count(text: str, *, max_parts: int = MAX_PARTS) -> int:
    """``plan_segments(text, max_parts=max_parts).part_count``, without encoding the parts when
    the text fits one (the API checks every message of a batch of 1,000 for its part count:
    docs/performance.md#http-api). Raises :class:`EncodingError` like :func:`plan_segments`.

    >>> part_count("hello"), part_count("é" * 71), part_count("a" * 161)
    (1, 2, 2)
    """
    if text:
        if is_gsm7(text):
            if len(text.translate(_GSM7_SEPTETS)) <= GSM7_SINGLE_SEPTETS:
                return 1
        elif len(text) <= UCS2_SINGLE_UNITS:
            try:  # UCS-2 units: one per code point in the BMP, two above it
                units = len(text.encode("utf-16-be")) // 2
            except UnicodeEncodeError:  # a lone surrogate: plan_segments says why
                units = UCS2_SINGLE_UNITS + 1
            if units <= UCS2_SINGLE_UNITS:
                return 1
    return plan_segments(text, max_parts=max_parts).part_count


def plan_segments(text: str, reference: int = 0, *, max_parts: int = MAX_PARTS) -> SegmentPlan:
    """Encode ``text`` and split it into SMS parts.

    ``reference`` is the 8-bit concatenation reference (0-255) written into the
    UDH of every part of a multipart message; callers own its allocation
    (typically a per-destination counter).  It is ignored for single-part
    messages.  Raises :class:`EncodingError` if the text needs more than
    ``max_parts`` parts (at most 255) or cannot be encoded.
    """
    if not 0 <= reference <= 0xFF:
        raise ValueError(f"reference must be 0..255, got {reference}")
    if not 1 <= max_parts <= MAX_PARTS:
        raise ValueError(f"max_parts must be 1..{MAX_PARTS}, got {max_parts}")

    encoding = detect_encoding(text)
    if encoding is TextEncoding.GSM7:
        encoded = _gsm7_unpacked(text)
        # Every character one septet (no extension character): no unit to keep whole.
        uniform = len(encoded) == len(text)
        octets_per_unit = 1
        single, multi = GSM7_SINGLE_SEPTETS, GSM7_MULTI_SEPTETS
    else:
        encoded = _ucs2_encode(text)
        # Every code point in the BMP: two octets each, no surrogate pair to keep whole.
        uniform = len(encoded) == 2 * len(text)
        octets_per_unit = 2
        single, multi = UCS2_SINGLE_UNITS, UCS2_MULTI_UNITS

    total_units = len(encoded) // octets_per_unit
    if total_units <= single:  # most messages: one part, no UDH
        segments: tuple[Segment, ...] = (Segment(1, encoded, b"", total_units),)
        return SegmentPlan(encoding, encoding.data_coding, segments, total_units, None)

    limit = multi * octets_per_unit
    if uniform:  # equal units: the greedy packing is plain slicing (and much cheaper)
        bodies = [encoded[start:start + limit] for start in range(0, len(encoded), limit)]
    else:
        groups = ([_ENCODE[ch] for ch in text] if encoding is TextEncoding.GSM7
                  else _ucs2_groups(text))
        bodies = [b"".join(part) for part in _pack_units(groups, limit)]
    if len(bodies) > max_parts:
        raise EncodingError(f"text needs {len(bodies)} parts, more than the maximum of {max_parts}")
    total = len(bodies)
    built: list[Segment] = []
    for index, body in enumerate(bodies, start=1):
        udh = concat_udh(reference, total, index)
        built.append(Segment(index, udh + body, udh, len(body) // octets_per_unit))
    return SegmentPlan(encoding, encoding.data_coding, tuple(built), total_units, reference)


def decode_payload(payload: bytes, data_coding: int, *, udhi: bool) -> tuple[bytes, str]:
    """Split a ``short_message`` into (UDH, decoded text).

    ``udhi`` says whether ``esm_class`` had the UDHI bit.  Supports data_coding
    0x00 (unpacked GSM-7) and 0x08 (UCS-2).
    """
    udh = b""
    body = payload
    if udhi:
        if not payload:
            raise EncodingError("UDHI set but payload empty")
        udh_len = payload[0] + 1
        if udh_len > len(payload):
            raise EncodingError("UDH longer than payload")
        udh, body = payload[:udh_len], payload[udh_len:]
    if data_coding == DATA_CODING_GSM7:
        return udh, gsm7_decode(body)
    if data_coding == DATA_CODING_UCS2:
        if len(body) % 2:
            raise EncodingError("odd-length UCS-2 payload")
        return udh, body.decode("utf-16-be", errors="surrogatepass")
    raise EncodingError(f"unsupported data_coding 0x{data_coding:02X}")


def reassemble(payloads: Sequence[bytes], data_coding: int, *, udhi: bool) -> str:
    """Decode and join the parts of one message (inverse of :func:`plan_segments`).

    With ``udhi`` every payload must carry an 8-bit concatenation UDH; parts
    are put in the order of their sequence numbers, whatever the input order.
    Without it exactly one payload is expected.  UCS-2 bodies are joined before
    decoding, so a surrogate pair split by another sender still decodes.
    """
    if not udhi:
        if len(payloads) != 1:
            raise EncodingError("several parts but no UDH")
        return _decode_joined([payloads[0]], data_coding)
    total = len(payloads)
    ordered: dict[int, bytes] = {}
    for payload in payloads:
        if len(payload) < 6 or payload[:3] != _UDH_CONCAT_8BIT or payload[4] != total:
            raise EncodingError("part without a matching concatenation UDH")
        ordered[payload[5]] = payload[6:]
    if sorted(ordered) != list(range(1, total + 1)):
        raise EncodingError("missing or duplicate parts")
    return _decode_joined([ordered[i] for i in range(1, total + 1)], data_coding)


def _decode_joined(bodies: Sequence[bytes], data_coding: int) -> str:
    if data_coding == DATA_CODING_GSM7:
        return "".join(gsm7_decode(body) for body in bodies)
    if data_coding == DATA_CODING_UCS2:
        joined = b"".join(bodies)
        if len(joined) % 2:
            raise EncodingError("odd-length UCS-2 payload")
        return joined.decode("utf-16-be", errors="strict")
    raise EncodingError(f"unsupported data_coding 0x{data_coding:02X}")
