"""The capacity domain's rules beyond the worked example (tests/unit/cli/test_capacity_plan.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from smsflow.domain.capacity import (
    HistoryError,
    HourlyCount,
    KnownEvent,
    PlanTarget,
    RouteLink,
    SmscLink,
    analyse,
    plan_capacity,
)

MONDAY = datetime(2026, 11, 2, tzinfo=UTC)


def _count(hours: int, messages: int, *, operator: str = "op-a", parts: int = 0) -> HourlyCount:
    return HourlyCount(MONDAY + timedelta(hours=hours), "t", operator, messages,
                       parts or messages)


@pytest.mark.parametrize(("hour", "messages", "parts", "message"), [
    (datetime(2026, 11, 2, 12), 1, 1, "no time zone"),  # noqa: DTZ001 - the case under test
    (datetime(2026, 11, 2, 12, 30, tzinfo=UTC), 1, 1, "not the start of an hour"),
    (MONDAY, -1, 0, "negative count"),
    (MONDAY, 5, 4, "4 parts for 5 messages"),
])
def test_bad_counts_are_refused(
    hour: datetime, messages: int, parts: int, message: str,
) -> None:
    with pytest.raises(HistoryError, match=message):
        HourlyCount(hour, "t", "op", messages, parts)


def test_quiet_hours_count_as_zero_in_the_weekly_mean() -> None:
    # Two Mondays 00:00 with 3600 and nothing in between: the second week's Monday 00:00 is
    # there, every hour between is a 0, and the mean of Monday 00:00 is 3600 parts/hour.
    patterns = analyse([_count(0, 3600), _count(168, 3600)])
    assert patterns.weekly_parts[0] == 3600
    assert patterns.weekly_parts[1] == 0
    assert patterns.daily_parts[0] == pytest.approx(2 * 3600 / 8)  # 8 midnights, 2 busy


def test_the_peak_leaves_events_out_and_gives_their_uplift() -> None:
    event = KnownEvent("sale", MONDAY + timedelta(hours=2), MONDAY + timedelta(hours=3))
    patterns = analyse([_count(0, 100), _count(1, 360), _count(2, 1080)], [event])
    assert patterns.peak.parts == 360
    [seen] = patterns.events
    assert seen.uplift == 3.0


def test_an_operator_on_two_routes_is_split_by_their_tps() -> None:
    patterns = analyse([_count(0, 3600)])  # 1 part/s
    smscs = [
        SmscLink("a", window=10, binds=1, routes=(RouteLink("r1", ("op-a",), 30),)),
        SmscLink("b", window=10, binds=1, routes=(RouteLink("r2", ("op-a",), 10),)),
    ]
    plan = plan_capacity(patterns, now=MONDAY, partitions_now=1, smscs=smscs)
    # 1 part/s x 2.5 = 2.5 parts/s; a gets 30/40, b 10/40.
    assert [s.planned_parts_per_s for s in plan.smscs] == [1.875, 0.625]


def test_binds_beyond_the_config_limit_and_the_contracted_tps_are_flagged() -> None:
    patterns = analyse([_count(0, 3600 * 400)])  # 400 parts/s -> 1000 planned
    smscs = [SmscLink("a", window=1, binds=1, routes=(RouteLink("r", ("op-a",), 100),))]
    [smsc] = plan_capacity(patterns, now=MONDAY, partitions_now=1, smscs=smscs).smscs
    assert smsc.binds.value == 500  # ceil(1000 / (1 / 0.5))
    assert any("exceed the 32 per account" in note for note in smsc.notes)
    assert any("negotiate" in note for note in smsc.notes)


def test_an_event_without_history_or_multiplier_is_reported_not_sized() -> None:
    patterns = analyse([_count(0, 3600)])
    ahead = KnownEvent("launch", MONDAY + timedelta(days=30), MONDAY + timedelta(days=31))
    [event] = plan_capacity(patterns, now=MONDAY, partitions_now=1, upcoming=[ahead]).events
    assert event.multiplier is None and event.figures == ()
    assert event.provision_by == MONDAY + timedelta(days=16)
    assert "unknown" in event.multiplier_source


@pytest.mark.parametrize(("growth", "headroom"), [(0, 0.25), (2, -0.1), (2, 1.0)])
def test_a_nonsense_target_is_refused(growth: float, headroom: float) -> None:
    with pytest.raises(HistoryError):
        PlanTarget(growth, headroom)
