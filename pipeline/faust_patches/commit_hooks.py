"""What an app's guarded consumer consults around each offset commit (per app, registered early).

* **Barriers** (:func:`add_commit_barrier`): awaited before every commit. faust flushes its own
  producer there; the agents' outputs and table writes go through another one
  (:class:`~pipeline.outputs.OutputProducer`), and a source may be committed only once they are
  stored too. An exception from a barrier fails the commit. The same barriers are awaited at
  every partition revocation (:func:`add_commit_barrier` connects them to faust's public
  ``on_partitions_revoked`` signal), see below, and once more at a clean stop, after the
  consumer stopped (``on_before_shutdown``): table writes held back by
  :class:`~pipeline.changelog_cache.ChangelogCache` that no commit wrote (a timer's change
  while idle) are written then.
* **Caps** (:func:`add_commit_cap`): ``cap(tp, offset)`` may lower the offset the consumer
  would commit for one topic (None: commit nothing of that partition now). The scheduled
  stages hold records out of order and cap their source topic at the oldest one still held
  (:meth:`~pipeline.scheduling.ScheduledStage.cap_commit`).

The consumer (:class:`~pipeline.faust_patches.guarded_consumer.GuardedConsumer`) reads these in
its overrides of faust's ``_commit`` and ``_new_offset``; nothing else patches those methods.

Why the revocation too: at a rebalance faust flushes *its* producer and then, for the new
assignment, recovers the tables from their changelogs up to the end it sees. Our table writes
(done markers, dedupe keys) go through the other producer (:mod:`.changelog_writes`); any still
in flight are not in the changelog yet, so the recovered table lacks them while the records that
made them are replayed from the last commit: each replayed delivery then reports again. During a
broker failover writes to the dead broker's partitions wait for a new leader (seconds), so a
rebalance then (a worker killed at the same time) replayed 6,180 of 20,000 messages' reports in
``bench/scaleout.py``. Flushing first makes the changelogs complete before recovery reads them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

import faust
from faust.types import TP

log = logging.getLogger(__name__)

__all__ = ["CommitCap", "add_commit_barrier", "add_commit_cap", "barriers_of", "capped"]

#: ``cap(tp, offset)`` -> the offset that may be committed (None: nothing now).
CommitCap = Callable[[TP, int | None], int | None]

_BARRIERS: dict[int, list[Callable[[], Awaitable[None]]]] = {}  # id(app) -> barriers
_CAPS: dict[int, dict[str, list[CommitCap]]] = {}  # id(app) -> topic -> caps
_REVOCATION_HOOKS: dict[int, list[Callable[..., Awaitable[None]]]] = {}  # id(app) -> hooks


def add_commit_barrier(app: faust.App, barrier: Callable[[], Awaitable[None]]) -> None:
    """Await ``barrier()`` before every offset commit of ``app``'s consumer (e.g. flush a
    producer of our own, as faust flushes its own); an exception from it fails the commit.
    Also awaited at every partition revocation, before the next assignment's table recovery
    (an exception there crashes the worker, which faust's revocation handler does), and at a
    clean stop."""
    _BARRIERS.setdefault(id(app), []).append(barrier)

    async def at_revocation(_sender: Any, *_args: Any, **_kwargs: Any) -> None:
        started = time.monotonic()
        await barrier()
        if (waited := time.monotonic() - started) > 1.0:
            log.info("rebalance or stop: waited %.1fs for our producer to store what was in "
                     "flight", waited)

    # Kept with the barrier: faust's signals may hold receivers weakly.
    _REVOCATION_HOOKS.setdefault(id(app), []).append(at_revocation)
    app.on_partitions_revoked.connect(cast(Any, at_revocation))
    app.on_before_shutdown.connect(cast(Any, at_revocation))


def add_commit_cap(app: faust.App, topic: str, cap: CommitCap) -> None:
    """Pass every offset ``app``'s consumer would commit for ``topic`` through ``cap``; caps of
    one topic chain in the order they were added."""
    _CAPS.setdefault(id(app), {}).setdefault(topic, []).append(cap)


def barriers_of(app: object) -> tuple[Callable[[], Awaitable[None]], ...]:
    return tuple(_BARRIERS.get(id(app), ()))


def capped(app: object, tp: TP, offset: int | None) -> int | None:
    """``offset`` after every cap registered for ``tp``'s topic."""
    for cap in _CAPS.get(id(app), {}).get(tp.topic, ()):
        offset = cap(tp, offset)
    return offset
