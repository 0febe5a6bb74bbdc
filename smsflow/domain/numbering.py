"""Destination numbers: E.164 validation, number type and operator resolution (pure).

Theory of operation
-------------------
:func:`build_numbering` compiles, once per configuration snapshot, everything a lookup needs:

* for each country calling code the configuration can route to, libphonenumber's numbering-plan
  metadata (possible lengths, per-type national-number patterns) compiled into one regular
  expression per (region, national-number length, first national digit), holding only the
  types whose pattern can start with that digit. Its alternatives come in libphonenumber's own
  precedence (premium rate, toll free, shared cost, VoIP, personal, pager, UAN, voicemail, fixed
  line / fixed-line-or-mobile, mobile), so a single ``fullmatch`` yields the type
  ``phonenumbers.number_type`` would, and region disambiguation for shared calling codes (+1,
  +44, +7, ...) follows ``region_code_for_number``;
* the operator tables: ported-number overrides, configured prefixes (longest wins), test ranges,
  and ``phonenumbers``' carrier prefixes mapped to configured operators by name.

:func:`resolve` is then usually one dict probe, else a few dict look-ups and one regex match.
The structures behind it:

* prefix-decided verdicts (:func:`_decided_prefixes`): for every calling code and national
  length, a walk over national prefixes follows every metadata pattern with regex derivatives
  and proves where all completions of a prefix get the same valid, SMS-capable (region, type);
  those verdicts sit in the operator index's 7-character entries (with the operator when the
  key decides it too), and in a 9-character table for the few plans that need more digits.
  No sampling: a key is decided only when the patterns' structure shows it. Where a configured
  or carrier prefix longer than the key owns some of its numbers, the operator comes from a
  9-character table of those prefixes (:func:`_deep_operators`) or the key's own fallback, and
  only numbers under a prefix longer than 9 characters need the index's search;

* ``direct``: (first four digits, digit count) → (region, the regex of the types that can
  start with that national digit, where the national number starts) for single-region
  calling codes: one probe, one ``fullmatch(digits, offset)``;
* shared calling codes (+1, +44, +7, ...) dispatch on the national number's leading digits to
  the regions worth trying, in ``region_code_for_number``'s order; a region is left out only
  when its ``leading_digits`` cannot match or none of its patterns can start with those digits
  (a conservative analysis of the pattern, so results never change, only the work);
* the operator index: every configured and carrier prefix of up to 7 characters expanded to
  7-character keys (longest wins), longer prefixes listed under their key: usually one probe.

The compiled metadata decides rejections as well (:func:`_classify_fast`): for ``+`` and digits
that ``phonenumbers.parse`` keeps unchanged (no national prefix it could strip or rewrite), a
region's regex fails exactly when libphonenumber's ``_number_type_helper`` says UNKNOWN, and
the region loop replays ``region_code_for_number``, so an invalid number gets the same
``INVALID_NUMBER`` text (naming the same region, or the calling code) and a valid non-mobile
the same ``UNSUPPORTED_DESTINATION`` as phonenumbers' own verdict. ``phonenumbers.parse``
(≈40 µs; ≈100 µs with validation) runs only off those paths: input that is not ``+`` and ASCII
digits (formatted numbers), calling codes no configured operator or route uses, national
numbers that start like a national prefix (libphonenumber may strip it), fewer than two
national digits, more than 15 digits. The compiled metadata is memoised per calling code for
the process (it derives from phonenumbers' static data only): the first catalogue using a
calling code pays its compilation (up to ~0.5 s for +1 and +44), later catalogues do not.

Policy: only ``MOBILE`` and ``FIXED_LINE_OR_MOBILE`` (plans such as NANP where the two cannot be
told apart) are SMS-capable. Fixed line, toll free, premium rate, shared cost, VoIP, personal,
pager, UAN, voicemail and non-geographic (+800, +882, ...) numbers are ``UNSUPPORTED_DESTINATION``.
Numbers libphonenumber cannot parse or does not consider valid are ``INVALID_NUMBER``, except
in an operator's ``test_prefixes`` (e.g. Ofcom's drama range +447700900), which are accepted
as mobile numbers of that operator without numbering-plan validation.

Operator resolution, first hit wins: ported-number override (``Operator.ported_in``), longest
configured prefix (``Operator.prefixes`` and ``test_prefixes``), longest carrier prefix from
``phonenumbers`` whose carrier name matches a configured operator of the same calling code
(``Operator.name``, the name without a trailing country token such as "UK"/"DE", or one of
``Operator.carrier_names``; a name two operators share maps to neither). A longer carrier prefix
of an unconfigured carrier shadows a shorter one of a configured operator. No hit leaves the
operator unresolved (``operator_id is None``): the route engine then only considers routes that
cover the whole destination country.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from typing import Any, Final, NamedTuple

import phonenumbers
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneMetadata, PhoneNumberFormat
from phonenumbers.carrierdata import CARRIER_DATA

from smsflow.domain.config_view import OperatorView

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


# --- compiled numbering-plan metadata ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Region:
    code: str
    leading_digits: re.Pattern[str] | None
    # national-number length → its first digit → one regex of the types that can match
    by_length: Mapping[int, Mapping[str, re.Pattern[str]]]
    # national-number length → the metadata patterns (general desc and every type) a number of
    # that length is matched against: the input of the prefix analysis (_decided_prefixes)
    patterns: Mapping[int, tuple[str, ...]]
    # ... and those one of which must match for an SMS-capable verdict (mobile; fixed line when
    # the plan does not tell the two apart): the walk skips prefixes where none can
    capable: Mapping[int, tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class _CallingCode:
    code: str
    regions: tuple[_Region, ...]  # in region_code_for_number's order
    national_prefix: re.Pattern[str] | None  # main region's national_prefix_for_parsing
    national_prefix_first: frozenset[str]  # digits a non-empty national prefix can start with
    # whether the main region has a national_prefix_transform_rule: parse() may rewrite a
    # number even where the national prefix pattern matches the empty string
    transform: bool
    length: int  # len(code)
    single: _Region | None  # the only region, when there is one
    # Shared calling codes (+1, +44, +7, ...): the regions worth trying for a national number,
    # by its first ``dispatch_width`` digits; each with "decided by leading digits". Regions
    # whose leading_digits cannot match are left out, so order and outcome are unchanged.
    dispatch: Mapping[str, tuple[tuple[_Region, bool], ...]]
    dispatch_default: tuple[tuple[_Region, bool], ...]
    dispatch_width: int  # 0: no dispatch, walk every region


_DIGITS: Final = frozenset("0123456789")
_sre: Any = importlib.import_module("re._parser")  # first-digit analysis of metadata patterns


def _first_digits(pattern: str) -> frozenset[str]:
    """Digits a non-empty match of ``pattern`` can start with; all ten when unsure.

    Used only to leave out alternatives that provably cannot match, so an unknown construct
    costs speed, never correctness.
    """
    try:
        first = _first_of(list(_sre.parse(pattern)))
    except Exception:  # any surprise in the private parser: be conservative
        return _DIGITS
    if first is None or first[1]:
        return _DIGITS
    return first[0] & _DIGITS


def _first_of(items: list[tuple[Any, Any]]) -> tuple[frozenset[str], bool] | None:
    """(first characters, can match empty) of a parsed sequence, or None if unknown."""
    chars: set[str] = set()
    for op, arg in items:
        item = _first_item(str(op), arg)
        if item is None:
            return None
        chars |= item[0]
        if not item[1]:
            return frozenset(chars), False
    return frozenset(chars), True


def _first_item(op: str, arg: Any) -> tuple[frozenset[str], bool] | None:
    if op == "LITERAL":
        return frozenset(chr(arg)), False
    if op == "IN":
        chars: set[str] = set()
        for kind, value in arg:
            kind = str(kind)
            if kind == "LITERAL":
                chars.add(chr(value))
            elif kind == "RANGE":
                chars.update(chr(c) for c in range(value[0], value[1] + 1))
            elif kind == "CATEGORY" and str(value) == "CATEGORY_DIGIT":
                chars |= _DIGITS
            else:
                return None
        return frozenset(chars), False
    if op == "BRANCH":
        union: set[str] = set()
        empty = False
        for branch in arg[1]:
            first = _first_of(list(branch))
            if first is None:
                return None
            union |= first[0]
            empty = empty or first[1]
        return frozenset(union), empty
    if op == "SUBPATTERN":
        return _first_of(list(arg[3]))
    if op in ("MAX_REPEAT", "MIN_REPEAT"):
        low, _, sub = arg
        first = _first_of(list(sub))
        if first is None:
            return None
        return first[0], low == 0 or first[1]
    return None


_PREFIX_SET_LIMIT: Final = 20_000


def _prefix_set(pattern: str, width: int) -> frozenset[str] | None:
    """A superset of the ``width``-character prefixes of strings ``pattern`` matches, or None
    if unknown (too large or an unsupported construct). Look-arounds are ignored, which can only
    add prefixes, so "not in the set" proves "cannot match"."""
    try:
        found = _prefix_seq(list(_sre.parse(pattern)), {""}, width)
    except Exception:  # any surprise in the private parser: unknown
        return None
    if found is None:
        return None
    return frozenset(p for p in found if len(p) >= width)


def _prefix_seq(items: list[tuple[Any, Any]], heads: set[str], width: int) -> set[str] | None:
    for op, arg in items:
        if all(len(h) >= width for h in heads):
            break
        result = _prefix_item(str(op), arg, heads, width)
        if result is None or len(result) > _PREFIX_SET_LIMIT:
            return None
        heads = result
    return heads


def _prefix_item(op: str, arg: Any, heads: set[str], width: int) -> set[str] | None:
    done = {h for h in heads if len(h) >= width}
    open_ = heads - done
    if op == "LITERAL":
        return done | {h + chr(arg) for h in open_}
    if op == "IN":
        chars = _first_item("IN", arg)
        return None if chars is None else done | {h + c for h in open_ for c in chars[0]}
    if op == "BRANCH":
        out = set(done)
        for branch in arg[1]:
            extended = _prefix_seq(list(branch), set(open_), width)
            if extended is None:
                return None
            out |= extended
        return out
    if op == "SUBPATTERN":
        extended = _prefix_seq(list(arg[3]), set(open_), width)
        return None if extended is None else done | extended
    if op in ("MAX_REPEAT", "MIN_REPEAT"):
        low, high, sub = arg
        out, current = set(done), set(open_)
        for count in range(width + 1):
            out |= {h for h in current if len(h) >= width}
            current = {h for h in current if len(h) < width}
            if count >= low:
                out |= current  # may stop repeating here
            if not current or count >= high:
                break
            extended = _prefix_seq(list(sub), current, width)
            if extended is None:
                return None
            current = extended
        return out
    if op in ("ASSERT", "ASSERT_NOT", "AT"):
        return heads  # zero width; ignoring the condition only adds prefixes
    return None


def _usable(desc: object, length: int) -> str | None:
    """The desc's pattern if a national number of ``length`` digits can match it."""
    if desc is None:
        return None
    pattern: str | None = getattr(desc, "national_number_pattern", None)
    lengths: tuple[int, ...] = tuple(getattr(desc, "possible_length", ()) or ())
    if not pattern or (lengths and length not in lengths):
        return None
    return pattern


def _alternatives(metadata: PhoneMetadata, length: int) -> list[tuple[str, frozenset[str]]]:
    """(regex alternative, digits it can start with), in libphonenumber's precedence."""
    found = [
        (f"(?P<{kind.name}>{pattern})", _first_digits(pattern))
        for attr, kind in _SPECIAL_DESCS
        if (pattern := _usable(getattr(metadata, attr), length)) is not None
    ]
    fixed = _usable(metadata.fixed_line, length)
    mobile = _usable(metadata.mobile, length)
    if metadata.same_mobile_and_fixed_line_pattern:
        if fixed is not None:
            found.append((f"(?P<FIXED_LINE_OR_MOBILE>{fixed})", _first_digits(fixed)))
    else:
        # Fixed line first; if it matches, mobile decides FIXED_LINE_OR_MOBILE vs FIXED_LINE.
        # Each pattern is evaluated at most once.
        if fixed is not None:
            either = f"(?P<FIXED_LINE_OR_MOBILE>{mobile})|" if mobile is not None else ""
            found.append(
                (f"(?=(?:{fixed})\\Z)(?:{either}(?P<FIXED_LINE>\\d*))", _first_digits(fixed))
            )
        if mobile is not None:
            found.append((f"(?P<MOBILE>{mobile})", _first_digits(mobile)))
    return found


def _compile_region(region: str, metadata: PhoneMetadata) -> _Region:
    general = metadata.general_desc
    lengths = sorted(set(general.possible_length or ())) if general is not None else []
    compiled: dict[str, re.Pattern[str]] = {}
    by_length: dict[int, dict[str, re.Pattern[str]]] = {}
    patterns: dict[int, tuple[str, ...]] = {}
    capable: dict[int, tuple[str, ...]] = {}
    for length in lengths:
        general_pattern = _usable(general, length)
        if general_pattern is None:
            continue
        patterns[length] = (general_pattern, *(
            pattern
            for attr in (*(a for a, _ in _SPECIAL_DESCS), "fixed_line", "mobile")
            if (pattern := _usable(getattr(metadata, attr), length)) is not None
        ))
        capable[length] = tuple(
            pattern
            for attr in ("mobile", "fixed_line")
            if attr == "mobile" or metadata.same_mobile_and_fixed_line_pattern
            if (pattern := _usable(getattr(metadata, attr), length)) is not None
        )
        alternatives = _alternatives(metadata, length)
        by_digit: dict[str, re.Pattern[str]] = {}
        for digit in sorted(_DIGITS & _first_digits(general_pattern)):
            chosen = [alt for alt, first in alternatives if digit in first]
            if not chosen:
                continue
            source = f"(?=(?:{general_pattern})\\Z)(?:{'|'.join(chosen)})"
            if source not in compiled:
                compiled[source] = re.compile(source)
            by_digit[digit] = compiled[source]
        if by_digit:
            by_length[length] = by_digit
    leading = metadata.leading_digits
    return _Region(
        region, re.compile(leading) if leading else None, by_length, patterns, capable
    )


@cache
def _compiled_calling_code(code: int) -> _CallingCode | None:
    """Derived from phonenumbers' static metadata only, so memoising it is pure."""
    regions = COUNTRY_CODE_TO_REGION_CODE.get(code)
    if not regions or regions[0] == NON_GEOGRAPHIC_REGION:
        return None
    compiled = []
    for region in regions:
        metadata = PhoneMetadata.metadata_for_region_or_calling_code(code, region)
        if metadata is not None:
            compiled.append(_compile_region(region, metadata))
    main = PhoneMetadata.metadata_for_region_or_calling_code(code, regions[0])
    prefix = main.national_prefix_for_parsing if main is not None else None
    width, dispatch, default = _dispatch(compiled) if len(compiled) > 1 else (0, {}, ())
    return _CallingCode(
        str(code),
        tuple(compiled),
        re.compile(prefix) if prefix else None,
        _first_digits(prefix) if prefix else frozenset(),
        bool(main is not None and main.national_prefix_transform_rule),
        len(str(code)),
        compiled[0] if len(compiled) == 1 else None,
        dispatch,
        default,
        width,
    )


_MAX_DISPATCH_WIDTH: Final = 5


def _dispatch(
    regions: list[_Region],
) -> tuple[int, dict[str, tuple[tuple[_Region, bool], ...]], tuple[tuple[_Region, bool], ...]]:
    """Candidate regions by leading digits, when every leading_digits pattern is a plain
    bounded-width prefix pattern (so ``match`` on the first ``width`` digits decides it)."""
    width = 0
    for region in regions:
        if region.leading_digits is None:
            continue
        parsed = _sre.parse(region.leading_digits.pattern)
        ops = {str(op) for op in _ops(list(parsed))}
        high = parsed.getwidth()[1]
        if ops & {"ASSERT", "ASSERT_NOT", "AT", "GROUPREF"} or high > _MAX_DISPATCH_WIDTH:
            return 0, {}, ()
        width = max(width, high)
    default = tuple((r, False) for r in regions if r.leading_digits is None)
    # A region without leading digits is tried by full validation; skip it for keys none of
    # its type patterns can start with (e.g. the US plan for Puerto Rico's 787).
    starts = {id(r): _region_prefixes(r, width) for r in regions if r.leading_digits is None}
    dispatch = {}
    shared: dict[tuple[int, ...], tuple[tuple[_Region, bool], ...]] = {}
    def possible(region: _Region, key: str) -> bool:
        if region.leading_digits is not None:
            return region.leading_digits.match(key) is not None
        start = starts[id(region)]
        return start is None or key in start

    for key in _tails(width):
        candidates = tuple(
            (r, r.leading_digits is not None) for r in regions if possible(r, key)
        )
        if candidates != default:
            dispatch[key] = shared.setdefault(tuple(id(r) for r, _ in candidates), candidates)
    return width, dispatch, default


def _region_prefixes(region: _Region, width: int) -> frozenset[str] | None:
    """Superset of the ``width``-digit starts of the region's valid numbers; None: unknown."""
    union: set[str] = set()
    for by_digit in region.by_length.values():
        for regex in set(by_digit.values()):
            found = _prefix_set(regex.pattern, width)
            if found is None:
                return None
            union |= found
    return frozenset(union)


def _ops(items: list[tuple[Any, Any]]) -> list[Any]:
    """Every opcode in a parsed pattern, nested ones included."""
    found = []
    for op, arg in items:
        found.append(op)
        for value in arg if isinstance(arg, tuple | list) else ():
            if hasattr(value, "data"):
                found += _ops(list(value.data))
            elif isinstance(value, list) and value and isinstance(value[0], tuple):
                found += _ops(value)
            elif isinstance(value, list):
                for branch in value:
                    if hasattr(branch, "data"):
                        found += _ops(list(branch.data))
    return found


_GROUP_TYPES: Final[dict[str, NumberType]] = {kind.name: kind for kind in NumberType}


class _Invalid(NamedTuple):
    """A number libphonenumber parses unchanged and finds valid in no region. ``region`` is
    what ``region_code_for_number`` names (None: no region, the verdict names the calling
    code)."""

    region: str | None


def _parsed_unchanged(code: _CallingCode, national: str) -> bool:
    """Whether ``phonenumbers.parse`` keeps ``national`` as the national significant number:
    the main region's national prefix pattern does not match, or matches the empty string
    without a transformation (``_maybe_strip_national_prefix_carrier_code``)."""
    if national[:1] not in code.national_prefix_first or code.national_prefix is None:
        return True  # a non-empty match must start with one of those digits
    stripped = code.national_prefix.match(national)
    if stripped is None:
        return True
    if stripped.end():
        return False
    groups = stripped.groups()
    return not (code.transform and groups and groups[-1] is not None)


def _classify_fast(
    code: _CallingCode, national: str
) -> tuple[str, NumberType] | _Invalid | None:
    """Exactly phonenumbers' verdict on ``+<code><national>``: (region, type) of a valid
    number, :class:`_Invalid` for a number valid in no region; None → ask phonenumbers.

    ``region_code_for_number`` and ``number_type`` replayed on the compiled patterns: regions
    in its order, the first whose leading digits match (or, without leading digits, whose
    patterns match) decides; a region's regex fails exactly when its general description or
    every type pattern fails (``_number_type_helper`` → UNKNOWN, so not valid). The caller
    keeps numbers shorter than two national digits or longer than E.164 off this path (parse
    refuses or they are checked elsewhere). One function with the region loop inlined: this is
    most of a routing decision's cost when the prefix tables do not decide a number.
    """
    if not _parsed_unchanged(code, national):
        return None  # parse() may strip or rewrite a national prefix: let phonenumbers decide
    length, first = len(national), national[:1]
    single = code.single
    if single is not None:  # region_code_for_number names the only region, valid or not
        by_digit = single.by_length.get(length)
        regex = by_digit.get(first) if by_digit is not None else None
        match = regex.fullmatch(national) if regex is not None else None
        if match is not None:
            kind = _GROUP_TYPES.get(match.lastgroup or "")
            return (single.code, kind) if kind is not None else None
        return _Invalid(single.code)
    width = code.dispatch_width
    if width and length >= width:
        for region, decided in code.dispatch.get(national[:width], code.dispatch_default):
            by_digit = region.by_length.get(length)
            regex = by_digit.get(first) if by_digit is not None else None
            match = regex.fullmatch(national) if regex is not None else None
            if match is not None:
                kind = _GROUP_TYPES.get(match.lastgroup or "")
                return (region.code, kind) if kind is not None else None
            if decided:
                return _Invalid(region.code)  # its leading digits match: it is the region
        return _Invalid(None)  # regions left out of the dispatch cannot be the region
    for region in code.regions:
        leading = region.leading_digits
        if leading is not None and leading.match(national) is None:
            continue
        by_digit = region.by_length.get(length)
        regex = by_digit.get(first) if by_digit is not None else None
        match = regex.fullmatch(national) if regex is not None else None
        if match is not None:
            kind = _GROUP_TYPES.get(match.lastgroup or "")
            return (region.code, kind) if kind is not None else None
        if leading is not None:
            return _Invalid(region.code)  # the region is decided by its leading digits
    return _Invalid(None)


# --- prefix-decided verdicts ---------------------------------------------------------------------
#
# libphonenumber's patterns are almost all prefix conditions followed by free digits
# (``7(?:[1-3]\d\d|4[0-5]\d)\d{6}``), so a number's (region, type) is usually decided by its
# first few digits. _decided_prefixes walks the national prefixes of each calling code and
# length digit by digit, following every pattern with regex derivatives (what is left to match
# after each digit), and so *proves*, never samples, when every completion of a prefix gets the
# same verdict; _classify_fast then classifies one representative completion. The SMS-capable
# verdicts land in the operator index under its 7-character keys, so resolve() answers most
# numbers with the one dict probe it makes for the operator anyway: no regex, no region loop on
# the hot path. Whatever is not proven decided keeps the regex path.

# Constructs the derivatives do not model: look-arounds, anchors, back-references,
# conditionals, negated classes. A pattern with any of them never settles (nothing under it is
# decided).
_UNANALYSABLE: Final = re.compile(r"\(\?[=!<(]|\(\?P=|\\[1-9bBAZ]|[\^$]")
_MAX_FREE_REPEAT: Final = 20
_MAX_RESIDUALS: Final = 64  # more alternatives in flight than this: give up on the prefix

_Items = tuple[tuple[str, Any], ...]  # a parsed pattern as (opcode name, argument) pairs
_Key = tuple[tuple[str, int, int, int], ...]


class _Test(NamedTuple):
    """One condition a verdict depends on, after some digits: a metadata pattern (full match of
    the national number) or a prefix-match pattern (leading digits, national prefix)."""

    leading: bool
    residuals: tuple[_Items, ...]  # what may still match; () → no completion matches


class _Derivatives:
    """Regex derivatives over ``re``'s parse trees, memoised by node identity for one walk
    (the parse trees live as long as this object, so identities stay valid)."""

    def __init__(self) -> None:
        self._parsed: list[Any] = []  # keeps every parse tree (and so every id) alive
        self._items: dict[int, _Items] = {}
        self._chars: dict[int, frozenset[str] | None] = {}
        self._free: dict[_Key, frozenset[int] | None] = {}
        self._null: dict[_Key, bool] = {}
        # Residuals are interned (one object per _key), so the walk memoises by id().
        self._interned: dict[_Key, _Items] = {}
        self._derived: dict[tuple[int, str], tuple[_Items, ...] | None] = {}
        self._stepped: dict[tuple[object, ...], _Test | None] = {}
        self._settled: dict[tuple[object, ...], bool] = {}

    def test(self, pattern: str, leading: bool) -> _Test | None:
        if _UNANALYSABLE.search(pattern):
            return None
        parsed = _parsed(pattern)
        self._parsed.append(parsed)
        return _Test(leading, (self.intern(self.items(parsed)),))

    def intern(self, items: _Items) -> _Items:
        return self._interned.setdefault(_key(items), items)

    def items(self, parsed: Any) -> _Items:
        found = self._items.get(id(parsed))
        if found is None:
            self._parsed.append(parsed)
            found = self._items[id(parsed)] = tuple((str(op), arg) for op, arg in parsed)
        return found

    def chars(self, arg: Any) -> frozenset[str] | None:
        if id(arg) not in self._chars:
            self._parsed.append(arg)
            first = _first_item("IN", arg)
            self._chars[id(arg)] = first[0] if first is not None else None
        return self._chars[id(arg)]

    def free_lengths(self, items: _Items) -> frozenset[int] | None:
        """The lengths of the digit strings ``items`` matches, if it matches *every* digit
        string of those lengths (``\\d{2,3}``, ``[0-9]``); None if it constrains a digit."""
        key = _key(items)
        if key not in self._free:
            self._free[key] = self._free_lengths(items)
        return self._free[key]

    def _free_lengths(self, items: _Items) -> frozenset[int] | None:
        lengths = frozenset({0})
        for kind, arg in items:
            step: frozenset[int] | None
            if kind == "ANY":
                step = frozenset({1})
            elif kind == "IN":
                chars = self.chars(arg)
                step = frozenset({1}) if chars is not None and _DIGITS <= chars else None
            elif kind == "SUBPATTERN":
                step = self.free_lengths(self.items(arg[3]))
            elif kind == "BRANCH":
                parts = [self.free_lengths(self.items(branch)) for branch in arg[1]]
                step = None if None in parts else frozenset().union(*(p for p in parts if p))
            elif kind in ("MAX_REPEAT", "MIN_REPEAT"):
                low, high, sub = arg
                inner = self.free_lengths(self.items(sub))
                if inner is None or high > _MAX_FREE_REPEAT:
                    return None
                repeated: set[int] = set()
                current = frozenset({0})
                for count in range(high + 1):
                    if count >= low:
                        repeated |= current
                    current = frozenset(a + b for a in current for b in inner)
                step = frozenset(repeated)
            else:
                step = None
            if not step:
                return None
            lengths = frozenset(a + b for a in lengths for b in step)
        return lengths

    def nullable(self, items: _Items) -> bool:
        """Whether ``items`` matches the empty string."""
        key = _key(items)
        found = self._null.get(key)
        if found is None:
            found = self._null[key] = all(self._nullable_item(kind, arg) for kind, arg in items)
        return found

    def _nullable_item(self, kind: str, arg: Any) -> bool:
        if kind == "SUBPATTERN":
            return self.nullable(self.items(arg[3]))
        if kind == "BRANCH":
            return any(self.nullable(self.items(branch)) for branch in arg[1])
        if kind in ("MAX_REPEAT", "MIN_REPEAT"):
            return bool(arg[0] == 0 or self.nullable(self.items(arg[2])))
        return False

    def derive(self, items: _Items, digit: str) -> tuple[_Items, ...] | None:
        """What is left to match of an interned residual after ``digit``: the alternatives
        (Brzozowski derivative), interned and without duplicates; None for a construct not
        modelled."""
        key = (id(items), digit)
        if key not in self._derived:
            found = self._derive(items, digit)
            self._derived[key] = None if found is None else tuple(
                {id(r): r for r in map(self.intern, found)}.values()
            )
        return self._derived[key]

    def _derive(self, items: _Items, digit: str) -> list[_Items] | None:
        if not items:
            return []
        (kind, arg), rest = items[0], items[1:]
        if kind == "LITERAL":
            return [rest] if chr(arg) == digit else []
        if kind == "ANY":
            return [rest]
        if kind == "IN":
            chars = self.chars(arg)
            if chars is None:
                return None
            return [rest] if digit in chars else []
        if kind == "SUBPATTERN":
            return self._derive(self.items(arg[3]) + rest, digit)
        if kind == "BRANCH":
            out: list[_Items] = []
            for branch in arg[1]:
                found = self._derive(self.items(branch) + rest, digit)
                if found is None:
                    return None
                out += found
            return out
        if kind in ("MAX_REPEAT", "MIN_REPEAT"):
            low, high, sub = arg
            sub_items = self.items(sub)
            if self.nullable(sub_items):
                return None  # x* with an empty-matching x: not needed, not modelled
            out = []
            if low == 0:
                skipped = self._derive(rest, digit)
                if skipped is None:
                    return None
                out += skipped
            if high > 0:
                again = ((kind, (max(low - 1, 0), high - 1, sub)),) if high > 1 else ()
                once = self._derive(sub_items + again + rest, digit)
                if once is None:
                    return None
                out += once
            return out
        return None

    def step(self, test: _Test, digit: str) -> _Test | None:
        """The test after one more digit; None when the analysis gives up."""
        key = (test.leading, *map(id, test.residuals), digit)
        if key not in self._stepped:
            self._stepped[key] = self._step(test, digit)
        return self._stepped[key]

    def _step(self, test: _Test, digit: str) -> _Test | None:
        out: dict[int, _Items] = {}  # interned: duplicates dropped by identity
        for residual in test.residuals:
            found = self.derive(residual, digit)
            if found is None:
                return None
            for derived in found:
                out[id(derived)] = derived
        if len(out) > _MAX_RESIDUALS:
            return None
        return _Test(test.leading, tuple(out.values()))

    def settled(self, test: _Test) -> bool:
        key = (test.leading, *map(id, test.residuals))
        found = self._settled.get(key)
        if found is None:
            found = self._settled[key] = self._is_settled(test)
        return found

    def _is_settled(self, test: _Test) -> bool:
        """Whether every completion, of the walk's length, gets the same outcome from here:
        nothing can match; or (prefix match) something matched already; or (full match) every
        alternative left is "any digits" of some lengths, so the length alone decides."""
        if not test.residuals:
            return True
        if test.leading:
            return any(self.nullable(residual) for residual in test.residuals)
        return all(self.free_lengths(residual) is not None for residual in test.residuals)

    def matched(self, test: _Test) -> bool:
        return any(self.nullable(residual) for residual in test.residuals)


@cache
def _parsed(pattern: str) -> Any:
    """``re``'s parse tree of a metadata pattern (static data: memoised per process)."""
    return _sre.parse(pattern)


def _key(items: _Items) -> _Key:
    """Identity of a residual: its parse-tree nodes, and the counts left of repeats."""
    return tuple(
        (kind, arg[0], arg[1], id(arg[2])) if kind in ("MAX_REPEAT", "MIN_REPEAT")
        else (kind, 0, 0, id(arg))
        for kind, arg in items
    )


Verdict = tuple[str, NumberType]  # (region, type)
Verdicts = Mapping[int, Verdict]  # by E.164 length
_DEEP_KEY_WIDTH: Final = 9


@cache
def _decided_prefixes(calling_code: int) -> tuple[Mapping[str, Verdicts], Mapping[str, Verdicts]]:
    """The SMS-capable verdicts every number under a key gets, by E.164 length: keys of
    _KEY_WIDTH characters ('+' and digits; the operator index's), and for prefixes only
    decided further in, keys of _DEEP_KEY_WIDTH. Memoised per process (static metadata only).
    """
    code = _compiled_calling_code(calling_code)
    depth = _KEY_WIDTH - 1 - len(str(calling_code))  # national digits inside a key
    deep = _DEEP_KEY_WIDTH - 1 - len(str(calling_code))
    if code is None or depth < 1:
        return {}, {}
    tables: tuple[dict[str, dict[int, Verdict]], dict[str, dict[int, Verdict]]] = ({}, {})
    verdicts: dict[Verdict, Verdict] = {}
    d = _Derivatives()
    for length in sorted({n for region in code.regions for n in region.patterns}):
        e164_length = 1 + code.length + length
        if e164_length > MAX_E164_DIGITS + 1 or length <= depth:
            continue
        tests: list[_Test | None] = []
        for region in code.regions:
            if region.leading_digits is not None and len(code.regions) > 1:
                tests.append(d.test(region.leading_digits.pattern, True))
            tests += [d.test(p, False) for p in region.patterns.get(length, ())]
        capable = [d.test(p, False) for r in code.regions for p in r.capable.get(length, ())]
        if None in tests or None in capable:
            continue
        live = [t for t in tests if t is not None and not d.settled(t)]
        # _classify_fast defers a number to phonenumbers when its national prefix pattern
        # matches a non-empty start (libphonenumber may strip it). Followed like the others:
        # a prefix is decided only once that pattern provably matches nothing non-empty.
        national_prefix = (
            d.test(code.national_prefix.pattern, True) if code.national_prefix is not None
            else None
        )
        cleared = _Test(True, ())  # the national prefix pattern can no longer match
        # could: the capable tests, to prune where no mobile pattern can match any more (never
        # accepted there); None when their analysis gave up (no pruning below).
        stack: list[tuple[str, list[_Test], _Test, list[_Test] | None]] = [
            ("", live, cleared, [t for t in capable if t is not None])
        ]
        while stack:
            prefix, live, strip, could = stack.pop()
            for digit in "0123456789":
                still: list[_Test] | None = None
                if could is not None:
                    stepped_could = [d.step(t, digit) for t in could]
                    if None not in stepped_could:
                        still = [t for t in stepped_could if t is not None and t.residuals]
                        if not still:
                            continue
                stripped: _Test | None = strip
                if not prefix and digit in code.national_prefix_first:
                    # None: an unanalysable national prefix, the number keeps the regex path
                    stripped = national_prefix and d.step(national_prefix, digit)
                elif strip.residuals:
                    stripped = d.step(strip, digit)
                if stripped is None or d.matched(stripped):
                    continue  # a non-empty national prefix may match
                stepped = [d.step(test, digit) for test in live]
                if None in stepped:
                    continue
                after = [t for t in stepped if t is not None and not d.settled(t)]
                national = prefix + digit
                if after or stripped.residuals:
                    if len(national) < min(deep, length):
                        stack.append((national, after, stripped, still))
                    continue
                verdict = _classify_fast(code, national.ljust(length, "0"))
                if (
                    verdict is None or isinstance(verdict, _Invalid)
                    or verdict[1] not in SMS_CAPABLE
                ):
                    continue  # rejections stay libphonenumber's own verdict (slow path)
                verdict = verdicts.setdefault(verdict, verdict)
                shallow = len(national) <= depth
                if not shallow and length < deep:
                    continue  # the number is shorter than a deep key
                table, width = (tables[0], depth) if shallow else (tables[1], deep)
                for tail in _tails(width - len(national)):
                    table.setdefault("+" + code.code + national + tail, {})[e164_length] = verdict
    # Most keys share their verdicts by length: one object each (memory, and _OperatorIndex.of
    # derives its entries once per distinct map).
    shared: dict[tuple[tuple[int, Verdict], ...], Verdicts] = {}
    keyed, deeper = (
        {key: shared.setdefault(tuple(sorted(v.items())), v) for key, v in table.items()}
        for table in tables
    )
    return keyed, deeper


def _parse(destination: str) -> phonenumbers.PhoneNumber | NumberRejection:
    try:
        return phonenumbers.parse(destination, None)
    except phonenumbers.NumberParseException as exc:
        return NumberRejection(
            "INVALID_NUMBER", f"{destination!r} is not an international number (+CC...): {exc}"
        )


def _not_valid(e164: str, region: str | None, calling_code: str) -> NumberRejection:
    """The rejection of a number valid in no region (the same text on every path)."""
    where = f"the {region} numbering plan" if region else f"calling code +{calling_code}"
    return _new_rejection(
        NumberRejection, ("INVALID_NUMBER", f"{e164} is not a valid number in {where}")
    )


def _classify_slow(e164: str) -> tuple[str, str, NumberType] | NumberRejection:
    """libphonenumber's verdict: (E.164 as it normalises it, region, type), or why not valid."""
    number = _parse(e164)
    if isinstance(number, NumberRejection):
        return number
    region = phonenumbers.region_code_for_number(number)
    if region is None or not phonenumbers.is_valid_number(number):
        return _not_valid(e164, region, str(number.country_code))
    kind = _PN_TYPES.get(phonenumbers.number_type(number), NumberType.UNKNOWN)
    return phonenumbers.format_number(number, PhoneNumberFormat.E164), region, kind


# --- the plan ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _PrefixTable:
    """Longest-prefix match with few probes: the number's first ``stem`` characters index the
    lengths of the prefixes that start with them, so a look-up tries only those."""

    entries: Mapping[str, str | None]
    stem: int
    lengths: Mapping[str, tuple[int, ...]]  # stem → lengths of the prefixes under it, longest first

    @classmethod
    def of(cls, entries: Mapping[str, str | None]) -> _PrefixTable:
        stem = min((len(prefix) for prefix in entries), default=0)
        lengths: dict[str, set[int]] = {}
        for prefix in entries:
            lengths.setdefault(prefix[:stem], set()).add(len(prefix))
        return cls(
            dict(entries), stem,
            {key: tuple(sorted(found, reverse=True)) for key, found in lengths.items()},
        )

    def longest(self, e164: str) -> str | None:
        """Value of the longest prefix of ``e164``; '' when that prefix maps to None."""
        lengths = self.lengths.get(e164[: self.stem])
        if lengths is None:
            return None
        entries = self.entries
        for length in lengths:
            hit = entries.get(e164[:length], e164)  # e164 as a "missing" sentinel
            if hit is not e164:
                return hit if hit is not None else ""
        return None


_KEY_WIDTH: Final = 7  # '+' and six digits: covers most configured and carrier prefixes

# What resolve() returns after the E.164 string: (region, type, operator id, how it was found).
_Resolved = tuple[str, NumberType, str | None, "OperatorSource"]
_NOTHING_DECIDED: Final[Mapping[int, _Resolved | Verdict]] = {}
_UNOWNED: Final[tuple[str | None, OperatorSource]] = (None, OperatorSource.NONE)
_NO_VERDICTS: Final[Mapping[str, Verdicts]] = {}


def _operator_at_key(
    entry: tuple[tuple[int, ...], str | None, tuple[int, ...], str | None],
) -> tuple[str | None, OperatorSource] | None:
    """The operator every number under a key resolves to (before ported numbers), or None
    when a longer prefix may decide it. Same rules as _OperatorIndex.find."""
    configured_long, operator, carrier_long, carried = entry
    if configured_long:
        return None
    if operator is not None:
        return operator, OperatorSource.PREFIX
    if carrier_long:
        return None
    return (carried, OperatorSource.CARRIER) if carried else (None, OperatorSource.NONE)


# An operator index entry; see _OperatorIndex.keys.
_Entry = tuple[
    tuple[int, ...], str | None, tuple[int, ...], str | None,
    Mapping[int, _Resolved | Verdict], tuple[str | None, OperatorSource],
]


@dataclass(frozen=True, slots=True)
class _OperatorIndex:
    """Configured prefixes (first) and carrier prefixes (fallback), resolved in one probe.

    Every prefix up to ``width`` characters is expanded to all ``width``-character keys it
    covers (the longest prefix wins each key); longer prefixes are listed by length under
    their first ``width`` characters, probed before the expanded answer.
    """

    width: int
    # key → (longer configured lengths, configured operator, longer carrier lengths,
    #        carrier operator: id, '' for a carrier no operator matches, None for no carrier,
    #        the whole answer by E.164 length where the key decides it: _Resolved,
    #        the operator of numbers under no longer prefix: configured, else carrier)
    keys: Mapping[str, _Entry]
    configured: _PrefixTable
    carrier: _PrefixTable

    @classmethod
    def of(
        cls,
        configured: Mapping[str, str],
        carrier: Mapping[str, str | None],
        decided: Mapping[str, Verdicts] = _NO_VERDICTS,
        test_prefixes: Iterable[str] = (),
    ) -> _OperatorIndex:
        width = _KEY_WIDTH
        short: list[dict[str, str]] = [{}, {}]  # configured, carrier: key → operator ('' none)
        long: list[dict[str, set[int]]] = [{}, {}]
        for which, table in enumerate((configured, carrier)):
            for prefix in sorted(table, key=len):  # longer prefixes overwrite shorter ones
                if len(prefix) > width:
                    long[which].setdefault(prefix[:width], set()).add(len(prefix))
                    continue
                value = table[prefix] or ""
                for tail in _tails(width - len(prefix)):
                    short[which][prefix + tail] = value
        # Keys a test range touches: test ranges skip validation, so the key decides nothing.
        tested = {p[:width] for p in test_prefixes if len(p) >= width}
        short_tests = tuple(p for p in test_prefixes if len(p) < width)
        # one resolved map per distinct (verdict map, operator decision)
        shared: dict[tuple[int, object], Mapping[int, _Resolved | Verdict]] = {}
        longest = [
            {key: tuple(sorted(lengths, reverse=True)) for key, lengths in table.items()}
            for table in long
        ]
        nothing: tuple[tuple[int, ...], str | None, tuple[int, ...], str | None] = (
            (), None, (), None,
        )
        keys: dict[str, _Entry] = {}
        fallbacks: dict[tuple[str | None, str | None], tuple[str | None, OperatorSource]] = {}
        for key in {*short[0], *short[1], *long[0], *long[1], *decided}:
            entry = nothing
            if key in short[0] or key in short[1] or key in long[0] or key in long[1]:
                entry = (
                    longest[0].get(key, ()), short[0].get(key),
                    longest[1].get(key, ()), short[1].get(key),
                )
            pair = (entry[1], entry[3])
            fallback = fallbacks.get(pair)
            if fallback is None:
                fallback = fallbacks[pair] = (
                    (entry[1], OperatorSource.PREFIX) if entry[1] is not None
                    else (entry[3], OperatorSource.CARRIER) if entry[3] else _UNOWNED
                )
            verdicts = decided.get(key)
            if verdicts is None or key in tested or key.startswith(short_tests):
                keys[key] = (*entry, _NOTHING_DECIDED, fallback)
                continue
            operator = _operator_at_key(entry) if entry is not nothing else _UNOWNED
            resolved = shared.get((id(verdicts), operator))
            if resolved is None:
                resolved = shared[(id(verdicts), operator)] = {
                    # The operator too when the key decides it, else resolve() looks it up.
                    length: (*verdict, *operator) if operator is not None else verdict
                    for length, verdict in verdicts.items()
                }
            keys[key] = (*entry, resolved, fallback)
        return cls(width, keys, _PrefixTable.of(configured), _PrefixTable.of(carrier))

    def find(self, e164: str) -> tuple[str | None, OperatorSource]:
        if len(e164) < self.width:  # shorter than a key: plain longest-prefix search
            operator = self.configured.longest(e164)
            if operator:
                return operator, OperatorSource.PREFIX
            carried = self.carrier.longest(e164)
            return (carried, OperatorSource.CARRIER) if carried else (None, OperatorSource.NONE)
        entry = self.keys.get(e164[: self.width])
        if entry is None:
            return None, OperatorSource.NONE
        configured_long, operator, carrier_long, carried, _, _ = entry
        for length in configured_long:
            hit = self.configured.entries.get(e164[:length])
            if hit is not None:
                return hit, OperatorSource.PREFIX
        if operator is not None:
            return operator, OperatorSource.PREFIX
        for length in carrier_long:
            hit = self.carrier.entries.get(e164[:length], e164)
            if hit is not e164:
                return (hit, OperatorSource.CARRIER) if hit else (None, OperatorSource.NONE)
        if carried:
            return carried, OperatorSource.CARRIER
        return None, OperatorSource.NONE


@dataclass(frozen=True, slots=True)
class NumberingPlan:
    """Immutable lookup structures derived once per configuration snapshot."""

    ported: Mapping[str, str]  # E.164 → operator id
    operators: _OperatorIndex  # configured and test prefixes, then carrier prefixes
    test_prefixes: _PrefixTable  # test prefix → operator id
    calling_codes: Mapping[str, _CallingCode]  # compiled plans, by calling code digits
    code_by_lead: Mapping[str, _CallingCode]  # the same, by the first three digits of a number
    # Fast path of the fast path: (first four digits, digit count) → (region, type regex,
    # where the national number starts), for single-region codes and leads without a national
    # prefix. Everything else takes _classify_fast.
    direct: Mapping[tuple[str, int], tuple[str, re.Pattern[str], int]]
    operator_country: Mapping[str, str]
    # _DEEP_KEY_WIDTH-character key → E.164 length → verdict, for numbers the operator index
    # key does not decide (_decided_prefixes); test ranges left out
    deep: Mapping[str, Verdicts] = field(default_factory=dict)
    # _DEEP_KEY_WIDTH-character key → its numbers' operator where that differs from the
    # operator index key's fallback (None: ask _OperatorIndex.find); see _deep_operators
    deep_operators: Mapping[str, tuple[str | None, OperatorSource] | None] = field(
        default_factory=dict
    )


def _normalise_name(name: str) -> str:
    return "".join(ch for ch in name.casefold() if ch.isalnum())


_COUNTRY_TOKENS: Final[dict[str, tuple[str, ...]]] = {"GB": ("uk",), "US": ("usa",)}


def _carrier_aliases(operator: OperatorView) -> set[str]:
    aliases = {_normalise_name(operator.name)}
    words = operator.name.split()
    country_tokens = (operator.country.casefold(), *_COUNTRY_TOKENS.get(operator.country, ()))
    if len(words) > 1 and words[-1].casefold() in country_tokens:
        aliases.add(_normalise_name(" ".join(words[:-1])))
    aliases.update(_normalise_name(name) for name in operator.carrier_names)
    aliases.discard("")
    return aliases


def _carrier_table(operators: Iterable[OperatorView]) -> dict[str, str | None]:
    by_code: dict[str, dict[str, str | None]] = {}  # calling code → alias → operator (None: tie)
    for operator in operators:
        calling_code = _calling_code_of(operator.country)
        if not calling_code:
            continue
        aliases = by_code.setdefault(str(calling_code), {})
        for alias in _carrier_aliases(operator):
            aliases[alias] = operator.id if aliases.get(alias, operator.id) == operator.id else None
    carriers = _carrier_index()
    return {
        prefix: aliases.get(name)
        for code, aliases in by_code.items()
        for prefix, name in carriers.get(code, ())
    }


@cache
def _carrier_index() -> dict[str, tuple[tuple[str, str], ...]]:
    """phonenumbers' carrier data by calling code: ('+' prefix, normalised carrier name)."""
    index: dict[str, list[tuple[str, str]]] = {}
    codes = {str(code) for code in COUNTRY_CODE_TO_REGION_CODE}
    for prefix, names in CARRIER_DATA.items():
        code = next((prefix[:n] for n in (1, 2, 3) if prefix[:n] in codes), None)
        if code is not None:
            name = names.get("en") or next(iter(names.values()), "")
            index.setdefault(code, []).append(("+" + prefix, _normalise_name(name)))
    return {code: tuple(entries) for code, entries in index.items()}


def _calling_code_of(country: str) -> int:
    return int(phonenumbers.country_code_for_region(country) or 0)


def build_numbering(
    operators: Iterable[OperatorView], countries: Iterable[str] = ()
) -> NumberingPlan:
    """Compile the numbering plan for ``operators`` and the extra ``countries`` routes cover."""
    operators = tuple(operators)
    ported: dict[str, str] = {}
    prefixes: dict[str, str] = {}
    tests: dict[str, str] = {}
    for operator in operators:
        for number in operator.ported_in:
            ported[number] = operator.id
        for prefix in operator.prefixes:
            prefixes[prefix] = operator.id
        for prefix in operator.test_prefixes:
            tests[prefix] = operator.id
    prefixes.update(tests)
    compiled: dict[str, _CallingCode] = {}
    for country in {*(o.country for o in operators), *countries}:
        code = _compiled_calling_code(_calling_code_of(country))
        if code is not None:
            compiled[code.code] = code
    carrier = _carrier_table(operators)
    index = _OperatorIndex.of(
        prefixes, carrier,
        {
            key: verdicts
            for code in compiled.values()
            for key, verdicts in _decided_prefixes(int(code.code))[0].items()
        },
        tests,
    )
    return NumberingPlan(
        ported=ported,
        operators=index,
        deep=_deep_verdicts(compiled.values(), tests),
        deep_operators=_deep_operators(index),
        test_prefixes=_PrefixTable.of(tests),
        calling_codes=compiled,
        code_by_lead={
            code.code + tail: code
            for code in compiled.values()
            for tail in _tails(3 - len(code.code))
        },
        direct=_direct(compiled.values()),
        operator_country={o.id: o.country for o in operators},
    )


def _deep_verdicts(codes: Iterable[_CallingCode], tests: Mapping[str, str]) -> dict[str, Verdicts]:
    found = {
        key: verdicts
        for code in codes
        for key, verdicts in _decided_prefixes(int(code.code))[1].items()
    }
    for prefix in tests:  # test ranges skip validation: nothing under them is decided
        for key in [k for k in found if k.startswith(prefix) or prefix.startswith(k)]:
            del found[key]
    return found


def _deep_operators(index: _OperatorIndex) -> dict[str, tuple[str | None, OperatorSource] | None]:
    """Operators of numbers under _DEEP_KEY_WIDTH-character keys, where they differ from their
    operator index key's ``fallback``: keys under a configured or carrier prefix longer than
    the index key (longest wins, configured before carrier, as ``_OperatorIndex.find``), and
    None for keys some prefix longer than the key starts with (only ``find`` can tell).
    """
    width = _DEEP_KEY_WIDTH
    keys = index.keys
    found: dict[str, tuple[str | None, OperatorSource] | None] = {}
    for table, source in ((index.carrier.entries, _CARRIER), (index.configured.entries, _PREFIX)):
        for prefix in sorted((p for p in table if _KEY_WIDTH < len(p) <= width), key=len):
            parent = keys.get(prefix[:_KEY_WIDTH])
            if source is _CARRIER and parent is not None and parent[1] is not None:
                continue  # a configured prefix owns the index key: carrier data is not read
            operator = table[prefix]
            value = (operator, source) if operator else _UNOWNED
            for tail in _tails(width - len(prefix)):
                found[prefix + tail] = value
    for table in (index.carrier.entries, index.configured.entries):
        for prefix in table:
            if len(prefix) > width:
                found[prefix[:width]] = None
    return found


def _direct(
    codes: Iterable[_CallingCode],
) -> dict[tuple[str, int], tuple[str, re.Pattern[str], int]]:
    table = {}
    for code in codes:
        region = code.single
        if region is None:
            continue
        for tail in _tails(4 - code.length):
            if tail[0] in code.national_prefix_first:
                continue
            for length, by_digit in region.by_length.items():
                regex = by_digit.get(tail[0])
                total = code.length + length
                if regex is not None and 4 <= total <= MAX_E164_DIGITS:
                    table[(code.code + tail, total)] = (region.code, regex, code.length)
    return table


def _tails(length: int) -> list[str]:
    return [str(n).zfill(length) for n in range(10**length)] if length else [""]


def _canonical(destination: str) -> str | NumberRejection:
    if len(destination) > MAX_INPUT_CHARS:
        return NumberRejection("INVALID_NUMBER", f"destination of {len(destination)} characters")
    number = _parse(destination)
    if isinstance(number, NumberRejection):
        return number
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def _unsupported(e164: str, region: str, kind: NumberType) -> NumberRejection:
    label = _TYPE_LABELS[kind]
    where = "non-geographic" if region == NON_GEOGRAPHIC_REGION else region
    return _new_rejection(NumberRejection, (
        "UNSUPPORTED_DESTINATION", f"{e164} is a {label} number ({where}), not SMS-capable"
    ))


_TYPE_LABELS: Final[dict[NumberType, str]] = {
    kind: kind.value.lower().replace("_", "-") for kind in NumberType
}
# Destination(...), NumberRejection(...) without NamedTuple's Python-level __new__
_new_destination = _new_rejection = tuple.__new__


def resolve(plan: NumberingPlan, destination: str) -> Destination | NumberRejection:
    """Validate ``destination``, normalise it to E.164 and find its operator.

    >>> plan = build_numbering([])
    >>> resolve(plan, "+44 800 123 4567").reason_code
    'UNSUPPORTED_DESTINATION'
    """
    # Fast path: a key whose every number of this length is proven to be the same valid,
    # SMS-capable type of the same operator (_decided_prefixes): one probe, no regex. Keys only
    # hold '+' and digits, and ported numbers override the operator.
    entry = plan.operators.keys.get(destination[:_KEY_WIDTH])
    if entry is not None:
        resolved = entry[4].get(len(destination))
        if resolved is None and plan.deep:
            resolved = plan.deep.get(destination[:_DEEP_KEY_WIDTH], _NOTHING_DECIDED).get(
                len(destination)
            )
        if (
            resolved is not None and destination.isascii() and destination[1:].isdigit()
            and (not plan.ported or destination not in plan.ported)
        ):
            if len(resolved) == 4:
                return _new_destination(Destination, (destination, *resolved))
            # (region, type) only: a longer configured or carrier prefix may own the number.
            # Prefixes up to the deep key's width are resolved per deep key; only numbers
            # under a longer one need the index's search.
            owned = plan.deep_operators.get(destination[:_DEEP_KEY_WIDTH], entry[5])
            if owned is None:
                owned = plan.operators.find(destination)
            return _new_destination(Destination, (destination, *resolved, *owned))
    digits = destination[1:]
    if destination[:1] == "+" and digits.isdigit() and digits.isascii():
        e164 = destination
    else:
        canonical = _canonical(destination)
        if isinstance(canonical, NumberRejection):
            return canonical
        e164, digits = canonical, canonical[1:]
    too_long = len(digits) > MAX_E164_DIGITS  # phonenumbers may still strip a national prefix
    if plan.test_prefixes.entries and not too_long:
        tested = plan.test_prefixes.longest(e164)
        if tested:
            owner = plan.ported.get(e164, tested)
            how = OperatorSource.PORTED if owner != tested else OperatorSource.TEST_RANGE
            return Destination(e164, plan.operator_country[owner], NumberType.MOBILE, owner, how)
    # Compiled metadata: exactly phonenumbers' verdict, valid or not, for '+' and digits that
    # parse() keeps as they are (_classify_fast); rejections need two national digits (fewer:
    # parse() itself refuses, with its own message).
    region: str | None = None
    direct = plan.direct.get((digits[:4], len(digits)))
    if direct is not None:
        match = direct[1].fullmatch(digits, direct[2])
        if match is None:
            if len(digits) - direct[2] >= 2:
                return _not_valid(e164, direct[0], digits[: direct[2]])
        else:
            found = _GROUP_TYPES.get(match.lastgroup or "")
            if found is not None:
                region, kind = direct[0], found
    code = plan.code_by_lead.get(digits[:3]) if region is None and not too_long else None
    if code is not None:
        national = digits[code.length:]
        single = code.single
        if single is not None and national[:1] not in code.national_prefix_first:
            # _classify_fast inlined for the common case: one region, no national prefix.
            by_digit = single.by_length.get(len(national))
            regex = by_digit.get(national[:1]) if by_digit is not None else None
            match = regex.fullmatch(national) if regex is not None else None
            if match is None:
                if len(national) >= 2:
                    return _not_valid(e164, single.code, code.code)
            elif match.lastgroup is not None:
                region, kind = single.code, _GROUP_TYPES[match.lastgroup]
        else:
            fast = _classify_fast(code, national)
            if isinstance(fast, _Invalid):
                if len(national) >= 2:
                    return _not_valid(e164, fast.region, code.code)
            elif fast is not None:
                region, kind = fast
    if region is None:
        slow = _classify_slow(e164)
        if isinstance(slow, NumberRejection):
            return slow
        e164, region, kind = slow
        if len(e164) > MAX_E164_DIGITS + 1:
            return NumberRejection("INVALID_NUMBER", f"{e164} has more than 15 digits")
    # Identity checks: `kind in SMS_CAPABLE` would hash the enum in Python (Enum.__hash__).
    if (kind is not _MOBILE and kind is not _EITHER) or region == NON_GEOGRAPHIC_REGION:
        return _unsupported(e164, region, kind)
    # Operator: ported override, then configured prefixes, then carrier prefixes. The common
    # case (one probe of the operator index, no longer prefix under the key) is inlined.
    operator = plan.ported.get(e164) if plan.ported else None
    if operator is not None:
        return _new_destination(Destination, (e164, region, kind, operator, _PORTED))
    index = plan.operators
    entry = index.keys.get(e164[:_KEY_WIDTH])
    if entry is None and len(e164) >= _KEY_WIDTH:
        return _new_destination(Destination, (e164, region, kind, None, _NONE))
    if entry is not None and not entry[0]:
        operator = entry[1]
        if operator is not None:
            return _new_destination(Destination, (e164, region, kind, operator, _PREFIX))
        if not entry[2]:
            operator = entry[3]
            if operator:
                return _new_destination(Destination, (e164, region, kind, operator, _CARRIER))
            return _new_destination(Destination, (e164, region, kind, None, _NONE))
    operator, source = index.find(e164)
    return _new_destination(Destination, (e164, region, kind, operator, source))


_MOBILE, _EITHER = NumberType.MOBILE, NumberType.FIXED_LINE_OR_MOBILE
_PORTED, _PREFIX, _CARRIER, _NONE = (
    OperatorSource.PORTED, OperatorSource.PREFIX, OperatorSource.CARRIER, OperatorSource.NONE,
)


def describe_number(destination: str) -> str:
    """One line about a number from phonenumbers (slow; for explanations, not the hot path)."""
    number = _parse(destination)
    if isinstance(number, NumberRejection):
        return number.detail
    from phonenumbers import carrier

    region = phonenumbers.region_code_for_number(number) or "?"
    kind = _PN_TYPES.get(phonenumbers.number_type(number), NumberType.UNKNOWN)
    name = carrier.name_for_number(number, "en") or "no carrier data"
    valid = "valid" if phonenumbers.is_valid_number(number) else "invalid"
    return f"{valid} {kind.value.lower()} number, {region}, carrier {name}"
