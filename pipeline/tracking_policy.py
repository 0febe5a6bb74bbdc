"""Delivery-tracking policies built from the worker's settings (one place, read at start-up)."""

from __future__ import annotations

from dataclasses import replace

from smsflow.domain.tracking import (
    DEFAULT_CORRELATION_POLICY,
    DEFAULT_HEALTH_POLICY,
    CorrelationPolicy,
    HealthPolicy,
    WindowSpec,
)
from smsflow.settings import Settings


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def correlation_policy(settings: Settings) -> CorrelationPolicy:
    ttl = _ms(settings.dlr_receipt_ttl_s)
    # The unmatched-receipt checkpoints (1, 5, 15 min) that fall inside a shortened TTL.
    retries = tuple(r for r in DEFAULT_CORRELATION_POLICY.receipt_retry_ms if r < ttl)
    return CorrelationPolicy(
        expiry_grace_ms=_ms(settings.dlr_expiry_grace_s),
        receipt_retry_ms=retries,
        receipt_ttl_ms=ttl,
        done_ttl_ms=_ms(settings.dlr_done_ttl_s),
    )


def window_spec(settings: Settings) -> WindowSpec:
    return WindowSpec(bucket_ms=settings.tracking_bucket_s * 1000,
                      buckets=settings.tracking_buckets)


def health_policy(settings: Settings) -> HealthPolicy:
    probe = _ms(settings.health_probe_after_s)
    # Weights and thresholds keep the documented defaults; only sizes and clocks are settings.
    return replace(
        DEFAULT_HEALTH_POLICY,
        min_terminal=settings.health_min_samples,
        min_submits=settings.health_min_samples,
        recover_dwell_ms=_ms(settings.health_recover_dwell_s),
        down_exit_dwell_ms=_ms(settings.health_down_exit_dwell_s),
        probe_after_ms=probe if probe > 0 else None,
    )
