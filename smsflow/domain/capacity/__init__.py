"""Capacity planning (pure): volume patterns from an hourly history, and a sized plan.

Values in, values out; the caller reads the history (Kafka, CSV) and passes ``now``.
See ``docs/capacity.md`` for what each figure means and the arithmetic behind it.

* :mod:`.history` - hourly counts per tenant and operator, and their folding.
* :mod:`.patterns` - daily/weekly profiles, the current peak, known events and their uplift.
* :mod:`.plan` - partitions, replicas, SMPP binds and API replicas for growth x peak + headroom.
"""

from smsflow.domain.capacity.history import HistoryError, HourlyCount, floor_hour
from smsflow.domain.capacity.patterns import (
    EventObservation,
    KnownEvent,
    Peak,
    VolumePatterns,
    analyse,
)
from smsflow.domain.capacity.plan import (
    DEFAULT_PROCESS_CAPACITY,
    CapacityPlan,
    EventProvision,
    PlannedFigure,
    PlanTarget,
    ProcessCapacity,
    RouteLink,
    SmscLink,
    SmscPlan,
    plan_capacity,
)

__all__ = [
    "DEFAULT_PROCESS_CAPACITY",
    "CapacityPlan",
    "EventObservation",
    "EventProvision",
    "HistoryError",
    "HourlyCount",
    "KnownEvent",
    "Peak",
    "PlanTarget",
    "PlannedFigure",
    "ProcessCapacity",
    "RouteLink",
    "SmscLink",
    "SmscPlan",
    "VolumePatterns",
    "analyse",
    "floor_hour",
    "plan_capacity",
]
