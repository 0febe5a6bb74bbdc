"""The two limiter primitives, counted in message parts: a token bucket and a keyed sliding window.

Theory of operation
-------------------
:class:`Bucket` is a token bucket *as a value* (like :mod:`smsflow.domain.ratelimit`), but with
check-then-take semantics instead of reserve-and-sleep: a scheduler asks :func:`wait_for` how long
until a cost fits, and only when every applicable limit says "now" does it :func:`take` from all of
them. That is what lets one message wait without holding tokens that another route could use.

A cost larger than the bucket (a 6-part message on a 5-part burst) is admitted once the bucket is
full and leaves the bucket in debt, so the long-run rate is still exact and a big message can
never be starved by its own size.

:class:`SlidingWindow` is the per-destination anti-burst guard: at most ``limit`` parts per key
in any ``window_s`` seconds (an exact sliding log). A key whose newest entry is older than the
window carries no information, so it is evicted (a few per take, oldest first, so no take pays
for a sweep); memory is therefore bounded by the keys active in the last window, and a hard
``max_keys`` cap evicts the least recently used key beyond that (counted in
:attr:`SlidingWindow.evicted_active`: the only way the guard can be exceeded).

Time is always a parameter (``now``: seconds, any consistent clock). A clock that steps back is
tolerated: nothing refills and nothing expires until it catches up.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["EPSILON", "Bucket", "SlidingWindow", "level", "retune", "take", "wait_for"]

#: Tolerance (parts) for float round-off: a bucket a millionth of a part short is "ready".
EPSILON = 1e-6


@dataclass(frozen=True, slots=True)
class Bucket:
    """Token bucket: ``rate`` parts/s, capacity ``burst`` parts, ``tokens`` at time ``updated``.

    >>> b = Bucket.full(rate=10.0, burst=5.0, now=0.0)
    >>> b = take(b, 5, now=0.0)
    >>> wait_for(b, 2, now=0.0)
    0.2
    """

    rate: float
    burst: float
    tokens: float
    updated: float

    @classmethod
    def full(cls, rate: float, burst: float, now: float) -> Bucket:
        _check(rate, burst)
        return cls(rate, burst, burst, now)

    @classmethod
    def empty(cls, rate: float, burst: float, now: float) -> Bucket:
        _check(rate, burst)
        return cls(rate, burst, 0.0, now)


def _check(rate: float, burst: float) -> None:
    if not (rate >= 0 and math.isfinite(rate)):
        raise ValueError(f"rate must be finite and >= 0, got {rate}")
    if not (burst > 0 and math.isfinite(burst)):
        raise ValueError(f"burst must be finite and > 0, got {burst}")


def level(bucket: Bucket, now: float) -> float:
    """Tokens available at ``now`` (negative while in debt)."""
    # Hot path (several calls per scheduling decision): plain comparisons, no min/max calls.
    tokens = bucket.tokens
    elapsed = now - bucket.updated
    if elapsed <= 0 or tokens >= bucket.burst:
        return tokens
    tokens += elapsed * bucket.rate
    return tokens if tokens < bucket.burst else bucket.burst


def wait_for(bucket: Bucket, cost: float, now: float) -> float:
    """Seconds from ``now`` until ``cost`` parts fit (0.0: now; ``inf`` if the rate is 0)."""
    burst = bucket.burst
    need = (cost if cost < burst else burst) - level(bucket, now)
    if need <= EPSILON:
        return 0.0
    if bucket.rate <= 0:
        return math.inf
    return need / bucket.rate


def take(bucket: Bucket, cost: float, now: float) -> Bucket:
    """Consume ``cost`` parts at ``now``; the caller checked :func:`wait_for` first."""
    updated = now if now > bucket.updated else bucket.updated
    return Bucket(bucket.rate, bucket.burst, level(bucket, now) - cost, updated)


def retune(bucket: Bucket, rate: float, burst: float, now: float) -> Bucket:
    """Apply a new rate/burst keeping what has accrued (capped at the new burst)."""
    _check(rate, burst)
    tokens = min(level(bucket, now), burst)
    return Bucket(rate, burst, tokens, max(now, bucket.updated))


class SlidingWindow:
    """At most ``limit`` parts per key in any ``window_s`` seconds; bounded memory.

    Mutable (it is a table of many keys), deterministic and I/O free. Only :meth:`take` stores
    anything; :meth:`wait_for` on an unknown key is 0. An entry taken at ``t`` counts while
    ``t + window_s > now``. Each key's log is a short list (at most ``limit`` entries plus one
    oversized), about 200 bytes per active key with its string.
    """

    __slots__ = ("_keys", "evicted_active", "limit", "max_keys", "window_s")

    #: Idle keys dropped per take at most: more than the one a take can add, so the table keeps
    #: up, without a take ever paying for a whole sweep.
    _EVICT_PER_TAKE = 4

    def __init__(self, limit: int, window_s: float = 60.0, max_keys: int = 1_000_000) -> None:
        if limit <= 0 or window_s <= 0 or max_keys <= 0:
            raise ValueError("limit, window_s and max_keys must be positive")
        self.limit = limit
        self.window_s = window_s
        self.max_keys = max_keys
        self.evicted_active = 0
        # key → log of (time, parts), oldest first; keys ordered by last take (LRU first).
        self._keys: OrderedDict[str, list[tuple[float, int]]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._keys)

    def retune(self, limit: int, window_s: float | None = None) -> None:
        """New limit (and window) keeping every key's log."""
        if limit <= 0 or (window_s is not None and window_s <= 0):
            raise ValueError("limit and window_s must be positive")
        self.limit = limit
        if window_s is not None:
            self.window_s = window_s

    def used(self, key: str, now: float) -> int:
        """Parts taken for ``key`` in the window ending at ``now``."""
        log = self._keys.get(key)
        return 0 if log is None else sum(parts for _, parts in self._expire(log, now))

    def ready_at(self, key: str, cost: int, now: float) -> float:
        """When ``cost`` parts fit for ``key``: ``now``, or the (absolute) time an entry expires.

        A cost above the limit needs an empty window. Absolute, so a caller that schedules a
        wake-up at this time finds the entry expired by exactly the same comparison.
        """
        log = self._keys.get(key)
        if log is None:
            return now
        log = self._expire(log, now)
        excess = sum(parts for _, parts in log) + min(cost, self.limit) - self.limit
        if excess <= 0:
            return now
        freed = 0
        for at, parts in log:
            freed += parts
            if freed >= excess:
                return at + self.window_s
        return now  # unreachable: the whole log frees its total >= excess

    def wait_for(self, key: str, cost: int, now: float) -> float:
        """Seconds until ``cost`` parts fit for ``key``."""
        return max(0.0, self.ready_at(key, cost, now) - now)

    def take(self, key: str, cost: int, now: float) -> None:
        log = self._keys.get(key)
        if log is None:
            self._keys[key] = [(now, cost)]
        else:
            self._expire(log, now).append((now, cost))
            self._keys.move_to_end(key)
        self._evict(now, self._EVICT_PER_TAKE)

    def evict(self, now: float) -> int:
        """Drop every idle key (nothing in the window) and, beyond ``max_keys``, the LRU keys."""
        return self._evict(now, None)

    def _evict(self, now: float, budget: int | None) -> int:
        dropped = 0
        keys = self._keys
        while keys and (budget is None or dropped < budget or len(keys) > self.max_keys):
            key = next(iter(keys))
            log = keys[key]
            active = bool(log) and log[-1][0] + self.window_s > now
            if active:
                if len(keys) <= self.max_keys:
                    break
                self.evicted_active += 1
            del keys[key]
            dropped += 1
        return dropped

    def _expire(self, log: list[tuple[float, int]], now: float) -> list[tuple[float, int]]:
        window_s = self.window_s
        expired = 0
        for at, _ in log:
            if at + window_s > now:
                break
            expired += 1
        if expired:
            del log[:expired]
        return log
