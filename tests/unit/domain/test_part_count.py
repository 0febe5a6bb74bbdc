"""part_count (the API's cheap part count) agrees with plan_segments on every text."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smsflow.domain.encoding import EncodingError, part_count, plan_segments
from smsflow.domain.validation import ContentProblem, check_content, content_parts

# GSM-7 basic and extension characters, Latin-1 beyond them, BMP, astral and lone surrogates.
alphabet = st.sampled_from("aZ09 @£$\n{}[]~^\\|€éàЖж中😀\ud800")
texts = st.text(alphabet, max_size=400) | st.text(max_size=200)


def _planned(text: str, max_parts: int) -> int | type[EncodingError]:
    try:
        return plan_segments(text, max_parts=max_parts).part_count
    except EncodingError:
        return EncodingError


def _counted(text: str, max_parts: int) -> int | type[EncodingError]:
    try:
        return part_count(text, max_parts=max_parts)
    except EncodingError:
        return EncodingError


@given(texts, st.integers(1, 12))
def test_agrees_with_plan_segments(text: str, max_parts: int) -> None:
    assert _counted(text, max_parts) == _planned(text, max_parts)


@pytest.mark.parametrize("text", ["a" * 160, "a" * 161, "€" * 80, "€" * 81, "ж" * 70, "ж" * 71,
                                  "😀" * 35, "😀" * 36, "\ud800"])
def test_edges(text: str) -> None:
    assert _counted(text, 255) == _planned(text, 255)


@given(st.sampled_from(["ACME", "", "+447700900123", "TOO-LONG-SENDER-ID", "12"]), texts)
def test_content_parts_decides_as_check_content(source: str, body: str) -> None:
    checked = check_content(source, body)
    counted = content_parts(source, body)
    assert counted == (checked if isinstance(checked, ContentProblem) else checked.part_count)
