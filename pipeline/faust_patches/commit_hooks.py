"""What an app's guarded consumer consults around each offset commit (per app, registered early).

* **Barriers** (:func:`add_commit_barrier`): awaited before every commit. faust flushes its own
  producer there; the agents' outputs and table writes go through another one
  (:class:`~pipeline.outputs.OutputProducer`), and a source may be committed only once they are
  stored too. An exception from a barrier fails the commit.
* **Caps** (:func:`add_commit_cap`): ``cap(tp, offset)`` may lower the offset the consumer
  would commit for one topic (None: commit nothing of that partition now). The scheduled
  stages hold records out of order and cap their source topic at the oldest one still held
  (:meth:`~pipeline.scheduling.ScheduledStage.cap_commit`).

The consumer (:class:`~pipeline.faust_patches.guarded_consumer.GuardedConsumer`) reads these in
its overrides of faust's ``_commit`` and ``_new_offset``; nothing else patches those methods.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import faust
from faust.types import TP

__all__ = ["CommitCap", "add_commit_barrier", "add_commit_cap", "barriers_of", "capped"]

#: ``cap(tp, offset)`` -> the offset that may be committed (None: nothing now).
CommitCap = Callable[[TP, int | None], int | None]

_BARRIERS: dict[int, list[Callable[[], Awaitable[None]]]] = {}  # id(app) -> barriers
_CAPS: dict[int, dict[str, list[CommitCap]]] = {}  # id(app) -> topic -> caps


def add_commit_barrier(app: faust.App, barrier: Callable[[], Awaitable[None]]) -> None:
    """Await ``barrier()`` before every offset commit of ``app``'s consumer (e.g. flush a
    producer of our own, as faust flushes its own); an exception from it fails the commit."""
    _BARRIERS.setdefault(id(app), []).append(barrier)


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
