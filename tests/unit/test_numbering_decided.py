"""The prefix-decided fast path of smsflow.domain.numbering (``_decided_prefixes``): every
number under a decided key gets exactly libphonenumber's verdict, and overrides still win."""

from __future__ import annotations

import random

import phonenumbers
import pytest

from smsflow.config.models import Operator
from smsflow.domain import numbering
from smsflow.domain.numbering import Destination, NumberType, OperatorSource, build_numbering

REGIONS = ("GB", "US", "DE", "IN", "CN", "BR", "AR", "FI", "IL", "HK", "RU", "JM")


def _phonenumbers_verdict(number: str) -> tuple[str | None, NumberType | None, bool]:
    parsed = phonenumbers.parse(number, None)
    kind = numbering._PN_TYPES.get(phonenumbers.number_type(parsed))
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
