"""The tenant's API rate: a token bucket per tenant, counted in messages (pure; time passed in).

Unlike the pipeline's limits, which make a message wait, the API answers 429 with Retry-After:
the client holds the message, nothing is queued in the API. A refused request reserves nothing
(the bucket is only replaced when the request is admitted), so a client that retries early does
not push its own wait further out. Each of ``instances`` API processes admits its share of the
rate, so the tenant's total across processes stays at the configured rate.

>>> gate = Admission(instances=1)
>>> tenant = Tenant(id="t", name="T", rate_limit_pps=1, api_rate_per_s=1, api_burst=2)
>>> gate.admit(tenant, 2, now=0.0), gate.admit(tenant, 1, now=0.0)
(None, 1.0)
"""

from __future__ import annotations

import math
from typing import Final

from smsflow.config.models import Tenant
from smsflow.domain.ratelimit import TokenBucket, acquire, retune

DEFAULT_RATE_FACTOR: Final = 10.0  # API messages/s per message part/s the tenant may send
MIN_BURST: Final = 1_000.0  # a full batch must fit, or it could never be admitted


def api_rate(tenant: Tenant) -> tuple[float, float]:
    """(messages per second, burst) for the tenant's API traffic, across all API processes."""
    rate = tenant.api_rate_per_s or tenant.rate_limit_pps * DEFAULT_RATE_FACTOR
    burst = tenant.api_burst or max(rate, MIN_BURST)
    return rate, burst


class Admission:
    def __init__(self, instances: int = 1) -> None:
        self._share = 1.0 / max(1, instances)
        self._buckets: dict[str, TokenBucket] = {}

    def admit(self, tenant: Tenant, cost: int, now: float) -> float | None:
        """None if admitted (tokens taken), else the seconds to wait before retrying."""
        rate, burst = api_rate(tenant)
        rate, burst = rate * self._share, burst * self._share
        bucket = self._buckets.get(tenant.id)
        if bucket is None:
            bucket = TokenBucket.full(rate, burst, now)
        elif bucket.rate != rate or bucket.burst != burst:
            bucket = retune(bucket, rate, burst)
        taken, wait_s = acquire(bucket, min(float(cost), burst), now)
        if wait_s > 0:
            return wait_s
        self._buckets[tenant.id] = taken
        return None


def retry_after_header(wait_s: float) -> str:
    """Retry-After is whole seconds (RFC 9110); round up so the retry is admitted."""
    return str(max(1, math.ceil(wait_s)))
