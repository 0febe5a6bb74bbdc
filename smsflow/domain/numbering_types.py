"""Destination numbers, the values: number types, what resolution returns, and its limits.

:class:`Destination` (a valid, SMS-capable number and its operator) or :class:`NumberRejection`
(reason code and text) is what :func:`smsflow.domain.numbering.resolve` answers.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final, NamedTuple

MAX_E164_DIGITS: Final = 15
MAX_INPUT_CHARS: Final = 64
NON_GEOGRAPHIC_REGION: Final = "001"


class NumberType(StrEnum):
    MOBILE = "MOBILE"
    FIXED_LINE_OR_MOBILE = "FIXED_LINE_OR_MOBILE"
    FIXED_LINE = "FIXED_LINE"
    TOLL_FREE = "TOLL_FREE"
    PREMIUM_RATE = "PREMIUM_RATE"
    SHARED_COST = "SHARED_COST"
    VOIP = "VOIP"
    PERSONAL_NUMBER = "PERSONAL_NUMBER"
    PAGER = "PAGER"
    UAN = "UAN"
    VOICEMAIL = "VOICEMAIL"
    UNKNOWN = "UNKNOWN"


SMS_CAPABLE: Final[frozenset[NumberType]] = frozenset(
    {NumberType.MOBILE, NumberType.FIXED_LINE_OR_MOBILE}
)

# phonenumbers.PhoneNumberType (ints) → ours.
_PN_TYPES: Final[dict[int, NumberType]] = {
    0: NumberType.FIXED_LINE,
    1: NumberType.MOBILE,
    2: NumberType.FIXED_LINE_OR_MOBILE,
    3: NumberType.TOLL_FREE,
    4: NumberType.PREMIUM_RATE,
    5: NumberType.SHARED_COST,
    6: NumberType.VOIP,
    7: NumberType.PERSONAL_NUMBER,
    8: NumberType.PAGER,
    9: NumberType.UAN,
    10: NumberType.VOICEMAIL,
}

# libphonenumber's _number_type_helper order, before fixed line / mobile.
_SPECIAL_DESCS: Final[tuple[tuple[str, NumberType], ...]] = (
    ("premium_rate", NumberType.PREMIUM_RATE),
    ("toll_free", NumberType.TOLL_FREE),
    ("shared_cost", NumberType.SHARED_COST),
    ("voip", NumberType.VOIP),
    ("personal_number", NumberType.PERSONAL_NUMBER),
    ("pager", NumberType.PAGER),
    ("uan", NumberType.UAN),
    ("voicemail", NumberType.VOICEMAIL),
)


class OperatorSource(StrEnum):
    PORTED = "ported"
    PREFIX = "prefix"
    TEST_RANGE = "test-range"
    CARRIER = "carrier"
    NONE = "none"


class Destination(NamedTuple):
    """A valid, SMS-capable destination (a NamedTuple: immutable and cheap to build)."""

    e164: str
    country: str  # ISO 3166-1 alpha-2 of the numbering plan (GG for +447911..., not GB)
    number_type: NumberType
    operator_id: str | None
    operator_source: OperatorSource


class NumberRejection(NamedTuple):
    reason_code: str  # INVALID_NUMBER | UNSUPPORTED_DESTINATION
    detail: str


_KEY_WIDTH: Final = 7  # '+' and six digits: covers most configured and carrier prefixes


def _tails(length: int) -> list[str]:
    return [str(n).zfill(length) for n in range(10**length)] if length else [""]


# Destination(...), NumberRejection(...) without NamedTuple's Python-level __new__
_new_destination = _new_rejection = tuple.__new__
