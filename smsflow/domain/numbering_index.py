"""The compiled numbering plan and its operator index: prefixes (longest wins), ported numbers,
carrier names mapped to configured operators.

:func:`smsflow.domain.numbering.build_numbering` fills these once per configuration; resolve
reads them with a dict probe per number.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Final

import phonenumbers
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE
from phonenumbers.carrierdata import CARRIER_DATA

from smsflow.domain.config_view import OperatorView
from smsflow.domain.numbering_metadata import _CallingCode
from smsflow.domain.numbering_types import _KEY_WIDTH, NumberType, OperatorSource, _tails
from smsflow.domain.numbering_verdicts import Verdict, Verdicts


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
