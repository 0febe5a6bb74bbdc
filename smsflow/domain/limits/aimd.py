"""Adaptive rate per route (AIMD) from submit outcomes, as a value.

Theory of operation
-------------------
The sender reports each ``submit_sm_resp``: its latency and its ``command_status``. For every
route the throttle keeps an :class:`AimdState` and folds the outcomes in with
:func:`observe` (``state, sample, now -> state``); :func:`rate` is the route's current rate,
which the scheduler uses instead of the configured ``tps`` whenever it is lower.

* **Smoothing.** Latency is an EWMA over samples (``ewma_alpha``). Back-pressure responses
  (``ESME_RTHROTTLED``/``ESME_RMSGQFUL``) are usually *fast* rejections, so their latency is not
  folded in: it would make an overloaded SMSC look healthy.
* **Multiplicative decrease, in proportion.** When the smoothed latency exceeds the route's
  target, the rate is multiplied by ``target / latency`` (twice too slow → half the rate), but never
  by less than ``min_decrease_factor`` in one step. A back-pressure status multiplies it by
  ``backpressure_factor``. Both: the smaller factor. Never below ``floor_fraction * base``.
* **One cut per episode.** After a decrease, further congestion signals are ignored for
  ``max(min_decrease_interval_s, smoothed latency)``: the outcomes arriving in that time were
  submitted before the cut (one round trip, as TCP cuts once per RTT), so a burst of errors from
  one overload is counted once, not once per message. After that, while latency is still over
  target but has fallen by 5% or more since the last look, the cut is working (the SMSC's queue
  drains) and the rate is held, not cut again; flat or rising latency cuts again.
* **Additive increase.** While healthy, the rate grows by ``increase_fraction_per_s * base``
  per second of healthy outcomes (time based, so it does not depend on traffic volume), up to the
  base (the configured ``tps``). No growth during the decrease hold-off.

Example: base 100 pps, target 0.5 s. The SMSC slows to 1.5 s: the EWMA crosses 0.5 s, the rate
drops by ``max(0.5, 0.5/ewma)``, again a second later if still slow, down to the floor of 5 pps;
once latency is back under target it climbs 5 pps per second back to 100.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from smsflow.domain.smpp_status import StatusCategory, classify

__all__ = [
    "DEFAULT_AIMD",
    "AimdParams",
    "AimdState",
    "SubmitSample",
    "observe",
    "rate",
    "retune",
]


@dataclass(frozen=True, slots=True)
class AimdParams:
    target_latency_s: float = 0.5
    ewma_alpha: float = 0.2
    min_decrease_factor: float = 0.5
    backpressure_factor: float = 0.7
    floor_fraction: float = 0.05
    increase_fraction_per_s: float = 0.05
    min_decrease_interval_s: float = 1.0

    def __post_init__(self) -> None:
        if self.target_latency_s <= 0:
            raise ValueError("target_latency_s must be > 0")
        if not 0 < self.ewma_alpha <= 1:
            raise ValueError("ewma_alpha must be in (0, 1]")
        if not 0 < self.min_decrease_factor < 1 or not 0 < self.backpressure_factor < 1:
            raise ValueError("decrease factors must be in (0, 1)")
        if not 0 < self.floor_fraction <= 1:
            raise ValueError("floor_fraction must be in (0, 1]")
        if self.increase_fraction_per_s <= 0 or self.min_decrease_interval_s < 0:
            raise ValueError("increase_fraction_per_s must be > 0, interval >= 0")


DEFAULT_AIMD = AimdParams()

#: Latency that fell by at least 5% over a round trip counts as "the last cut is working".
_IMPROVING = 0.95


@dataclass(frozen=True, slots=True)
class SubmitSample:
    """One submit outcome: latency of the response and its category."""

    latency_s: float
    category: StatusCategory = StatusCategory.OK

    @classmethod
    def from_status(cls, latency_s: float, command_status: int) -> SubmitSample:
        return cls(latency_s, classify(command_status))


@dataclass(frozen=True, slots=True)
class AimdState:
    base_rate: float
    rate: float
    latency_ewma_s: float | None = None
    last_decrease_at: float | None = None
    hold_until: float | None = None  # no further decrease (and no increase) before this
    latency_at_check: float | None = None  # smoothed latency at the last cut or check
    updated: float | None = None
    decreases: int = 0

    @classmethod
    def start(cls, base_rate: float) -> AimdState:
        if not (base_rate > 0 and math.isfinite(base_rate)):
            raise ValueError("base_rate must be finite and > 0")
        return cls(base_rate=base_rate, rate=base_rate)


def rate(state: AimdState) -> float:
    """The route's current adaptive rate in parts/s."""
    return state.rate


def retune(state: AimdState, base_rate: float) -> AimdState:
    """A new configured rate: keep the same fraction of it (a throttled route stays throttled)."""
    if not (base_rate > 0 and math.isfinite(base_rate)):
        raise ValueError("base_rate must be finite and > 0")
    fraction = state.rate / state.base_rate
    return replace(state, base_rate=base_rate, rate=base_rate * fraction)


def observe(
    state: AimdState, sample: SubmitSample, now: float, params: AimdParams = DEFAULT_AIMD
) -> AimdState:
    """Fold one submit outcome into the route's state."""
    throttled = sample.category is StatusCategory.BACKPRESSURE
    ewma = state.latency_ewma_s
    if not throttled:
        latency = max(0.0, sample.latency_s)
        ewma = latency if ewma is None else ewma + params.ewma_alpha * (latency - ewma)
    slow = ewma is not None and ewma > params.target_latency_s
    floor = params.floor_fraction * state.base_rate
    if throttled or slow:
        if state.hold_until is not None and now < state.hold_until:
            return replace(state, latency_ewma_s=ewma, updated=now)
        hold_until = now + max(params.min_decrease_interval_s, ewma or 0.0)
        reference = state.latency_at_check
        if not throttled and ewma is not None and reference is not None:
            if ewma < _IMPROVING * reference:
                # The last cut is working (the queue at the SMSC drains): hold the rate and look
                # again one round trip later, instead of cutting once more for the same overload.
                return replace(
                    state, latency_ewma_s=ewma, latency_at_check=ewma, hold_until=hold_until,
                    updated=now,
                )
        factor = 1.0
        if slow and ewma is not None:
            factor = max(params.min_decrease_factor, params.target_latency_s / ewma)
        if throttled:
            factor = min(factor, params.backpressure_factor)
        return replace(
            state,
            rate=max(floor, state.rate * factor),
            latency_ewma_s=ewma,
            last_decrease_at=now,
            latency_at_check=ewma if slow else None,
            hold_until=hold_until,
            updated=now,
            decreases=state.decreases + 1,
        )
    rate_now = state.rate
    if state.updated is not None and rate_now < state.base_rate:
        since = state.updated
        if state.hold_until is not None:
            since = max(since, state.hold_until)
        elapsed = max(0.0, now - since)
        step = params.increase_fraction_per_s * state.base_rate * elapsed
        rate_now = min(state.base_rate, rate_now + step)
    return replace(
        state, rate=max(floor, rate_now), latency_ewma_s=ewma, latency_at_check=None, updated=now
    )
