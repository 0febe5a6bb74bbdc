"""Prefix-decided verdicts: national prefixes whose every completion gets the same (region, type).

A walk over national prefixes with regex derivatives *proves* (never samples) where the
metadata patterns decide a number's region and type from its first digits, so
:func:`smsflow.domain.numbering.resolve` answers most numbers from one dict probe.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from typing import Any, Final, NamedTuple

from smsflow.domain.numbering_metadata import (
    _DIGITS,
    _classify_fast,
    _compiled_calling_code,
    _first_item,
    _Invalid,
    _sre,
)
from smsflow.domain.numbering_types import (
    _KEY_WIDTH,
    MAX_E164_DIGITS,
    SMS_CAPABLE,
    NumberType,
    _tails,
)

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
