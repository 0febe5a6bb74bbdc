"""Route health: a score and a HEALTHY / DEGRADED / DOWN state machine over a route's window.

Theory of operation
-------------------
:func:`evaluate` reads a route's :class:`~smsflow.domain.tracking.windows.WindowStats` and its
previous :class:`HealthState` and returns the next state and a :class:`RouteHealthReport`
(the fields of ``schemas/avro/RouteHealth.avsc``). Time is ``now_ms``, passed in.

Judging. A metric is *judged* only with enough samples in the window: the delivery rate with
``min_terminal`` terminal outcomes, the error rate with ``min_submits`` submits, the p95 latency
with ``min_submits`` timed submits. Unjudged metrics neither degrade nor clear a route.

Score (0..1), the weighted mean of the judged components (weights renormalised over them)::

    delivery = delivery_rate
    latency  = 1 if p95 <= latency_target_ms else latency_target_ms / p95
    errors   = max(0, 1 - error_rate / error_rate_for_zero)
    score    = sum(w_i * c_i) / sum(w_i)          (defaults: w = 0.6, 0.2, 0.2)

A DOWN route scores 0. With nothing judged, a HEALTHY route scores 1 and a DEGRADED one keeps
its last judged score.

States (conditions are checked in this order; the table is :func:`_transition`):

* DOWN when the bind is lost (:func:`observe_bind`) or the judged error rate is
  ``>= down_error_rate`` (entered at once, from any state). It is left for DEGRADED once the
  bind is up and the error rate is unjudged or ``< down_exit_error_rate`` continuously for
  ``down_exit_dwell_ms``.
* HEALTHY → DEGRADED at once when a judged metric crosses its *degrade* threshold
  (delivery rate < 0.90, error rate > 0.10, p95 > 2,000 ms).
* DEGRADED → HEALTHY only when the delivery rate is judged and every judged metric is within
  its *recover* threshold (delivery rate >= 0.95, error rate <= 0.05, p95 <= 1,000 ms)
  continuously for ``recover_dwell_ms``. Values between the two thresholds keep the state and
  restart the dwell clock: no flapping around one threshold.
* Probe: a DEGRADED route with too few samples to judge (the router sent its traffic away) for
  ``probe_after_ms`` returns to HEALTHY ("half-open"), so traffic comes back and is judged again.

:func:`publish_decision` throttles what is written to the compacted ``sms.route-health`` topic.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

from smsflow.domain.route_state import RouteState
from smsflow.domain.tracking._codec import StateFormatError
from smsflow.domain.tracking.windows import WindowStats

__all__ = [
    "DEFAULT_HEALTH_POLICY",
    "DEFAULT_PUBLISH_POLICY",
    "HealthPolicy",
    "HealthReason",
    "HealthState",
    "PublishPolicy",
    "RouteHealthReport",
    "RouteState",
    "evaluate",
    "observe_bind",
    "publish_decision",
    "route_score",
]


class HealthReason(StrEnum):
    """Why the route is in its state after the last evaluation (for logs and metrics)."""

    NO_DATA = "NO_DATA"  # too few samples to judge anything
    OK = "OK"  # judged metrics within bounds
    DELIVERY_RATE_LOW = "DELIVERY_RATE_LOW"
    ERROR_RATE_HIGH = "ERROR_RATE_HIGH"
    LATENCY_HIGH = "LATENCY_HIGH"
    NOT_RECOVERED = "NOT_RECOVERED"  # DEGRADED, metrics between degrade and recover thresholds
    RECOVERING = "RECOVERING"  # DEGRADED, recover thresholds met, dwell time not yet
    RECOVERED = "RECOVERED"  # DEGRADED -> HEALTHY
    PROBE = "PROBE"  # DEGRADED -> HEALTHY after probe_after_ms without judgeable data
    BIND_LOST = "BIND_LOST"
    ERROR_RATE_CRITICAL = "ERROR_RATE_CRITICAL"
    DOWN_CLEARING = "DOWN_CLEARING"  # DOWN, exit conditions met, dwell time not yet
    DOWN_CLEARED = "DOWN_CLEARED"  # DOWN -> DEGRADED


@dataclass(frozen=True, slots=True)
class HealthPolicy:
    """Score weights, thresholds and timings. Rates are fractions, latencies p95 in ms."""

    weight_delivery: float = 0.6
    weight_latency: float = 0.2
    weight_errors: float = 0.2
    latency_target_ms: float = 500.0
    error_rate_for_zero: float = 0.25
    min_terminal: int = 50
    min_submits: int = 50
    degrade_delivery_rate: float = 0.90
    recover_delivery_rate: float = 0.95
    degrade_error_rate: float = 0.10
    recover_error_rate: float = 0.05
    degrade_latency_ms: float = 2_000.0
    recover_latency_ms: float = 1_000.0
    recover_dwell_ms: int = 300_000
    down_error_rate: float = 0.50
    down_exit_error_rate: float = 0.25
    down_exit_dwell_ms: int = 60_000
    probe_after_ms: int | None = 600_000

    def __post_init__(self) -> None:
        weights = (self.weight_delivery, self.weight_latency, self.weight_errors)
        if min(weights) < 0 or sum(weights) <= 0:
            raise ValueError("weights must be >= 0 and not all zero")
        if self.latency_target_ms <= 0 or self.error_rate_for_zero <= 0:
            raise ValueError("latency_target_ms and error_rate_for_zero must be positive")
        if self.min_terminal < 1 or self.min_submits < 1:
            raise ValueError("minimum sample sizes must be >= 1")
        if not self.degrade_delivery_rate <= self.recover_delivery_rate:
            raise ValueError("recover_delivery_rate must be >= degrade_delivery_rate")
        if not self.recover_error_rate <= self.degrade_error_rate < self.down_error_rate:
            raise ValueError("need recover_error_rate <= degrade_error_rate < down_error_rate")
        if not self.down_exit_error_rate <= self.down_error_rate:
            raise ValueError("down_exit_error_rate must be <= down_error_rate")
        if not self.recover_latency_ms <= self.degrade_latency_ms:
            raise ValueError("recover_latency_ms must be <= degrade_latency_ms")
        if min(self.recover_dwell_ms, self.down_exit_dwell_ms) < 0:
            raise ValueError("dwell times must be >= 0")
        if self.probe_after_ms is not None and self.probe_after_ms < 0:
            raise ValueError("probe_after_ms must be >= 0 or None")


DEFAULT_HEALTH_POLICY: Final = HealthPolicy()


@dataclass(frozen=True, slots=True)
class PublishPolicy:
    """When a new health record is worth writing to the compacted topic."""

    min_score_delta: float = 0.05  # a score move at least this large is news...
    min_interval_ms: int = 10_000  # ...but not more often than this per route
    max_interval_ms: int = 60_000  # republish an unchanged record at least this often


DEFAULT_PUBLISH_POLICY: Final = PublishPolicy()

_STATES: Final = tuple(RouteState)
_REASONS: Final = tuple(HealthReason)
_MAGIC: Final = b"H"
_VERSION: Final = 1
# magic, version, state, reason, flags, published state, since, exit since, quiet since,
# published at, score, published score
_LAYOUT: Final = struct.Struct(">cBBBBBqqqqdd")
_BIND_UP, _HAS_EXIT, _HAS_QUIET, _HAS_PUBLISHED = 1, 2, 4, 8


@dataclass(frozen=True, slots=True)
class HealthState:
    """Per-route memory of the state machine and of the last published record."""

    state: RouteState = RouteState.HEALTHY
    reason: HealthReason = HealthReason.NO_DATA
    since_ms: int = 0  # when ``state`` was entered
    score: float = 1.0  # last score computed from judged metrics
    bind_up: bool = True
    exit_since_ms: int | None = None  # leave condition holding since (dwell clock)
    quiet_since_ms: int | None = None  # DEGRADED without judgeable data since (probe clock)
    published_state: RouteState | None = None
    published_score: float = 0.0
    published_at_ms: int | None = None

    @classmethod
    def initial(cls, now_ms: int) -> HealthState:
        return cls(since_ms=now_ms)

    def to_bytes(self) -> bytes:
        """Fixed 54 bytes."""
        flags = (
            (_BIND_UP if self.bind_up else 0)
            | (_HAS_EXIT if self.exit_since_ms is not None else 0)
            | (_HAS_QUIET if self.quiet_since_ms is not None else 0)
            | (_HAS_PUBLISHED if self.published_at_ms is not None else 0)
        )
        published_state = self.published_state or RouteState.HEALTHY
        return _LAYOUT.pack(
            _MAGIC, _VERSION, _STATES.index(self.state), _REASONS.index(self.reason), flags,
            _STATES.index(published_state), self.since_ms, self.exit_since_ms or 0,
            self.quiet_since_ms or 0, self.published_at_ms or 0, self.score,
            self.published_score,
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> HealthState:
        if len(data) != _LAYOUT.size:
            raise StateFormatError("not a health state (size)")
        (magic, version, state, reason, flags, published_state, since, exit_since, quiet_since,
         published_at, score, published_score) = _LAYOUT.unpack(data)
        if magic != _MAGIC or version != _VERSION:
            raise StateFormatError(f"not a health state v{_VERSION}")
        if max(state, published_state) >= len(_STATES) or reason >= len(_REASONS):
            raise StateFormatError("unknown state or reason code")
        published = bool(flags & _HAS_PUBLISHED)
        return cls(
            state=_STATES[state],
            reason=_REASONS[reason],
            since_ms=since,
            score=score,
            bind_up=bool(flags & _BIND_UP),
            exit_since_ms=exit_since if flags & _HAS_EXIT else None,
            quiet_since_ms=quiet_since if flags & _HAS_QUIET else None,
            published_state=_STATES[published_state] if published else None,
            published_score=published_score,
            published_at_ms=published_at if published else None,
        )


@dataclass(frozen=True, slots=True)
class RouteHealthReport:
    """A ``RouteHealth`` record as a plain value (convert with ``RouteHealth(**r.as_record())``)."""

    route_id: str
    state: RouteState
    score: float
    delivery_rate: float | None
    submit_latency_p95_ms: float | None
    error_rate: float | None
    window_s: int
    updated_at: datetime

    def as_record(self) -> dict[str, Any]:
        return {
            "route_id": self.route_id,
            "state": self.state.value,
            "score": self.score,
            "delivery_rate": self.delivery_rate,
            "submit_latency_p95_ms": self.submit_latency_p95_ms,
            "error_rate": self.error_rate,
            "window_s": self.window_s,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True, slots=True)
class _Judged:
    delivery_rate: float | None
    error_rate: float | None
    p95_ms: float | None


def _judge(stats: WindowStats, policy: HealthPolicy) -> _Judged:
    return _Judged(
        delivery_rate=stats.delivery_rate if stats.terminal_total >= policy.min_terminal else None,
        error_rate=stats.error_rate if stats.submits >= policy.min_submits else None,
        p95_ms=stats.latency_p95_ms if stats.latency_count >= policy.min_submits else None,
    )


def _score(judged: _Judged, policy: HealthPolicy) -> float | None:
    parts: list[tuple[float, float]] = []
    if judged.delivery_rate is not None:
        parts.append((policy.weight_delivery, judged.delivery_rate))
    if judged.p95_ms is not None:
        target = policy.latency_target_ms
        parts.append((policy.weight_latency,
                      1.0 if judged.p95_ms <= target else target / judged.p95_ms))
    if judged.error_rate is not None:
        parts.append((policy.weight_errors,
                      max(0.0, 1.0 - judged.error_rate / policy.error_rate_for_zero)))
    weight = sum(w for w, _ in parts)
    if weight <= 0:
        return None
    return min(1.0, max(0.0, sum(w * c for w, c in parts) / weight))


def route_score(stats: WindowStats, policy: HealthPolicy = DEFAULT_HEALTH_POLICY) -> float | None:
    """The score formula alone; ``None`` when no metric has enough samples."""
    return _score(_judge(stats, policy), policy)


def _down_reason(state: HealthState, judged: _Judged, policy: HealthPolicy) -> HealthReason | None:
    if not state.bind_up:
        return HealthReason.BIND_LOST
    if judged.error_rate is not None and judged.error_rate >= policy.down_error_rate:
        return HealthReason.ERROR_RATE_CRITICAL
    return None


def _degrade_reason(judged: _Judged, policy: HealthPolicy) -> HealthReason | None:
    if judged.delivery_rate is not None and judged.delivery_rate < policy.degrade_delivery_rate:
        return HealthReason.DELIVERY_RATE_LOW
    if judged.error_rate is not None and judged.error_rate > policy.degrade_error_rate:
        return HealthReason.ERROR_RATE_HIGH
    if judged.p95_ms is not None and judged.p95_ms > policy.degrade_latency_ms:
        return HealthReason.LATENCY_HIGH
    return None


def _recovered(judged: _Judged, policy: HealthPolicy) -> bool:
    return (
        judged.delivery_rate is not None
        and judged.delivery_rate >= policy.recover_delivery_rate
        and (judged.error_rate is None or judged.error_rate <= policy.recover_error_rate)
        and (judged.p95_ms is None or judged.p95_ms <= policy.recover_latency_ms)
    )


def _held(since_ms: int | None, now_ms: int, dwell_ms: int) -> tuple[int, bool]:
    start = now_ms if since_ms is None else since_ms
    return start, now_ms - start >= dwell_ms


def _transition(
    state: HealthState, judged: _Judged, now_ms: int, policy: HealthPolicy
) -> HealthState:
    """The state machine: one function, every transition in one place."""
    current = state.state
    down = _down_reason(state, judged, policy)
    if down is not None:
        return _enter(state, RouteState.DOWN, down, now_ms)

    if current is RouteState.DOWN:
        if judged.error_rate is not None and judged.error_rate >= policy.down_exit_error_rate:
            return _update(state, exit_since_ms=None)  # keep the reason that put it DOWN
        start, held = _held(state.exit_since_ms, now_ms, policy.down_exit_dwell_ms)
        if held:
            return _enter(state, RouteState.DEGRADED, HealthReason.DOWN_CLEARED, now_ms)
        return _update(state, reason=HealthReason.DOWN_CLEARING, exit_since_ms=start)

    degrade = _degrade_reason(judged, policy)
    if current is RouteState.HEALTHY:
        if degrade is not None:
            return _enter(state, RouteState.DEGRADED, degrade, now_ms)
        ok = judged.delivery_rate is not None or judged.error_rate is not None
        return _update(state, reason=HealthReason.OK if ok else HealthReason.NO_DATA)

    # DEGRADED
    if _recovered(judged, policy):
        start, held = _held(state.exit_since_ms, now_ms, policy.recover_dwell_ms)
        if held:
            return _enter(state, RouteState.HEALTHY, HealthReason.RECOVERED, now_ms)
        return _update(state, reason=HealthReason.RECOVERING, exit_since_ms=start,
                       quiet_since_ms=None)
    if degrade is None and judged.delivery_rate is None:
        # Too little traffic to judge recovery: probe after a while.
        start, held = _held(state.quiet_since_ms, now_ms, policy.probe_after_ms or 0)
        if policy.probe_after_ms is not None and held:
            return _enter(state, RouteState.HEALTHY, HealthReason.PROBE, now_ms)
        return _update(state, reason=HealthReason.NO_DATA, exit_since_ms=None,
                       quiet_since_ms=start)
    return _update(state, reason=degrade or HealthReason.NOT_RECOVERED, exit_since_ms=None,
                   quiet_since_ms=None)


def _update(state: HealthState, **changes: Any) -> HealthState:
    """``replace`` that returns ``state`` itself when nothing changes (the common case)."""
    if all(getattr(state, name) == value for name, value in changes.items()):
        return state
    return replace(state, **changes)


def _enter(state: HealthState, new: RouteState, reason: HealthReason, now_ms: int) -> HealthState:
    since = state.since_ms if new is state.state else now_ms
    return replace(state, state=new, reason=reason, since_ms=since, exit_since_ms=None,
                   quiet_since_ms=None)


def _utc(now_ms: int) -> datetime:
    return datetime.fromtimestamp(now_ms / 1000, tz=UTC)


def evaluate(
    state: HealthState,
    stats: WindowStats,
    route_id: str,
    now_ms: int,
    policy: HealthPolicy = DEFAULT_HEALTH_POLICY,
) -> tuple[HealthState, RouteHealthReport]:
    """Next health state of ``route_id`` and the record describing it.

    The report's rates are the raw window figures (``None`` only without any traffic), even
    when there are too few samples for them to count toward the state or the score.
    """
    judged = _judge(stats, policy)
    computed = _score(judged, policy)
    new = _transition(state, judged, now_ms, policy)
    if computed is not None and computed != new.score:
        new = replace(new, score=computed)
    if new.state is RouteState.DOWN:
        score = 0.0
    elif computed is not None:
        score = computed
    else:
        score = 1.0 if new.state is RouteState.HEALTHY else new.score
    report = RouteHealthReport(
        route_id=route_id,
        state=new.state,
        score=score,
        delivery_rate=stats.delivery_rate,
        submit_latency_p95_ms=stats.latency_p95_ms,
        error_rate=stats.error_rate,
        window_s=stats.window_s,
        updated_at=_utc(now_ms),
    )
    return new, report


def observe_bind(state: HealthState, up: bool) -> HealthState:
    """Record whether the route has a usable bind; the next :func:`evaluate` acts on it."""
    return state if state.bind_up is up else replace(state, bind_up=up)


def publish_decision(
    state: HealthState,
    report: RouteHealthReport,
    now_ms: int,
    policy: PublishPolicy = DEFAULT_PUBLISH_POLICY,
) -> tuple[HealthState, bool]:
    """Whether to publish ``report`` now; when yes, the state remembers it as published.

    Publish when: nothing was published yet; the state differs from the published one (at
    once); the score moved by ``min_score_delta`` or more and ``min_interval_ms`` has passed;
    or ``max_interval_ms`` has passed (a heartbeat the router can check for staleness).
    """
    last = state.published_at_ms
    elapsed = None if last is None else now_ms - last
    publish = (
        elapsed is None
        or report.state is not state.published_state
        or elapsed >= policy.max_interval_ms
        or (
            abs(report.score - state.published_score) >= policy.min_score_delta
            and elapsed >= policy.min_interval_ms
        )
    )
    if not publish:
        return state, False
    return replace(state, published_state=report.state, published_score=report.score,
                   published_at_ms=now_ms), True
