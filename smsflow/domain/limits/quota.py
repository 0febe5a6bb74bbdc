"""Hard daily quota per tenant, in parts per UTC day, as a value.

The router (keyed by tenant, so one partition sees all of a tenant's traffic) charges every
accepted message against the tenant's ``daily_quota``; a message that does not fit entirely is
rejected with :data:`QUOTA_EXCEEDED` (it is *not* split, and it is not charged). The counter
resets at 00:00 UTC. The caller stores the usage per tenant (a faust table keyed by tenant
survives restarts and rebalances); :func:`charge_record` also remembers the last source record
charged, so a record re-delivered after a crash is not charged twice.

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

__all__ = [
    "CHARGED",
    "EXCEEDED",
    "QUOTA_EXCEEDED",
    "REPLAYED",
    "QuotaUsage",
    "TenantQuota",
    "charge",
    "charge_record",
    "utc_day",
]

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


#: Outcomes of :func:`charge_record`.
CHARGED: Final = "charged"
REPLAYED: Final = "replayed"
EXCEEDED: Final = "exceeded"


@dataclass(frozen=True, slots=True)
class TenantQuota:
    """A tenant's persisted quota state: usage today and the last source record charged.

    ``partition``/``offset`` locate the last record of ``sms.submitted`` charged to the tenant.
    ``sms.submitted`` is keyed by tenant, so all of a tenant's records are in one partition, in
    offset order: a record at or below ``offset`` was charged already (a replay after a crash).
    """

    usage: QuotaUsage
    partition: int = -1
    offset: int = -1


def charge_record(
    state: TenantQuota | None, quota: int | None, parts: int, now: float,
    partition: int, offset: int,
) -> tuple[TenantQuota, str]:
    """Charge the source record ``partition``/``offset`` once; ``(state, outcome)``.

    * :data:`REPLAYED`: the record is at or before the last one charged in the same partition,
      so it was charged before a crash re-delivered it: admitted, not charged again.
    * :data:`EXCEEDED`: it does not fit today's quota; not charged, state unchanged.
    * :data:`CHARGED`: admitted and charged; the state remembers the record.

    A replayed record that was *rejected* the first time, and lies before a later admitted one
    (a smaller message that fitted after a bigger one did not), is admitted on replay: the only
    way a replay can pass the quota, and by less than one message.

    >>> s, outcome = charge_record(None, quota=5, parts=3, now=0.0, partition=0, offset=7)
    >>> outcome, s.usage.used
    ('charged', 3)
    >>> charge_record(s, quota=5, parts=3, now=1.0, partition=0, offset=7)[1]
    'replayed'
    >>> charge_record(s, quota=5, parts=3, now=1.0, partition=0, offset=8)[1]
    'exceeded'
    """
    if state is not None and state.partition == partition and 0 <= offset <= state.offset:
        return state, REPLAYED
    usage, admitted = charge(None if state is None else state.usage, quota, parts, now)
    if not admitted:
        return (state if state is not None else TenantQuota(usage)), EXCEEDED
    return TenantQuota(usage, partition, offset), CHARGED
