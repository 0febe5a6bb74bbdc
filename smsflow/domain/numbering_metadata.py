"""libphonenumber's numbering-plan metadata compiled into regular expressions, per calling code.

One regex per (region, national-number length, first national digit) holding only the types
that can start with that digit, in libphonenumber's precedence, and the dispatch of shared
calling codes; :func:`_classify_fast` replays ``phonenumbers``' verdict (type or rejection text)
from them, and :func:`_classify_slow` asks ``phonenumbers`` itself where the fast path may not
answer. Memoised per calling code for the process (static data only). See the theory of
operation in :mod:`smsflow.domain.numbering`.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Final, NamedTuple

import phonenumbers
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneMetadata, PhoneNumberFormat

from smsflow.domain.numbering_types import (
    _PN_TYPES,
    _SPECIAL_DESCS,
    NON_GEOGRAPHIC_REGION,
    NumberRejection,
    NumberType,
    _new_rejection,
    _tails,
)


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
