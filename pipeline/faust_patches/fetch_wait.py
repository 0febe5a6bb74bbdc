"""Shorter, fuller broker-side fetches for the worker's consumer (faust hard-codes 1500 ms).

Answers: faust-streaming 0.15.3 (pinned) creates its aiokafka 0.14.0 (pinned) consumer with
``fetch_max_wait_ms=1500`` and no setting to change it (``_create_worker_consumer``); see
:func:`shorten_fetch_wait` for what that costs. This sets aiokafka's private
``Fetcher._fetch_max_wait_ms`` and ``_fetch_min_bytes`` on the started consumer.
tests/unit/pipeline/faust_patches/test_upstream.py fails when the code in :data:`UPSTREAM`
changes; test_fetch_wait.py checks the hard-coded value and the attributes.
"""

from __future__ import annotations

import asyncio
import logging

import faust

from pipeline.faust_patches.upstream import Upstream

log = logging.getLogger(__name__)

__all__ = ["FETCH_MAX_WAIT_MS", "UPSTREAM", "shorten_fetch_wait"]

UPSTREAM: tuple[Upstream, ...] = (
    Upstream("faust.transport.drivers.aiokafka:AIOKafkaConsumerThread._create_worker_consumer",
             "c2701bfc3e6f6cad", "the hard-coded fetch_max_wait_ms=1500 this lowers"),
    Upstream("faust.transport.drivers.aiokafka:AIOKafkaConsumerThread.on_start",
             "38b4e8bd1e10723a", "app.consumer._thread._consumer: the aiokafka consumer"),
    Upstream("aiokafka.consumer.consumer:AIOKafkaConsumer.start", "2f1ba70443327538",
             "the consumer's _fetcher, created at start"),
    Upstream("aiokafka.consumer.fetcher:Fetcher.__init__", "bf21ecb7e0f210b7",
             "Fetcher._fetch_max_wait_ms and _fetch_min_bytes, read for every fetch request"),
)

#: Broker-side wait of the worker's fetches when no setting is given (see
#: :func:`shorten_fetch_wait`; ``SMSFLOW_FETCH_MAX_WAIT_MS`` sets it for the worker).
FETCH_MAX_WAIT_MS = 100


async def shorten_fetch_wait(app: faust.App, max_wait_ms: int = FETCH_MAX_WAIT_MS,
                             min_bytes: int = 1) -> None:
    """Lower the broker-side wait of the worker's fetches from faust's fixed 1500 ms.

    Worker-wide, and needed for "no head-of-line blocking" to hold in time and not only in
    order. aiokafka (0.14.0) sends no fetch for a partition whose fetched records the app has
    not taken within 100 ms (``prefetch_backoff``), and keeps one fetch in flight per broker.
    When a batch takes the worker longer than 100 ms to work through (a few hundred records at
    ~1 ms each through all agents), the next fetch holds only the idle partitions (a table
    changelog, faust's ``__assignor-__leader``); the broker parks it for ``fetch_max_wait_ms``,
    which faust 0.15.3 hard-codes to 1500, and no partition of the worker is fetched meanwhile.
    Measured on a route-level noisy-neighbour run: B's records reached the throttle 1.1-1.8 s
    after the router sent them (8 ms to be visible on the topic), with 0 ms spent in the
    scheduler; with 100 ms here, 15-70 ms at p99. The cost is an idle consumer's fetch every
    ``max_wait_ms`` instead of every 1.5 s.

    ``min_bytes`` (aiokafka's ``fetch_min_bytes``, default 1) lets the broker hold a fetch
    until that much is there, up to ``max_wait_ms``: at load each fetch then carries many
    records instead of the few that arrived since the last one, so the broker serves fewer,
    larger requests (docs/performance.md#fetch-batching).

    faust exposes no setting for it, so this sets the attribute on aiokafka's fetcher once the
    consumer has started (pinned versions; if the attributes are missing, it logs and leaves
    faust's default).
    """
    for _ in range(600):
        thread = getattr(app.consumer, "_thread", None)
        consumer = getattr(thread, "_consumer", None)
        fetcher = getattr(consumer, "_fetcher", None)
        if fetcher is not None and hasattr(fetcher, "_fetch_max_wait_ms"):
            fetcher._fetch_max_wait_ms = max_wait_ms
            fetcher._fetch_min_bytes = min_bytes
            log.info("worker fetches wait at most %d ms at the broker for %d bytes",
                     max_wait_ms, min_bytes)
            return
        await asyncio.sleep(0.1)
    log.warning("could not shorten the worker's fetch wait: faust's consumer internals changed")
