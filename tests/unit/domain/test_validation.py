from __future__ import annotations

import pytest

from smsflow.domain.validation import source_problem


@pytest.mark.parametrize("source", ["ACME", "Acme Bank", "+447700900123", "12345", "SHOP-24", "A1"])
def test_acceptable_senders(source: str) -> None:
    assert source_problem(source) is None


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("", "empty"),
        ("TwelveChars1", "longer than 11"),
        ("Grüße", "characters"),
        ("12", "3-15 digits"),
        ("+1234567890123456", "3-15 digits"),
        ("ACME\x00", "characters"),
    ],
)
def test_unusable_senders_say_why(source: str, fragment: str) -> None:
    problem = source_problem(source)
    assert problem is not None and fragment in problem
