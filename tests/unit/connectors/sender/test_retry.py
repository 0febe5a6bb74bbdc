from __future__ import annotations

import pytest

from connectors.sender.retry import RetryKind, SubmitRetryPolicy


def test_permanent_errors_never_retry() -> None:
    assert SubmitRetryPolicy().next_delay(RetryKind.PERMANENT, 1) is None


def test_backoff_doubles_and_is_capped() -> None:
    policy = SubmitRetryPolicy(base_delay_s=0.1, max_delay_s=1.0)
    delays = [policy.next_delay(RetryKind.BACKPRESSURE, n) for n in range(1, 7)]
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


def test_temporary_errors_give_up_before_backpressure_does() -> None:
    policy = SubmitRetryPolicy(max_temporary_attempts=3, max_backpressure_attempts=10)
    assert policy.next_delay(RetryKind.TEMPORARY, 3) is None
    assert policy.next_delay(RetryKind.BACKPRESSURE, 3) is not None
    assert policy.next_delay(RetryKind.BACKPRESSURE, 10) is None
