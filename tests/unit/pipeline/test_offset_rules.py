"""The guarded consumer's pure rules: commits never pass an unprocessed record; stalls found."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.offset_rules import committable_end, oldest_in_flight, stall_reason


@pytest.mark.parametrize(
    ("processed", "committed", "expected"),
    [
        (set(), 10, None),
        ({10, 11, 12}, 10, 13),
        ({11, 12}, 10, None),  # faust commits 13 here: one unprocessed record passed
        ({10, 12}, 10, 11),
        ({5, 6, 8}, None, 7),  # nothing committed yet: faust's rule, from the lowest
        ({12, 13}, 12, 14),
    ],
)
def test_committable_end(processed: set[int], committed: int | None, expected: int | None) -> None:
    assert committable_end(processed, committed) == expected


@given(st.sets(st.integers(0, 60)), st.integers(0, 60))
def test_a_commit_never_passes_an_unprocessed_record(processed: set[int], committed: int) -> None:
    end = committable_end({o for o in processed if o >= committed}, committed)
    if end is not None:
        assert end > committed
        assert all(o in processed for o in range(committed, end))


@dataclass(frozen=True)
class _Record:
    tp: str
    offset: int


def test_oldest_in_flight_per_partition() -> None:
    records = [_Record("a", 7), _Record("b", 3), _Record("a", 5), _Record("a", 9)]
    assert oldest_in_flight(records) == {"a": 5, "b": 3}
    assert oldest_in_flight([]) == {}


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        # at the end of the log: nothing to read
        ({"committed": 10, "highwater": 10}, None),
        ({"committed": 10, "highwater": None}, None),
        # processed or in flight: it will be committed in due course
        ({"settled": True, "next_offset": 20}, None),
        ({"settled": True, "on_fetch_list": False}, None),
        # delivered (the next offset is past it) but no agent took it
        ({"next_offset": 12}, "dropped"),
        ({"next_offset": 11}, "dropped"),
        # not delivered yet, and the partition is not fetched
        ({"next_offset": 10, "on_fetch_list": False}, "off the fetch list"),
        ({"next_offset": None, "on_fetch_list": False}, "off the fetch list"),
        # fetched but nothing arrived (yet)
        ({"next_offset": 10}, "idle"),
        ({"next_offset": None}, "idle"),
    ],
)
def test_stall_reason(kwargs: dict[str, object], expected: str | None) -> None:
    arguments: dict[str, object] = {
        "committed": 10, "highwater": 15, "settled": False, "next_offset": None,
        "on_fetch_list": True,
    }
    arguments.update(kwargs)
    assert stall_reason(**arguments) == expected  # type: ignore[arg-type]
