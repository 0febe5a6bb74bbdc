"""The fetch-wait patch: what it sets, and that faust/aiokafka still have it where it looks."""

from __future__ import annotations

import asyncio
import inspect
from types import SimpleNamespace
from typing import Any, cast

from aiokafka.consumer.fetcher import Fetcher
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

from pipeline.faust_patches.fetch_wait import FETCH_MAX_WAIT_MS, shorten_fetch_wait
from smsflow.settings import Settings


def test_faust_still_hard_codes_the_wait_and_aiokafka_still_reads_the_attribute() -> None:
    assert "fetch_max_wait_ms=1500" in inspect.getsource(
        AIOKafkaConsumerThread._create_worker_consumer)
    assert "self._fetch_max_wait_ms = fetch_max_wait_ms" in inspect.getsource(Fetcher.__init__)
    assert "self._fetch_max_wait_ms" in inspect.getsource(Fetcher)
    assert "self._fetch_min_bytes = fetch_min_bytes" in inspect.getsource(Fetcher.__init__)
    assert "self._fetch_min_bytes" in inspect.getsource(Fetcher._get_actions_per_node)


def test_the_started_consumer_s_fetcher_gets_the_shorter_wait() -> None:
    fetcher = SimpleNamespace(_fetch_max_wait_ms=1500, _fetch_min_bytes=1)
    app = SimpleNamespace(consumer=SimpleNamespace(
        _thread=SimpleNamespace(_consumer=SimpleNamespace(_fetcher=fetcher))))
    asyncio.run(shorten_fetch_wait(cast(Any, app)))
    assert fetcher._fetch_max_wait_ms == FETCH_MAX_WAIT_MS == 100
    assert fetcher._fetch_min_bytes == 1


def test_the_settings_make_fetches_fuller() -> None:
    fetcher = SimpleNamespace(_fetch_max_wait_ms=1500, _fetch_min_bytes=1)
    app = SimpleNamespace(consumer=SimpleNamespace(
        _thread=SimpleNamespace(_consumer=SimpleNamespace(_fetcher=fetcher))))
    settings = Settings()
    asyncio.run(shorten_fetch_wait(cast(Any, app), settings.fetch_max_wait_ms,
                                   settings.fetch_min_bytes))
    assert (fetcher._fetch_max_wait_ms, fetcher._fetch_min_bytes) == (20, 32_768)
