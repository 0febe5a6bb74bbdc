"""Multi-level rate limits and scheduling (issue 4): pure, ``now`` passed in, no I/O.

* :mod:`~smsflow.domain.limits.buckets` — token bucket value and keyed sliding window.
* :mod:`~smsflow.domain.limits.tiers` — tier priority, minimum shares, Economy off-peak windows.
* :mod:`~smsflow.domain.limits.quota` — daily quota per tenant (``QUOTA_EXCEEDED``).
* :mod:`~smsflow.domain.limits.aimd` — adaptive rate per route from submit outcomes.
* :mod:`~smsflow.domain.limits.scheduler` — the non-blocking scheduler (offer / poll).
* :mod:`~smsflow.domain.limits.hierarchy` — placement, global share, config builders.

See docs/rate-limits.md.
"""

from smsflow.domain.limits.aimd import (
    DEFAULT_AIMD,
    AimdParams,
    AimdState,
    SubmitSample,
    observe,
    rate,
)
from smsflow.domain.limits.buckets import Bucket, SlidingWindow
from smsflow.domain.limits.hierarchy import (
    borrow_shares,
    demand_pps,
    global_share,
    route_limit,
    router_config,
    tenant_limit,
    throttle_config,
)
from smsflow.domain.limits.quota import (
    QUOTA_EXCEEDED,
    QuotaUsage,
    TenantQuota,
    charge,
    charge_record,
)
from smsflow.domain.limits.scheduler import (
    DestinationLimit,
    Item,
    LimiterStats,
    Poll,
    RateLimit,
    Rejected,
    Released,
    Scheduler,
    SchedulerConfig,
    SchedulerMetrics,
)
from smsflow.domain.limits.tiers import OffPeak, TierPolicy

__all__ = [
    "DEFAULT_AIMD",
    "QUOTA_EXCEEDED",
    "AimdParams",
    "AimdState",
    "Bucket",
    "DestinationLimit",
    "Item",
    "LimiterStats",
    "OffPeak",
    "Poll",
    "QuotaUsage",
    "RateLimit",
    "Rejected",
    "Released",
    "Scheduler",
    "SchedulerConfig",
    "SchedulerMetrics",
    "SlidingWindow",
    "SubmitSample",
    "TenantQuota",
    "TierPolicy",
    "borrow_shares",
    "charge",
    "charge_record",
    "demand_pps",
    "global_share",
    "observe",
    "rate",
    "route_limit",
    "router_config",
    "tenant_limit",
    "throttle_config",
]
