"""The prefix-decided fast path of smsflow.domain.numbering (``_decided_prefixes``): every
number under a decided key gets exactly libphonenumber's verdict, and overrides still win."""

from __future__ import annotations

import random

import phonenumbers
import pytest

from smsflow.config.models import Operator
from smsflow.domain import numbering, numbering_types
from smsflow.domain.numbering import Destination, NumberType, OperatorSource, build_numbering

REGIONS = ("GB", "US", "DE", "IN", "CN", "BR", "AR", "FI", "IL", "HK", "RU", "JM")


def _phonenumbers_verdict(number: str) -> tuple[str | None, NumberType | None, bool]:
    parsed = phonenumbers.parse(number, None)
    kind = numbering_types._PN_TYPES.get(phonenumbers.number_type(parsed))
    return phonenumbers.region_code_for_number(parsed), kind, phonenumbers.is_valid_number(parsed)


@pytest.mark.parametrize("region", REGIONS)
def test_every_decided_key_agrees_with_phonenumbers(region: str) -> None:
    plan = build_numbering([], [region])
    code = str(phonenumbers.country_code_for_region(region))
    tables = [
        (key, entry[4]) for key, entry in plan.operators.keys.items()
        if entry[4] and key.startswith("+" + code)
    ] + [(key, verdicts) for key, verdicts in plan.deep.items() if key.startswith("+" + code)]
    assert tables, "nothing decided: the fast path would never run"
    rng = random.Random(region)
    for key, by_length in rng.sample(tables, min(len(tables), 400)):
        for length in by_length:
            number = key + "".join(rng.choice("0123456789") for _ in range(length - len(key)))
            got = numbering.resolve(plan, number)
            where, kind, valid = _phonenumbers_verdict(number)
            assert valid and kind in numbering.SMS_CAPABLE, number
            assert isinstance(got, Destination), number
            assert (got.country, got.number_type) == (where, kind), number


def test_ported_numbers_and_test_ranges_override_decided_keys() -> None:
    operators = [
        Operator(id="gb-ee", name="EE", country="GB", mcc_mnc="23430", prefixes=("+44740",),
                 test_prefixes=("+447700900",)),
        Operator(id="gb-three", name="Three", country="GB", mcc_mnc="23420",
                 prefixes=("+44741",), ported_in=("+447401999999",)),
    ]
    plan = build_numbering(operators)
    assert plan.operators.keys["+447401"][4], "+447401... is decided: the fast path applies"
    ported = numbering.resolve(plan, "+447401999999")
    assert isinstance(ported, Destination)
    assert (ported.operator_id, ported.operator_source) == ("gb-three", OperatorSource.PORTED)
    plain = numbering.resolve(plan, "+447401999998")
    assert isinstance(plain, Destination)
    assert (plain.operator_id, plain.operator_source) == ("gb-ee", OperatorSource.PREFIX)
    test = numbering.resolve(plan, "+447700900123")  # invalid for libphonenumber
    assert isinstance(test, Destination)
    assert test.operator_source is OperatorSource.TEST_RANGE


def test_formatted_input_under_a_decided_key_is_normalised() -> None:
    plan = build_numbering([], ["GB"])
    got = numbering.resolve(plan, "+447401 234567")
    assert isinstance(got, Destination)
    assert got.e164 == "+447401234567"


def _carrier_operators(country: str, rng: random.Random) -> list[Operator]:
    """A country's five largest carriers in phonenumbers' carrier data as operators, each with
    a random three quarters of its prefixes configured (the rest left to the carrier-data
    fallback), as the routing benchmark builds them: prefixes of every length, configured and
    carrier prefixes longer than the operator index's keys under the same keys."""
    from phonenumbers.carrierdata import CARRIER_DATA

    code = str(phonenumbers.country_code_for_region(country))
    carriers: dict[str, list[str]] = {}
    for prefix, names in CARRIER_DATA.items():
        if prefix.startswith(code):
            carriers.setdefault(names.get("en") or next(iter(names.values())), []).append(
                "+" + prefix
            )
    largest = sorted(carriers.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:5]
    operators = []
    for n, (name, prefixes) in enumerate(largest):
        configured = sorted(rng.sample(sorted(prefixes), max(1, len(prefixes) * 3 // 4)))
        operators.append(Operator(
            id=f"{country.lower()}-{n}", name=name, country=country, mcc_mnc=f"{100 + n}01",
            prefixes=tuple(configured),
        ))
    return operators


@pytest.mark.parametrize("region", ["GB", "IN", "DE", "BR"])
def test_operators_of_deep_keys_equal_the_index_search(region: str) -> None:
    """Keys that decide (region, type) but not the operator resolve it from the deep key's
    table (_deep_operators) or the index key's fallback; both must equal the longest-prefix
    search (_OperatorIndex.find) for every number, under configured and carrier prefixes of
    every length."""
    rng = random.Random(region)
    operators = _carrier_operators(region, rng)
    plan = build_numbering(operators)
    prefixes = sorted({*plan.operators.configured.entries, *plan.operators.carrier.entries})
    partial = 0
    for prefix in prefixes:
        for _ in range(3):
            number = prefix + "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 8)))
            got = numbering.resolve(plan, number)
            if not isinstance(got, Destination):
                continue
            entry = plan.operators.keys.get(number[: numbering_types._KEY_WIDTH])
            verdict = entry[4].get(len(number)) if entry is not None else None
            partial += verdict is None or len(verdict) == 2
            assert (got.operator_id, got.operator_source) == plan.operators.find(number), number
    assert partial, "no number took the deep-key operator path"


def test_longer_prefixes_under_a_decided_key_win_at_every_width() -> None:
    operators = [
        Operator(id=name, name=name, country="GB", mcc_mnc="23401", prefixes=(prefix,))
        for name, prefix in (
            ("short", "+44740"), ("eight", "+4474018"), ("nine", "+44740199"),
            ("ten", "+447401234"),  # longer than a deep key: only the search can tell
        )
    ]
    plan = build_numbering(operators)
    assert plan.operators.keys["+447401"][4], "the key decides (region, type)"
    for number, owner in (
        ("+447401234567", "ten"), ("+447401235567", "short"), ("+447401991234", "nine"),
        ("+447401812345", "eight"), ("+447401700000", "short"), ("+447409000000", "short"),
    ):
        got = numbering.resolve(plan, number)
        assert isinstance(got, Destination), number
        assert (got.operator_id, got.operator_source) == (owner, OperatorSource.PREFIX), number
