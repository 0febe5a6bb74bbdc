"""Volume patterns from an hourly history: weekly and daily profiles, peak, known events.

The *current peak* is the busiest hour outside every known event, as an average rate over that
hour (``parts / 3600``). Events (holidays, campaigns) are planned separately, from the uplift
they showed last time, so one Black Friday does not double the everyday plan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from smsflow.domain.capacity.history import (
    HistoryError,
    HourlyCount,
    HourTotal,
    hour_totals,
    parts_by,
)

SECONDS_PER_HOUR = 3600
HOURS_PER_WEEK = 168
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(frozen=True)
class KnownEvent:
    """A calendar entry expected to change volume: [start, end) in UTC.

    ``expected_multiplier`` (event peak / everyday peak) is needed only for an event with no past
    occurrence of the same name in the history; otherwise the observed uplift is used.
    """

    name: str
    start: datetime
    end: datetime
    expected_multiplier: float | None = None

    def __post_init__(self) -> None:
        for moment in (self.start, self.end):
            if moment.tzinfo is None:
                raise HistoryError(f"event {self.name!r}: {moment.isoformat()} has no time zone")
        if self.end <= self.start:
            raise HistoryError(f"event {self.name!r}: end must be after start")
        if self.expected_multiplier is not None and self.expected_multiplier <= 0:
            raise HistoryError(f"event {self.name!r}: expected_multiplier must be > 0")

    def covers(self, hour: datetime) -> bool:
        return self.start <= hour < self.end


@dataclass(frozen=True)
class Peak:
    """The busiest hour: counts, and their average rate over the hour."""

    hour: datetime
    messages: int
    parts: int

    @property
    def msgs_per_s(self) -> float:
        return self.messages / SECONDS_PER_HOUR

    @property
    def parts_per_s(self) -> float:
        return self.parts / SECONDS_PER_HOUR

    @property
    def parts_per_message(self) -> float:
        return self.parts / self.messages if self.messages else 1.0


@dataclass(frozen=True)
class EventObservation:
    """A known event that lies in the history: its own busiest hour and uplift over the peak."""

    event: KnownEvent
    peak: Peak
    uplift: float


@dataclass(frozen=True)
class Share:
    """One tenant's or operator's part of the traffic, and its own pattern."""

    name: str
    parts: int
    share: float
    #: Its busiest hour outside known events.
    peak_hour: datetime
    peak_parts_per_s: float
    #: Mean parts per hour by hour of the week, event hours left out (as the platform's).
    weekly_parts: tuple[float, ...]


@dataclass(frozen=True)
class VolumePatterns:
    first_hour: datetime
    last_hour: datetime
    total_messages: int
    total_parts: int
    #: Mean parts per hour by hour of the week (0 = Monday 00:00 UTC), event hours left out.
    weekly_parts: tuple[float, ...]
    #: Mean parts per hour by hour of the day (UTC), event hours left out.
    daily_parts: tuple[float, ...]
    #: Mean parts per day by weekday (Monday first), event hours left out.
    weekday_parts: tuple[float, ...]
    peak: Peak
    events: tuple[EventObservation, ...]
    tenants: tuple[Share, ...]
    operators: tuple[Share, ...]

    @property
    def weeks(self) -> float:
        hours = (self.last_hour - self.first_hour).total_seconds() / SECONDS_PER_HOUR + 1
        return hours / HOURS_PER_WEEK


def hour_of_week(hour: datetime) -> int:
    return hour.weekday() * 24 + hour.hour


def _means(sums: Sequence[float], counts: Sequence[int]) -> tuple[float, ...]:
    return tuple(total / n if n else 0.0 for total, n in zip(sums, counts, strict=True))


def _profiles(
    totals: Sequence[HourTotal],
) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
    week_sum = [0.0] * HOURS_PER_WEEK
    week_n = [0] * HOURS_PER_WEEK
    for total in totals:
        slot = hour_of_week(total.hour)
        week_sum[slot] += total.parts
        week_n[slot] += 1
    weekly = _means(week_sum, week_n)
    daily_sum = [0.0] * 24
    daily_n = [0] * 24
    for slot, n in enumerate(week_n):
        daily_sum[slot % 24] += week_sum[slot]
        daily_n[slot % 24] += n
    daily = _means(daily_sum, daily_n)
    weekday = tuple(sum(weekly[day * 24:(day + 1) * 24]) for day in range(7))
    return weekly, daily, weekday


def _busiest(totals: Sequence[HourTotal]) -> Peak:
    # max() keeps the first of equal hours: the earliest busiest hour, a stable answer.
    top = max(totals, key=lambda total: total.parts)
    return Peak(top.hour, top.messages, top.parts)


def _shares(
    counts: Sequence[HourlyCount], key: str, total_parts: int, everyday: Sequence[HourTotal],
) -> tuple[Share, ...]:
    """Per tenant or operator: share of all parts, busiest everyday hour, weekly profile."""
    by_name = parts_by(counts, key=key)
    hourly: dict[str, dict[datetime, int]] = {}
    for count in counts:
        name = count.tenant_id if key == "tenant" else count.operator_id
        hours = hourly.setdefault(name, {})
        hours[count.hour] = hours.get(count.hour, 0) + count.parts
    slot_n = [0] * HOURS_PER_WEEK
    for total in everyday:
        slot_n[hour_of_week(total.hour)] += 1
    shares: list[Share] = []
    for name, parts in sorted(by_name.items(), key=lambda item: (-item[1], item[0])):
        hours = hourly[name]
        slot_sum = [0.0] * HOURS_PER_WEEK
        peak_hour, peak_parts = everyday[0].hour, -1
        for total in everyday:
            value = hours.get(total.hour, 0)
            slot_sum[hour_of_week(total.hour)] += value
            if value > peak_parts:
                peak_hour, peak_parts = total.hour, value
        shares.append(Share(
            name, parts, parts / total_parts if total_parts else 0.0, peak_hour,
            peak_parts / SECONDS_PER_HOUR, _means(slot_sum, slot_n),
        ))
    return tuple(shares)


def analyse(counts: Sequence[HourlyCount], events: Sequence[KnownEvent] = ()) -> VolumePatterns:
    """Profiles, peak, event uplifts and per-tenant/operator shares of a history."""
    totals = hour_totals(counts)
    everyday = [t for t in totals if not any(event.covers(t.hour) for event in events)]
    if not everyday:
        raise HistoryError("every hour of the history lies inside a known event")
    peak = _busiest(everyday)
    observations: list[EventObservation] = []
    for event in events:
        inside = [t for t in totals if event.covers(t.hour)]
        if inside:
            event_peak = _busiest(inside)
            uplift = event_peak.parts / peak.parts if peak.parts else 0.0
            observations.append(EventObservation(event, event_peak, uplift))
    weekly, daily, weekday = _profiles(everyday)
    total_parts = sum(t.parts for t in totals)
    return VolumePatterns(
        first_hour=totals[0].hour,
        last_hour=totals[-1].hour,
        total_messages=sum(t.messages for t in totals),
        total_parts=total_parts,
        weekly_parts=weekly,
        daily_parts=daily,
        weekday_parts=weekday,
        peak=peak,
        events=tuple(observations),
        tenants=_shares(counts, "tenant", total_parts, everyday),
        operators=_shares(counts, "operator", total_parts, everyday),
    )
