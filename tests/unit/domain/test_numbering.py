"""Destination numbers: validation, number type, operator (smsflow.domain.numbering)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE
from pydantic import ValidationError

from smsflow.config.models import Operator, PlatformConfig
from smsflow.domain.numbering import (
    SMS_CAPABLE,
    Destination,
    NumberingPlan,
    NumberRejection,
    NumberType,
    OperatorSource,
    build_numbering,
    resolve,
)
from smsflow.domain.reasons import REASONS


def op(operator_id: str, country: str, prefixes: Sequence[str], **extra: Any) -> Operator:
    return Operator(
        id=operator_id, name=extra.pop("name", operator_id), country=country, mcc_mnc="00101",
        prefixes=tuple(prefixes), **extra,
    )


OPERATORS = (
    op("gb-ee", "GB", ["+44740", "+44741"], name="EE"),
    op("gb-vodafone", "GB", ["+447701"], name="Vodafone UK",
       ported_in=("+447401999999",), test_prefixes=("+447700900",)),
    op("de-telekom", "DE", ["+49151"], name="Telekom DE", carrier_names=("T-Mobile",)),
    op("us-tmobile", "US", ["+1206"], name="T-Mobile US"),
)


@pytest.fixture(scope="module")
def plan() -> NumberingPlan:
    return build_numbering(OPERATORS, countries=["FR"])


@pytest.mark.parametrize(
    ("raw", "e164", "country", "kind", "operator", "source"),
    [
        ("+447401234567", "+447401234567", "GB", NumberType.MOBILE, "gb-ee", OperatorSource.PREFIX),
        # formatted input and a national prefix after the country code are normalised
        ("+44 7401 234567", "+447401234567", "GB", NumberType.MOBILE, "gb-ee",
         OperatorSource.PREFIX),
        ("+44 (0)7401-234567", "+447401234567", "GB", NumberType.MOBILE, "gb-ee",
         OperatorSource.PREFIX),
        ("+4407401234567", "+447401234567", "GB", NumberType.MOBILE, "gb-ee",
         OperatorSource.PREFIX),
        ("+٤٤٧٤٠١٢٣٤٥٦٧", "+447401234567", "GB", NumberType.MOBILE, "gb-ee",  # Arabic-Indic
         OperatorSource.PREFIX),
        # longest configured prefix wins over the carrier data (which says Three for +447401)
        ("+447701234567", "+447701234567", "GB", NumberType.MOBILE, "gb-vodafone",
         OperatorSource.PREFIX),
        # ported override beats the prefix
        ("+447401999999", "+447401999999", "GB", NumberType.MOBILE, "gb-vodafone",
         OperatorSource.PORTED),
        # carrier data: "Vodafone" matches "Vodafone UK" without its country token
        ("+447340123456", "+447340123456", "GB", NumberType.MOBILE, "gb-vodafone",
         OperatorSource.CARRIER),
        # carrier data via an explicit alias (carrier_names)
        ("+491711234567", "+491711234567", "DE", NumberType.MOBILE, "de-telekom",
         OperatorSource.CARRIER),
        # NANP: mobile and fixed line cannot be told apart
        ("+12065550123", "+12065550123", "US", NumberType.FIXED_LINE_OR_MOBILE, "us-tmobile",
         OperatorSource.PREFIX),
        # valid mobile of a carrier no operator matches, and of a country without operators
        ("+447911123456", "+447911123456", "GG", NumberType.MOBILE, None,
         OperatorSource.NONE),
        ("+33612345678", "+33612345678", "FR", NumberType.MOBILE, None, OperatorSource.NONE),
        # test range: accepted without numbering-plan validation (Ofcom drama numbers)
        ("+447700900123", "+447700900123", "GB", NumberType.MOBILE, "gb-vodafone",
         OperatorSource.TEST_RANGE),
        # a calling code no operator or route uses: phonenumbers itself decides
        ("+61412345678", "+61412345678", "AU", NumberType.MOBILE, None, OperatorSource.NONE),
    ],
)
def test_valid_destinations(
    plan: NumberingPlan, raw: str, e164: str, country: str, kind: NumberType,
    operator: str | None, source: OperatorSource,
) -> None:
    assert resolve(plan, raw) == Destination(e164, country, kind, operator, source)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("not-a-number", "INVALID_NUMBER"),
        ("", "INVALID_NUMBER"),
        ("+", "INVALID_NUMBER"),
        ("447401234567", "INVALID_NUMBER"),  # no '+': no country to parse it in
        ("+44740123456", "INVALID_NUMBER"),  # too short for a UK mobile
        ("+4474012345678", "INVALID_NUMBER"),  # too long
        ("+4474012345678901", "INVALID_NUMBER"),  # longer than E.164 allows
        ("+447700500123", "INVALID_NUMBER"),  # not in the test range: unallocated
        ("+33712345678", "INVALID_NUMBER"),
        ("+999123456789", "INVALID_NUMBER"),  # no such calling code
        ("+4" + "1" * 80, "INVALID_NUMBER"),
        ("+442071234567", "UNSUPPORTED_DESTINATION"),  # fixed line
        ("+4930123456", "UNSUPPORTED_DESTINATION"),  # fixed line
        ("+448001234567", "UNSUPPORTED_DESTINATION"),  # toll free
        ("+449001234567", "UNSUPPORTED_DESTINATION"),  # premium rate
        ("+445601234567", "UNSUPPORTED_DESTINATION"),  # VoIP
        ("+447001234567", "UNSUPPORTED_DESTINATION"),  # personal number
        ("+447600123456", "UNSUPPORTED_DESTINATION"),  # pager
        ("+80012345678", "UNSUPPORTED_DESTINATION"),  # non-geographic toll free
        ("+881612345678", "UNSUPPORTED_DESTINATION"),  # satellite (non-geographic)
    ],
)
def test_rejected_destinations(plan: NumberingPlan, raw: str, code: str) -> None:
    rejection = resolve(plan, raw)
    assert isinstance(rejection, NumberRejection)
    assert rejection.reason_code == code
    assert rejection.reason_code in REASONS
    assert rejection.detail


def test_unsupported_detail_names_the_type(plan: NumberingPlan) -> None:
    rejection = resolve(plan, "+448001234567")
    assert isinstance(rejection, NumberRejection)
    assert "toll-free" in rejection.detail


def test_carrier_name_shared_by_two_operators_maps_to_neither() -> None:
    plan = build_numbering([
        op("gb-a", "GB", ["+44740"], carrier_names=("Vodafone",)),
        op("gb-b", "GB", ["+44741"], carrier_names=("Vodafone",)),
    ])
    destination = resolve(plan, "+447340123456")
    assert isinstance(destination, Destination)
    assert destination.operator_id is None


def test_longer_carrier_prefix_of_an_unconfigured_carrier_shadows_a_shorter_one() -> None:
    # Carrier data: +447340 is Vodafone; +4473xx ranges of other carriers exist too. A number
    # under an unconfigured carrier's prefix stays unresolved even if a configured operator
    # owns a shorter carrier prefix of the same country.
    plan = build_numbering([op("gb-vodafone", "GB", ["+447701"], name="Vodafone")])
    three = resolve(plan, "+447401234567")  # carrier data: Three
    assert isinstance(three, Destination) and three.operator_id is None
    vodafone = resolve(plan, "+447340123456")
    assert isinstance(vodafone, Destination) and vodafone.operator_id == "gb-vodafone"


# --- agreement with phonenumbers ----------------------------------------------------------------

_PN_TYPES = {
    0: NumberType.FIXED_LINE, 1: NumberType.MOBILE, 2: NumberType.FIXED_LINE_OR_MOBILE,
    3: NumberType.TOLL_FREE, 4: NumberType.PREMIUM_RATE, 5: NumberType.SHARED_COST,
    6: NumberType.VOIP, 7: NumberType.PERSONAL_NUMBER, 8: NumberType.PAGER, 9: NumberType.UAN,
    10: NumberType.VOICEMAIL,
}
_COUNTRIES = ("GB", "DE", "US", "FR", "IT", "AR", "MX", "BR", "IN", "CN", "RU", "AU", "JM", "NL")
_COMPILED = build_numbering([], countries=_COUNTRIES)
_SLOW_ONLY = build_numbering([])

_CALLING_CODES = sorted({str(phonenumbers.country_code_for_region(c)) for c in _COUNTRIES})


def _reference(e164: str) -> tuple[str, str, NumberType] | None:
    """(E.164, region, type) per phonenumbers, or None if not a valid number."""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    formatted = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if len(formatted) > 16:  # phonenumbers accepts some longer numbers; E.164 does not
        return None
    region = phonenumbers.region_code_for_number(number) or "?"
    return formatted, region, _PN_TYPES.get(phonenumbers.number_type(number), NumberType.UNKNOWN)


@st.composite
def _numbers(draw: st.DrawFn) -> str:
    """Digit strings near real numbers: an example number's leading digits, random tail, often
    a few digits short or long (typos); sometimes any digits after a calling code."""
    country = draw(st.sampled_from(_COUNTRIES))
    kind = draw(st.sampled_from([1, 0, 3, 4, 6]))
    example = phonenumbers.example_number_for_type(country, kind)
    if example is None or draw(st.integers(0, 9)) == 0:
        code = draw(st.sampled_from(_CALLING_CODES))
        return "+" + code + draw(st.text("0123456789", min_size=0, max_size=14))
    national = phonenumbers.national_significant_number(example)
    keep = draw(st.integers(0, len(national)))
    length = len(national) + draw(st.sampled_from([0, 0, 0, 1, -1, 2, -2, 3, -3]))
    tail = draw(st.text("0123456789", min_size=max(0, length - keep),
                        max_size=max(0, length - keep)))
    return f"+{example.country_code}{national[:keep]}{tail}"


@settings(max_examples=3000, deadline=None)
@given(_numbers())
def test_fast_path_agrees_with_phonenumbers(number: str) -> None:
    # Rejections too come from the compiled metadata now: the same code and the same detail
    # (which names libphonenumber's region, or the calling code) as phonenumbers' own verdict.
    assert resolve(_COMPILED, number) == resolve(_SLOW_ONLY, number)
    for plan in (_COMPILED, _SLOW_ONLY):
        result = resolve(plan, number)
        reference = _reference(number)
        if reference is None:
            assert isinstance(result, NumberRejection), number
            assert result.reason_code == "INVALID_NUMBER", (number, result)
            continue
        e164, region, kind = reference
        if kind in SMS_CAPABLE and region != "001":
            assert isinstance(result, Destination), (number, result)
            assert (result.e164, result.country, result.number_type) == (e164, region, kind)
        else:
            assert isinstance(result, NumberRejection), (number, result)
            assert result.reason_code == "UNSUPPORTED_DESTINATION", (number, result)


def test_every_calling_code_agrees_with_phonenumbers_valid_or_not() -> None:
    """Seeded sample over every region's calling code: example numbers with typos (digits
    dropped, added, changed) and random digits, the whole result compared with phonenumbers'
    own (the plan without compiled metadata)."""
    regions = sorted({r for rs in COUNTRY_CODE_TO_REGION_CODE.values() for r in rs} - {"001"})
    plan = build_numbering([], countries=regions)
    rng = random.Random(20261126)
    checked = 0
    for region in regions:
        code = str(phonenumbers.country_code_for_region(region))
        examples = [
            phonenumbers.national_significant_number(example)
            for kind in range(11)
            if (example := phonenumbers.example_number_for_type(region, kind)) is not None
        ]
        for _ in range(12):
            if examples and rng.random() < 0.8:
                national = rng.choice(examples)
                keep = rng.randint(0, len(national))
                length = max(0, len(national) + rng.choice((0, -1, -2, -3, 1, 2)))
                tail = "".join(rng.choice("0123456789") for _ in range(length))
                number = "+" + code + (national[:keep] + tail)[:length]
            else:
                number = "+" + code + "".join(
                    rng.choice("0123456789") for _ in range(rng.randint(0, 13))
                )
            assert resolve(plan, number) == resolve(_SLOW_ONLY, number), number
            checked += 1
    assert checked == 12 * len(regions)


@pytest.mark.parametrize(
    ("number", "detail"),
    [
        ("+4474012345", "+4474012345 is not a valid number in calling code +44"),  # two short
        ("+3361234", "+3361234 is not a valid number in the FR numbering plan"),
        ("+491511234", "+491511234 is not a valid number in the DE numbering plan"),
        ("+442071234567", "+442071234567 is a fixed-line number (GB), not SMS-capable"),
        ("+448001234567", "+448001234567 is a toll-free number (GB), not SMS-capable"),
        ("+12065550", "+12065550 is not a valid number in calling code +1"),  # NANP, short
        ("+1787555012", "+1787555012 is not a valid number in the PR numbering plan"),
    ],
)
def test_rejections_are_decided_without_phonenumbers(
    plan: NumberingPlan, number: str, detail: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """'+' and digits in a compiled calling code: the compiled metadata decides rejections as
    well as acceptances (the equivalence tests above prove they match phonenumbers)."""
    expected = resolve(_SLOW_ONLY, number)
    assert isinstance(expected, NumberRejection) and expected.detail == detail

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("phonenumbers called on the fast path")

    monkeypatch.setattr(phonenumbers, "parse", refuse)
    assert resolve(plan, number) == expected


# --- configuration fields -----------------------------------------------------------------------


def test_operator_number_fields_are_validated() -> None:
    with pytest.raises(ValidationError):
        op("x", "GB", ["+44740"], ported_in=("447401234567",))
    with pytest.raises(ValidationError):
        op("x", "GB", ["+44740"], test_prefixes=("+44-7700",))


def test_a_number_ported_into_two_operators_is_refused() -> None:
    with pytest.raises(ValidationError, match="claimed by operators"):
        PlatformConfig(operators=(
            op("a", "GB", ["+44740"], ported_in=("+447401234567",)),
            op("b", "GB", ["+44741"], ported_in=("+447401234567",)),
        ))
