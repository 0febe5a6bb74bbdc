"""Hard daily quota per tenant, in parts per UTC day, as a value.

The router (keyed by tenant, so one partition sees all of a tenant's traffic) charges every
accepted message against the tenant's ``daily_quota``; a message that does not fit entirely is
rejected with :data:`QUOTA_EXCEEDED` (it is *not* split, and it is not charged). The counter
resets at 00:00 UTC. The caller stores the :class:`QuotaUsage` value per tenant (a faust table
keyed by tenant survives restarts and rebalances).

>>> usage, ok = charge(None, quota=5, parts=3, now=0.0)
>>> ok, usage.used
(True, 3)
>>> charge(usage, quota=5, parts=3, now=10.0)[1]
False
>>> charge(usage, quota=5, parts=3, now=86_400.0)[0].used  # a new UTC day
3
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["QUOTA_EXCEEDED", "QuotaUsage", "charge", "utc_day"]

#: Reason code of a rejection for a tenant past its daily quota.
QUOTA_EXCEEDED: Final = "QUOTA_EXCEEDED"

_DAY_S: Final = 86_400


def utc_day(now: float) -> int:
    """Days since the epoch (UTC) of the epoch time ``now``."""
    return int(now // _DAY_S)


@dataclass(frozen=True, slots=True)
class QuotaUsage:
    day: int
    used: int

    def remaining(self, quota: int, now: float) -> int:
        return quota if utc_day(now) != self.day else max(0, quota - self.used)


def charge(
    usage: QuotaUsage | None, quota: int | None, parts: int, now: float
) -> tuple[QuotaUsage, bool]:
    """Charge ``parts`` at epoch time ``now``; ``(usage, False)`` if it does not fit.

    A tenant without a quota (``None``) is always admitted but still counted.
    """
    day = utc_day(now)
    if usage is not None and usage.day >= day:  # same day (or the clock stepped back)
        day, used = usage.day, usage.used
    else:
        used = 0
    if quota is not None and used + parts > quota:
        return QuotaUsage(day, used), False
    return QuotaUsage(day, used + parts), True
