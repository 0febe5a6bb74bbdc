"""The fetch-wait patch: what it sets, and that faust/aiokafka still have it where it looks."""

from __future__ import annotations

import asyncio
import inspect
from types import SimpleNamespace
from typing import Any, cast

from aiokafka.consumer.fetcher import Fetcher
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

from pipeline.faust_patches.fetch_wait import (
    FETCH_MAX_WAIT_MS,
    TRICKLE_MAX_WAIT_MS,
    FetchShape,
    FetchShaper,
    adapt_fetches,
    shorten_fetch_wait,
    trickling,
)
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


def test_trickling_has_hysteresis_and_can_be_turned_off() -> None:
    assert trickling(False, 49.9, 50) and not trickling(False, 50.0, 50)
    assert trickling(True, 100.0, 50) and not trickling(True, 100.1, 50)
    assert not trickling(False, 0.0, 0) and not trickling(True, 0.0, 0)


def test_the_shape_follows_the_rate_of_records() -> None:
    """One second per observation: 0/s -> trickle, 90/s stays (below twice the threshold),
    200/s -> batch, 60/s stays batch (above the threshold), 10/s -> trickle again."""
    batch = FetchShape(min_bytes=32_768, max_wait_ms=20)
    shaper = FetchShaper(batch, 50, count=1000, now=0.0)
    count, changes = 1000, []
    for second, per_s in enumerate([0, 90, 200, 60, 10], start=1):
        count += per_s
        changes.append(shaper.observe(count, float(second)))
    trickle = FetchShape(min_bytes=1, max_wait_ms=TRICKLE_MAX_WAIT_MS)
    assert changes == [trickle, None, batch, None, trickle]
    assert shaper.shape == trickle and shaper.rate == 10


def test_the_controller_sets_the_fetcher() -> None:
    fetcher = SimpleNamespace(_fetch_max_wait_ms=20, _fetch_min_bytes=32_768)

    async def run() -> None:
        task = asyncio.ensure_future(adapt_fetches(
            fetcher, FetchShape(32_768, 20), 50, lambda: 0, interval_s=0.01))
        for _ in range(100):
            await asyncio.sleep(0.01)
            if fetcher._fetch_min_bytes == 1:
                break
        task.cancel()

    asyncio.run(run())
    assert (fetcher._fetch_min_bytes, fetcher._fetch_max_wait_ms) == (1, TRICKLE_MAX_WAIT_MS)
