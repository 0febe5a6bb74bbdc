"""Hourly message counts per tenant and operator: the input of every capacity figure."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from smsflow.domain.errors import PermanentError


class HistoryError(PermanentError, ValueError):
    """The history cannot be used as given (naive timestamps, negative counts, empty)."""


@dataclass(frozen=True)
class HourlyCount:
    """Messages (and their SMS parts) one tenant sent to one operator in one UTC hour."""

    hour: datetime
    tenant_id: str
    operator_id: str
    messages: int
    parts: int

    def __post_init__(self) -> None:
        if self.hour.tzinfo is None or self.hour.utcoffset() is None:
            raise HistoryError(f"hour {self.hour.isoformat()} has no time zone (use UTC)")
        if self.hour != floor_hour(self.hour):
            raise HistoryError(f"hour {self.hour.isoformat()} is not the start of an hour")
        if self.messages < 0 or self.parts < 0:
            raise HistoryError(
                f"{self.hour.isoformat()} {self.tenant_id}/{self.operator_id}: negative count"
            )
        if self.parts < self.messages:
            raise HistoryError(
                f"{self.hour.isoformat()} {self.tenant_id}/{self.operator_id}: "
                f"{self.parts} parts for {self.messages} messages (each message has >= 1 part)"
            )


@dataclass(frozen=True)
class HourTotal:
    hour: datetime
    messages: int
    parts: int


def floor_hour(moment: datetime) -> datetime:
    """The start of ``moment``'s hour (in its own time zone; callers pass UTC)."""
    return moment.replace(minute=0, second=0, microsecond=0)


def hour_totals(counts: Iterable[HourlyCount]) -> list[HourTotal]:
    """All tenants and operators summed per hour, in time order, hours with no traffic as 0.

    Missing hours are filled so that averages over "every Tuesday 12:00" count quiet hours too.
    """
    messages: dict[datetime, int] = {}
    parts: dict[datetime, int] = {}
    for count in counts:
        messages[count.hour] = messages.get(count.hour, 0) + count.messages
        parts[count.hour] = parts.get(count.hour, 0) + count.parts
    if not messages:
        raise HistoryError("the history has no hourly counts")
    first, last = min(messages), max(messages)
    totals: list[HourTotal] = []
    hour = first
    while hour <= last:
        totals.append(HourTotal(hour, messages.get(hour, 0), parts.get(hour, 0)))
        hour += timedelta(hours=1)
    return totals


def parts_by(counts: Iterable[HourlyCount], *, key: str) -> dict[str, int]:
    """Total parts per ``tenant_id`` or ``operator_id`` over the whole history."""
    totals: dict[str, int] = {}
    for count in counts:
        name = count.tenant_id if key == "tenant" else count.operator_id
        totals[name] = totals.get(name, 0) + count.parts
    return totals
