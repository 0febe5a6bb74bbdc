"""Retry classification, backoff schedule and Retry-After handling of the webhook connector."""

from __future__ import annotations

import pytest

from connectors.webhooks.policy import Verdict, WebhookRetryPolicy, classify, parse_retry_after

NOW = 1_760_000_000.0


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (200, Verdict.DELIVERED), (202, Verdict.DELIVERED), (204, Verdict.DELIVERED),
        (None, Verdict.RETRY), (408, Verdict.RETRY), (429, Verdict.RETRY),
        (500, Verdict.RETRY), (502, Verdict.RETRY), (503, Verdict.RETRY), (599, Verdict.RETRY),
        (400, Verdict.REJECTED), (401, Verdict.REJECTED), (403, Verdict.REJECTED),
        (404, Verdict.REJECTED), (410, Verdict.REJECTED), (422, Verdict.REJECTED),
        (301, Verdict.REJECTED), (302, Verdict.REJECTED), (100, Verdict.REJECTED),
    ],
)
def test_classification(status: int | None, verdict: Verdict) -> None:
    assert classify(status) is verdict


def test_backoff_doubles_up_to_the_cap_and_jitter_keeps_at_least_half() -> None:
    policy = WebhookRetryPolicy(base_s=1.0, cap_s=600.0)
    ceilings = [policy.backoff(n, 0.999999) for n in range(1, 13)]
    assert [round(c) for c in ceilings] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600]
    for n in range(1, 13):
        low, high = policy.backoff(n, 0.0), policy.backoff(n, 0.999999)
        assert low == pytest.approx(high / 2, rel=1e-5)


def test_backoff_does_not_overflow_after_thousands_of_attempts() -> None:
    assert WebhookRetryPolicy().backoff(10_000, 0.5) == pytest.approx(450.0)


def test_next_attempt_within_budget() -> None:
    policy = WebhookRetryPolicy(base_s=2.0)
    at = policy.next_attempt_at(attempt=1, now=NOW, deadline=NOW + 100, jitter=0.5)
    assert at == pytest.approx(NOW + 1.5)


def test_the_last_attempt_is_made_at_the_deadline_then_it_gives_up() -> None:
    policy = WebhookRetryPolicy(base_s=60.0)
    deadline = NOW + 10
    assert policy.next_attempt_at(attempt=3, now=NOW, deadline=deadline, jitter=0.0) == deadline
    assert policy.next_attempt_at(attempt=4, now=deadline, deadline=deadline, jitter=0.0) is None


def test_a_zero_budget_means_one_attempt() -> None:
    # The budget starts when the report was written; an attempt after it is the only one.
    policy = WebhookRetryPolicy()
    assert policy.next_attempt_at(attempt=1, now=NOW, deadline=NOW - 5, jitter=0) is None


def test_retry_after_wins_over_a_shorter_backoff_but_is_capped() -> None:
    policy = WebhookRetryPolicy(base_s=1.0, max_retry_after_s=120.0)

    def after(retry_after_s: float) -> float | None:
        return policy.next_attempt_at(attempt=1, now=NOW, deadline=NOW + 10_000, jitter=0.0,
                                      retry_after_s=retry_after_s)

    assert after(30) == NOW + 30
    assert after(0) == NOW + 0.5
    assert after(86_400) == NOW + 120


def test_a_full_day_budget_is_about_200_attempts() -> None:
    policy, now, deadline, attempts = WebhookRetryPolicy(), NOW, NOW + 86_400, 1
    while (at := policy.next_attempt_at(attempt=attempts, now=now, deadline=deadline,
                                        jitter=0.5)) is not None:
        now, attempts = at, attempts + 1
    assert now == deadline
    assert 180 <= attempts <= 210  # 144 (all delays at the cap) to 288 (all at half)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, None), ("", None), ("  ", None), ("120", 120.0), (" 0 ", 0.0), ("soon", None),
        ("-5", None),
        ("Thu, 09 Oct 2025 08:54:10 GMT", 50.0),  # NOW is 08:53:20 UTC
        ("Thu, 09 Oct 2025 08:00:00 GMT", 0.0),  # in the past: now
    ],
)
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, NOW) == seconds
