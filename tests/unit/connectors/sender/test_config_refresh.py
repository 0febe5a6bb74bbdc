"""The sender's second look at sms.config: at most every CONFIG_REFRESH_MIN_S, and a failed
read keeps the previous configuration and says why."""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka import KafkaException

from connectors.sender.config_refresh import CONFIG_REFRESH_MIN_S, ConfigRefresh
from smsflow.config.models import PlatformConfig
from smsflow.config.store import ConfigError, load_yaml
from tests.paths import PLATFORM_CONFIG


@pytest.fixture(scope="module")
def config() -> PlatformConfig:
    return load_yaml(Path(PLATFORM_CONFIG))


def test_reads_at_most_once_per_interval(config: PlatformConfig) -> None:
    now, reads = [100.0], []

    def read() -> PlatformConfig:
        reads.append(now[0])
        return config

    refresh = ConfigRefresh(read, clock=lambda: now[0])
    assert refresh.fresh() is None and reads == []  # just read at start
    now[0] += CONFIG_REFRESH_MIN_S
    assert refresh.fresh() is config
    now[0] += CONFIG_REFRESH_MIN_S / 2
    assert refresh.fresh() is None
    assert reads == [100.0 + CONFIG_REFRESH_MIN_S]


@pytest.mark.parametrize("error", [
    ConfigError("invalid config record 'smsc/new': 3 validation errors"),
    TimeoutError("no record from sms.config within 30.0s"),
    KafkaException("_TRANSPORT"),
])
def test_a_failed_read_is_kept_as_the_problem_until_a_read_succeeds(
    config: PlatformConfig, error: Exception,
) -> None:
    now = [0.0]
    outcomes: list[Exception | PlatformConfig] = [error, config]

    def read() -> PlatformConfig:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    refresh = ConfigRefresh(read, clock=lambda: now[0])
    now[0] += CONFIG_REFRESH_MIN_S
    assert refresh.fresh() is None
    assert refresh.failures == 1
    assert refresh.problem is not None and refresh.problem.startswith(type(error).__name__)
    now[0] += CONFIG_REFRESH_MIN_S
    assert refresh.fresh() is config
    assert refresh.problem is None and refresh.failures == 1


def test_a_bug_is_not_swallowed(config: PlatformConfig) -> None:
    def read() -> PlatformConfig:
        raise AttributeError("a bug, not a bad configuration")

    now = [0.0]
    refresh = ConfigRefresh(read, clock=lambda: now[0])
    now[0] += CONFIG_REFRESH_MIN_S
    with pytest.raises(AttributeError):
        refresh.fresh()
