"""Pure parsing of SMPP delivery receipts and SMSC message-id normalisation.

A delivery receipt arrives as a ``deliver_sm`` (or ``data_sm``) whose
``esm_class`` marks it as an SMSC delivery receipt.  Its content can be carried
two ways, often both at once:

* TLVs: ``receipted_message_id`` (0x001E, C-string), ``message_state``
  (0x0427, one octet) and ``network_error_code`` (0x0423, three octets:
  network type + 16-bit error code);
* the de-facto text format of SMPP 3.4 appendix B in ``short_message``
  (or in the ``message_payload`` TLV 0x0424 when ``short_message`` is empty)::

    id:IIIIIIIIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done date:YYMMDDhhmm
    stat:DDDDDDD err:E text:...

Rules (also in ``docs/smpp.md``):

* TLVs win over text when both are present and well formed; text fills in what
  the TLVs do not carry (dates, counters, text).  A malformed TLV is ignored in
  favour of the text; if the text cannot supply the field either, parsing fails.
* Text keys are case-insensitive, spacing around ``:`` is tolerated, fields may
  be missing or reordered (``text:`` always runs to the end), ``submit_date`` /
  ``submitdate`` spellings are accepted.
* Dates are ``YYMMDDhhmm`` or ``YYMMDDhhmmss``, years 2000-2099, interpreted as
  UTC; absent or invalid dates become ``None`` (never an error).
* Message ids are normalised with :func:`normalize_message_id` according to the
  SMSC's :class:`IdFormat`, so ids from ``submit_sm_resp`` and receipts match.

Pure module: bytes/values in, values out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum, StrEnum
from typing import Final

from smsflow.domain.errors import PermanentError

__all__ = [
    "TAG_MESSAGE_PAYLOAD",
    "TAG_MESSAGE_STATE",
    "TAG_NETWORK_ERROR_CODE",
    "TAG_RECEIPTED_MESSAGE_ID",
    "TERMINAL_STATUS_BY_STATE",
    "DeliveryStatus",
    "IdFormat",
    "Receipt",
    "ReceiptError",
    "ReceiptSource",
    "ReceiptState",
    "normalize_message_id",
    "parse_receipt",
    "parse_receipt_datetime",
]

TAG_RECEIPTED_MESSAGE_ID: Final = 0x001E
TAG_NETWORK_ERROR_CODE: Final = 0x0423
TAG_MESSAGE_PAYLOAD: Final = 0x0424
TAG_MESSAGE_STATE: Final = 0x0427


class ReceiptError(PermanentError, ValueError):
    """A receipt (or message id) that cannot be used.

    ``reason`` is a stable machine-readable code:

    * ``RECEIPT_NO_ID`` - neither the TLV nor the text carries a message id;
    * ``RECEIPT_BAD_ID`` - the id does not parse in the SMSC's :class:`IdFormat`;
    * ``RECEIPT_NO_STATE`` - no usable ``message_state`` TLV and no ``stat:``;
    * ``RECEIPT_BAD_TLV`` - a malformed state TLV and no text to fall back to;
    * ``RECEIPT_UNPARSEABLE`` - no TLVs and nothing that looks like a receipt.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class IdFormat(Enum):
    """How one SMSC writes message ids (per direction: submit_sm_resp vs receipt)."""

    HEX = "hex"
    DEC = "dec"
    STR = "str"


class ReceiptState(StrEnum):
    """The SMSC's view of the message, as told by the receipt.

    Values are the Avro symbols of ``ReceiptEvent.state`` (released: do not change).
    """

    DELIVERED = "DELIVERED"
    UNDELIVERABLE = "UNDELIVERABLE"
    EXPIRED = "EXPIRED"
    REJECTED = "REJECTED"
    DELETED = "DELETED"
    UNKNOWN = "UNKNOWN"
    ENROUTE = "ENROUTE"
    ACCEPTED = "ACCEPTED"


class DeliveryStatus(StrEnum):
    """smsflow's terminal delivery statuses.

    Values and order are the Avro symbols of ``PartOutcome.status``/``DeliveryReport.status``
    (released: do not change).

    ACCEPTED is terminal without being a delivery outcome: the SMSC accepted the part and no
    receipt was requested (``registered_delivery`` false), so nothing more will be known. No
    receipt state maps to it. Append only: done markers store the member's position.
    """

    DELIVERED = "DELIVERED"
    UNDELIVERABLE = "UNDELIVERABLE"
    EXPIRED = "EXPIRED"
    REJECTED = "REJECTED"
    FAILED = "FAILED"
    ACCEPTED = "ACCEPTED"  # v2 of the contracts


class ReceiptSource(Enum):
    """Where the id and state of a :class:`Receipt` were read from."""

    TLV = "tlv"  # id and state both from TLVs
    TEXT = "text"  # id and state both from the short_message text
    MIXED = "mixed"  # one from each


#: Receipt state -> our terminal status.  ENROUTE and ACCEPTED are
#: intermediate (absent from the map).  DELETED (the SMSC or an operator
#: removed the message) and UNKNOWN (the SMSC gave up tracking it) are final
#: answers that are not a delivery: both map to FAILED, like Kannel does, so a
#: message never stays open forever on an SMSC that will say nothing more.
TERMINAL_STATUS_BY_STATE: Final[Mapping[ReceiptState, DeliveryStatus]] = {
    ReceiptState.DELIVERED: DeliveryStatus.DELIVERED,
    ReceiptState.UNDELIVERABLE: DeliveryStatus.UNDELIVERABLE,
    ReceiptState.EXPIRED: DeliveryStatus.EXPIRED,
    ReceiptState.REJECTED: DeliveryStatus.REJECTED,
    ReceiptState.DELETED: DeliveryStatus.FAILED,
    ReceiptState.UNKNOWN: DeliveryStatus.FAILED,
}

# message_state TLV values (SMPP 3.4, 5.3.2.35)
_STATE_BY_TLV: Final[Mapping[int, ReceiptState]] = {
    1: ReceiptState.ENROUTE,
    2: ReceiptState.DELIVERED,
    3: ReceiptState.EXPIRED,
    4: ReceiptState.DELETED,
    5: ReceiptState.UNDELIVERABLE,
    6: ReceiptState.ACCEPTED,
    7: ReceiptState.UNKNOWN,
    8: ReceiptState.REJECTED,
}

# stat: values, standard 7-letter forms first, then spellings seen in the wild.
# Anything else maps to UNKNOWN (the raw value is kept in Receipt.raw_stat).
_STATE_BY_STAT: Final[Mapping[str, ReceiptState]] = {
    "DELIVRD": ReceiptState.DELIVERED,
    "EXPIRED": ReceiptState.EXPIRED,
    "DELETED": ReceiptState.DELETED,
    "UNDELIV": ReceiptState.UNDELIVERABLE,
    "ACCEPTD": ReceiptState.ACCEPTED,
    "UNKNOWN": ReceiptState.UNKNOWN,
    "REJECTD": ReceiptState.REJECTED,
    "ENROUTE": ReceiptState.ENROUTE,
    "DELIVERED": ReceiptState.DELIVERED,
    "UNDELIVERABLE": ReceiptState.UNDELIVERABLE,
    "ACCEPTED": ReceiptState.ACCEPTED,
    "REJECTED": ReceiptState.REJECTED,
    "BUFFRED": ReceiptState.ENROUTE,
    "ACKED": ReceiptState.ACCEPTED,
}

_HEX_RE: Final = re.compile(r"(?:0[xX])?([0-9A-Fa-f]+)")
_DEC_RE: Final = re.compile(r"[0-9]+")
_INT_RE: Final = re.compile(r"[0-9]+")
# A key is a known word followed by ':'; values run to the next key.  The
# lookbehind keeps "msgid:" or "xid:" from matching as "id:".
_KEY_RE: Final = re.compile(
    r"(?<![A-Za-z0-9_])"
    r"(id|sub|dlvrd|submit[ _]?date|done[ _]?date|stat|err|text)"
    r"[ \t]*:[ \t]*",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Receipt:
    """A parsed delivery receipt."""

    smsc_message_id: str  # normalised with normalize_message_id
    raw_message_id: str  # as received (NULs and surrounding blanks removed)
    state: ReceiptState
    error_code: int | None  # network error (TLV) or err: value; None when absent
    submitted_at: datetime | None  # UTC
    done_at: datetime | None  # UTC
    source: ReceiptSource
    network_type: int | None = None  # first octet of network_error_code TLV
    raw_stat: str | None = None  # the stat: value as written, if any
    submitted_count: int | None = None  # sub:
    delivered_count: int | None = None  # dlvrd:
    text: str | None = None  # text: (start of the original message)

    @property
    def is_terminal(self) -> bool:
        """True unless the state is intermediate (ENROUTE, ACCEPTED)."""
        return self.state in TERMINAL_STATUS_BY_STATE

    @property
    def terminal_status(self) -> DeliveryStatus | None:
        """Our terminal status, or ``None`` for intermediate receipts."""
        return TERMINAL_STATUS_BY_STATE.get(self.state)


def _clean_id(raw: str) -> str:
    return raw.replace("\x00", "").strip()


def normalize_message_id(raw: str, fmt: IdFormat) -> str:
    """Canonical form of an SMSC message id, for matching resp ids to receipts.

    NULs and surrounding whitespace are removed.  ``HEX`` and ``DEC`` ids are
    parsed as numbers and rendered as a decimal integer string (so ``"0A1B"``
    in hex and ``"2587"`` in decimal compare equal; leading zeros and case
    disappear).  ``STR`` ids are opaque: they are lower-cased and stripped of
    leading zeros (some SMSCs zero-pad receipt ids to a fixed width), with
    ``"0"`` kept for an all-zero id.

    Raises :class:`ReceiptError` (``RECEIPT_NO_ID`` for an empty id,
    ``RECEIPT_BAD_ID`` for an id that is not valid in ``fmt``).
    """
    value = _clean_id(raw)
    if not value:
        raise ReceiptError("RECEIPT_NO_ID", "empty message id")
    if fmt is IdFormat.HEX:
        match = _HEX_RE.fullmatch(value)
        if match is None:
            raise ReceiptError("RECEIPT_BAD_ID", f"not a hex id: {value!r}")
        return str(int(match.group(1), 16))
    if fmt is IdFormat.DEC:
        if _DEC_RE.fullmatch(value) is None:
            raise ReceiptError("RECEIPT_BAD_ID", f"not a decimal id: {value!r}")
        return str(int(value, 10))
    return value.lower().lstrip("0") or "0"


def parse_receipt_datetime(value: str) -> datetime | None:
    """``YYMMDDhhmm[ss]`` (20YY, UTC) -> aware datetime; ``None`` if invalid."""
    digits = value.strip()
    # 10 or 12 ASCII digits (str.isdigit alone also takes other scripts' digits).
    if len(digits) not in (10, 12) or not digits.isascii() or not digits.isdigit():
        return None
    if len(digits) == 10:
        digits += "00"
    try:
        return datetime(
            2000 + int(digits[0:2]),
            int(digits[2:4]),
            int(digits[4:6]),
            int(digits[6:8]),
            int(digits[8:10]),
            int(digits[10:12]),
            tzinfo=UTC,
        )
    except ValueError:
        return None


# The layout of SMPP 3.4 Appendix B, which nearly every SMSC writes: one fullmatch instead of a
# key search per field. A value holds no ':', space or NUL, so no key can hide inside it and the
# general split below would cut the text at exactly these places (a test checks the two agree).
_STANDARD_RE: Final = re.compile(
    r"id:([^\s:\x00]*) sub:([^\s:\x00]*) dlvrd:([^\s:\x00]*)"
    r" submit date:([^\s:\x00]*) done date:([^\s:\x00]*) stat:([^\s:\x00]*)"
    r" err:([^\s:\x00]*)(?: text:[ \t]*(.*?))?\x00*",
    re.DOTALL,
)
_STANDARD_KEYS: Final = ("id", "sub", "dlvrd", "submitdate", "donedate", "stat", "err", "text")


def _text_fields(text: str) -> dict[str, str]:
    """Split receipt text into ``{canonical_key: value}`` (first occurrence wins)."""
    standard = _STANDARD_RE.fullmatch(text)
    if standard is None:
        return _any_text_fields(text)
    fields: dict[str, str] = {}
    for key, value in zip(_STANDARD_KEYS, standard.groups(), strict=True):
        if value is not None:
            fields[key] = value
    return fields


def _any_text_fields(text: str) -> dict[str, str]:
    """:func:`_text_fields` for any layout: keys in any order, case or spacing.

    One pass over the key matches, each value running to the next key's start; keys are made
    canonical with ``str`` methods (a ``re.sub`` per key was a third of a receipt's parse)."""
    fields: dict[str, str] = {}
    key: str | None = None
    value_start = 0
    for match in _KEY_RE.finditer(text):
        if key is not None and key not in fields:
            fields[key] = text[value_start:match.start()].strip(" \t\r\n\x00")
        key = match.group(1).lower().replace(" ", "").replace("_", "")
        if key == "text":
            # text: is free-form and always runs to the end of the message.
            fields.setdefault(key, text[match.end():].rstrip("\x00"))
            return fields
        value_start = match.end()
    if key is not None and key not in fields:
        fields[key] = text[value_start:].strip(" \t\r\n\x00")
    return fields


def _decode_text(short_message: bytes, tlvs: Mapping[int, bytes]) -> str:
    body = short_message or tlvs.get(TAG_MESSAGE_PAYLOAD, b"")
    # Receipt text is ASCII in practice; latin-1 never fails and keeps bytes 1:1.
    return body.decode("latin-1")


def _tlv_id(tlvs: Mapping[int, bytes]) -> str | None:
    raw = tlvs.get(TAG_RECEIPTED_MESSAGE_ID)
    if raw is None:
        return None
    value = _clean_id(raw.split(b"\x00", 1)[0].decode("latin-1"))
    return value or None


def _tlv_state(tlvs: Mapping[int, bytes]) -> tuple[ReceiptState | None, bool]:
    """(state, malformed) from the message_state TLV."""
    raw = tlvs.get(TAG_MESSAGE_STATE)
    if raw is None:
        return None, False
    if not 1 <= len(raw) <= 4:
        return None, True
    state = _STATE_BY_TLV.get(int.from_bytes(raw, "big"))
    return state, state is None


def _tlv_error(tlvs: Mapping[int, bytes]) -> tuple[int | None, int | None]:
    """(network_type, error_code) from the network_error_code TLV."""
    raw = tlvs.get(TAG_NETWORK_ERROR_CODE)
    if raw is None or len(raw) != 3:
        return None, None
    return raw[0], int.from_bytes(raw[1:3], "big")


def _int_or_none(value: str | None) -> int | None:
    if value is None or _INT_RE.fullmatch(value) is None:
        return None
    return int(value)


def _date_or_none(value: str | None) -> datetime | None:
    return None if value is None else parse_receipt_datetime(value)


def parse_receipt(
    short_message: bytes, tlvs: Mapping[int, bytes], *, id_format: IdFormat
) -> Receipt:
    """Parse a delivery receipt from its ``short_message`` and TLVs.

    ``id_format`` is how this SMSC writes ids *in receipts*; the resulting
    ``smsc_message_id`` is normalised with :func:`normalize_message_id`.
    Raises :class:`ReceiptError` when no usable id or state can be found.
    """
    text = _decode_text(short_message, tlvs)
    fields = _text_fields(text)

    tlv_id = _tlv_id(tlvs)
    tlv_state, tlv_state_malformed = _tlv_state(tlvs)

    if tlv_id is None and tlv_state is None and not fields:
        if tlv_state_malformed:
            raise ReceiptError("RECEIPT_BAD_TLV", "malformed message_state TLV")
        raise ReceiptError("RECEIPT_UNPARSEABLE", f"not a receipt: {text[:40]!r}")

    text_id = _clean_id(fields.get("id", "")) or None
    raw_id = tlv_id if tlv_id is not None else text_id
    if raw_id is None:
        raise ReceiptError("RECEIPT_NO_ID", "no receipted_message_id TLV and no id: field")
    smsc_message_id = normalize_message_id(raw_id, id_format)

    raw_stat = fields.get("stat") or None
    if tlv_state is not None:
        state = tlv_state
    elif raw_stat is not None:
        state = _STATE_BY_STAT.get(raw_stat.upper(), ReceiptState.UNKNOWN)
    elif tlv_state_malformed:
        raise ReceiptError("RECEIPT_BAD_TLV", "malformed message_state TLV and no stat:")
    else:
        raise ReceiptError("RECEIPT_NO_STATE", "no message_state TLV and no stat: field")

    id_from_tlv = tlv_id is not None
    state_from_tlv = tlv_state is not None
    if id_from_tlv and state_from_tlv:
        source = ReceiptSource.TLV
    elif not id_from_tlv and not state_from_tlv:
        source = ReceiptSource.TEXT
    else:
        source = ReceiptSource.MIXED

    network_type, error_code = _tlv_error(tlvs)
    if error_code is None:
        error_code = _int_or_none(fields.get("err"))

    return Receipt(
        smsc_message_id=smsc_message_id,
        raw_message_id=raw_id,
        state=state,
        error_code=error_code,
        submitted_at=_date_or_none(fields.get("submitdate")),
        done_at=_date_or_none(fields.get("donedate")),
        source=source,
        network_type=network_type,
        raw_stat=raw_stat,
        submitted_count=_int_or_none(fields.get("sub")),
        delivered_count=_int_or_none(fields.get("dlvrd")),
        text=fields.get("text"),
    )
