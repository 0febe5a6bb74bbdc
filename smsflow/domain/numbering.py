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

The modules: :mod:`~smsflow.domain.numbering_types` (the values),
:mod:`~smsflow.domain.numbering_metadata` (compiled metadata, fast and slow classification),
:mod:`~smsflow.domain.numbering_verdicts` (prefix-decided verdicts),
:mod:`~smsflow.domain.numbering_index` (the plan and its operator index) and this one
(building the plan, :func:`resolve`), which re-exports the others' public names.

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

import re
from collections.abc import Iterable, Mapping
from typing import Final

import phonenumbers
from phonenumbers import PhoneNumberFormat

from smsflow.domain.config_view import OperatorView
from smsflow.domain.numbering_index import (  # re-exported: the plan's public surface
    _NOTHING_DECIDED,
    _UNOWNED,
    NumberingPlan,
    _calling_code_of,
    _carrier_table,
    _OperatorIndex,
    _PrefixTable,
)
from smsflow.domain.numbering_metadata import (
    _GROUP_TYPES,
    _CallingCode,
    _classify_fast,
    _classify_slow,
    _compiled_calling_code,
    _Invalid,
    _not_valid,
    _parse,
)
from smsflow.domain.numbering_types import (  # re-exported: the plan's public surface
    _KEY_WIDTH,
    _PN_TYPES,
    MAX_E164_DIGITS,
    MAX_INPUT_CHARS,
    NON_GEOGRAPHIC_REGION,
    SMS_CAPABLE,
    Destination,
    NumberRejection,
    NumberType,
    OperatorSource,
    _new_destination,
    _new_rejection,
    _tails,
)
from smsflow.domain.numbering_verdicts import (  # re-exported: the plan's public surface
    _DEEP_KEY_WIDTH,
    Verdict,
    Verdicts,
    _decided_prefixes,
)

__all__ = [
    "MAX_E164_DIGITS",
    "MAX_INPUT_CHARS",
    "NON_GEOGRAPHIC_REGION",
    "SMS_CAPABLE",
    "Destination",
    "NumberRejection",
    "NumberType",
    "NumberingPlan",
    "OperatorSource",
    "Verdict",
    "Verdicts",
    "build_numbering",
    "describe_number",
    "resolve",
]


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
