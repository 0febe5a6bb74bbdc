"""Token bucket as a value: ``acquire(bucket, cost, now) -> (bucket, wait_s)``.

The caller owns time and storage: it passes ``now`` (monotonic seconds), keeps the returned
bucket, and waits ``wait_s`` before sending. Tokens may go negative: a caller that must wait has
already reserved its place, so concurrent callers queue fairly behind it instead of racing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class TokenBucket:
    rate: float  # tokens per second
    burst: float  # bucket capacity
    tokens: float
    updated: float  # monotonic seconds of the last refill

    @classmethod
    def full(cls, rate: float, burst: float, now: float) -> TokenBucket:
        if rate <= 0 or burst <= 0:
            raise ValueError("rate and burst must be positive")
        return cls(rate, burst, burst, now)


def acquire(bucket: TokenBucket, cost: float, now: float) -> tuple[TokenBucket, float]:
    """Reserve ``cost`` tokens; return the new bucket and how long to wait before using them."""
    elapsed = max(0.0, now - bucket.updated)
    tokens = min(bucket.burst, bucket.tokens + elapsed * bucket.rate) - cost
    wait_s = 0.0 if tokens >= 0 else -tokens / bucket.rate
    return replace(bucket, tokens=tokens, updated=max(now, bucket.updated)), wait_s


def retune(bucket: TokenBucket, rate: float, burst: float) -> TokenBucket:
    """Apply a new rate/burst (config change) keeping the tokens already accrued."""
    return replace(bucket, rate=rate, burst=burst, tokens=min(bucket.tokens, burst))
