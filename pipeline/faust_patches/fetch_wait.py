"""Shorter, fuller broker-side fetches for the worker's consumer (faust hard-codes 1500 ms).

Answers: faust-streaming 0.15.3 (pinned) creates its aiokafka 0.14.0 (pinned) consumer with
``fetch_max_wait_ms=1500`` and no setting to change it (``_create_worker_consumer``); see
:func:`shorten_fetch_wait` for what that costs. This sets aiokafka's private
``Fetcher._fetch_max_wait_ms`` and ``_fetch_min_bytes`` on the started consumer.
tests/unit/pipeline/faust_patches/test_upstream.py fails when the code in :data:`UPSTREAM`
changes; test_fetch_wait.py checks the hard-coded value and the attributes.

:func:`adapt_fetches` then switches between two shapes of fetch as the traffic changes: the
settings' (wait up to ``fetch_max_wait_ms`` for ``fetch_min_bytes``: few, full fetches at load)
and, below ``fetch_trickle_below_per_s`` records a second, a *trickle* shape (return as soon as
one record is there, wait at most :data:`TRICKLE_MAX_WAIT_MS`). When little arrives, a 20 ms
wait for 32 KiB that never comes means 50 empty fetches a second and 20 ms added at every hop;
the trickle shape fetches about once per record, and ten times a second when nothing arrives
(idle: ~4 % of a core less in the worker and as much in the broker,
docs/performance.md#trickle-fetches).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import faust

from pipeline.faust_patches.upstream import Upstream

log = logging.getLogger(__name__)

__all__ = [
    "FETCH_MAX_WAIT_MS", "TRICKLE_MAX_WAIT_MS", "UPSTREAM", "FetchShape", "FetchShaper",
    "adapt_fetches",
    "shorten_fetch_wait", "trickling",
]

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

#: The broker-side wait of a trickle fetch (min bytes 1). Not longer: a fetch that leaves out a
#: busy partition whose records are still being worked through (aiokafka's prefetch backoff,
#: see :func:`shorten_fetch_wait`) parks that partition for this long.
TRICKLE_MAX_WAIT_MS = 100


@dataclass(frozen=True, slots=True)
class FetchShape:
    """How a fetch waits at the broker: until ``min_bytes`` are there, at most ``max_wait_ms``."""

    min_bytes: int
    max_wait_ms: int


TRICKLE = FetchShape(min_bytes=1, max_wait_ms=TRICKLE_MAX_WAIT_MS)


def trickling(was_trickling: bool, records_per_s: float, below_per_s: float) -> bool:
    """Whether the consumer should fetch in the trickle shape, with hysteresis: it starts below
    ``below_per_s`` and stops above twice that (``0`` turns it off). Below ``below_per_s``
    (50: a batch fetch every 20 ms) a fetch per record is also fewer fetches."""
    if below_per_s <= 0:
        return False
    if was_trickling:
        return records_per_s <= 2 * below_per_s
    return records_per_s < below_per_s


async def shorten_fetch_wait(app: faust.App, max_wait_ms: int = FETCH_MAX_WAIT_MS,
                             min_bytes: int = 1) -> Any:
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
    faust's default). Returns that fetcher, or None.
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
            return fetcher
        await asyncio.sleep(0.1)
    log.warning("could not shorten the worker's fetch wait: faust's consumer internals changed")
    return None


class FetchShaper:
    """Picks the fetch shape from the records counted so far (pure: counts and times are
    passed in)."""

    def __init__(self, batch: FetchShape, below_per_s: float, count: int, now: float) -> None:
        self.batch, self.below_per_s = batch, below_per_s
        self.shape = batch
        self.rate = 0.0  # records a second over the last interval
        self._count, self._at = count, now

    def observe(self, count: int, now: float) -> FetchShape | None:
        """The new shape if it changes with the rate since the last call, else None."""
        rate = (count - self._count) / max(now - self._at, 1e-3)
        self._count, self._at = count, now
        self.rate = rate
        wanted = TRICKLE if trickling(self.shape is TRICKLE, rate, self.below_per_s) else self.batch
        if wanted is self.shape:
            return None
        self.shape = wanted
        return wanted


async def adapt_fetches(
    fetcher: Any, batch: FetchShape, below_per_s: float, received: Callable[[], int], *,
    interval_s: float = 1.0, clock: Callable[[], float] = time.monotonic,
) -> None:
    """Every ``interval_s``, give ``fetcher`` (aiokafka's, as :func:`shorten_fetch_wait` found
    it) the shape :class:`FetchShaper` picks from the records ``received()`` counts. Runs
    forever."""
    shaper = FetchShaper(batch, below_per_s, received(), clock())
    while True:
        await asyncio.sleep(interval_s)
        changed = shaper.observe(received(), clock())
        if changed is not None:
            fetcher._fetch_min_bytes = changed.min_bytes
            fetcher._fetch_max_wait_ms = changed.max_wait_ms
            log.info("%.0f records/s: worker fetches now wait at most %d ms for %d bytes",
                     shaper.rate, changed.max_wait_ms, changed.min_bytes)
