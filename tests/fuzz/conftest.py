"""Hypothesis profiles for the fuzz suite: ``ci`` (default: derandomized, bounded, part of
``make test``) and ``fuzz`` (``bench/fuzz.py``: many more examples, random seeds)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=300, derandomize=True, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "fuzz", max_examples=int(os.environ.get("SMSFLOW_FUZZ_EXAMPLES", "20000")), deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("SMSFLOW_FUZZ_PROFILE", "ci"))
