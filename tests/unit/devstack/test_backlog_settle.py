"""``settle``: a transient Kafka error is read again until the timeout, then raised."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from confluent_kafka import KafkaError, KafkaException

from smsflow.devstack import backlog
from smsflow.settings import Settings

NOT_LEADER = KafkaException(KafkaError(KafkaError.NOT_LEADER_FOR_PARTITION))


def _reads(monkeypatch: pytest.MonkeyPatch, answers: list[int | KafkaException]) -> list[int]:
    calls: list[int] = []
    remaining: Iterator[int | KafkaException] = iter(answers)

    def read(_settings: Settings) -> int:
        calls.append(1)
        answer = next(remaining)
        if isinstance(answer, KafkaException):
            raise answer
        return answer

    monkeypatch.setattr(backlog, "pipeline_backlog", read)
    return calls


def test_a_transient_error_is_read_again(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _reads(monkeypatch, [NOT_LEADER, 500, 0])
    waited, left = backlog.settle(Settings(), at_most=0, timeout_s=5.0, poll_s=0.0)
    assert (left, len(calls)) == (0, 3)
    assert waited < 5.0


def test_an_error_that_outlasts_the_timeout_is_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    _reads(monkeypatch, [NOT_LEADER] * 1000)
    with pytest.raises(KafkaException):
        backlog.settle(Settings(), at_most=0, timeout_s=0.05, poll_s=0.01)


def test_a_timeout_reports_the_backlog_it_saw(monkeypatch: pytest.MonkeyPatch) -> None:
    _reads(monkeypatch, [700] * 1000)
    waited, left = backlog.settle(Settings(), at_most=100, timeout_s=0.05, poll_s=0.01)
    assert left == 700
    assert waited >= 0.05
