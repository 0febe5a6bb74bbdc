"""Table writes that must not become durable before an output record is.

A done marker tells a replayed record "already handled, drop me". If the marker reached the
table's changelog while the output it stands for was still in the producer's buffer, a worker
killed at that moment would come back, drop the replay, and the output would be lost: the
worker SIGKILL drill lost a delivery report exactly this way (marker durable, report not).

So the marker is written from the output's delivery callback, once the broker acknowledged the
output (``acks=-1``). faust decides a table write's changelog partition from the *current
event* (a context variable set by the stream); the callback sets it to the event that caused
the output (:mod:`pipeline.faust_patches.current_event`), so the marker lands in that event's
partition as an in-stream write would.

If the worker dies between the output and the marker, the source record is replayed and the
output repeated: a duplicate, never a loss.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, cast

import faust

from pipeline.faust_patches.current_event import as_current_event

log = logging.getLogger(__name__)


def after_delivery(
    sent: Awaitable[Any], event: faust.EventT[Any], write: Callable[[], None]
) -> None:
    """Run ``write`` (table changes) for ``event`` once the record sent is stored.

    ``sent`` is what faust's ``await topic.send(...)`` returns: an asyncio future that
    completes with the broker's acknowledgement.
    """
    future = cast("asyncio.Future[Any]", sent)

    def delivered(done: asyncio.Future[Any]) -> None:
        if done.cancelled() or done.exception() is not None:
            return  # not stored: no marker; the producer error stops the worker anyway
        try:
            with as_current_event(event):
                write()
        except Exception:  # a revoked partition's table, a stopping worker: replay will redo it
            log.exception("table write after delivery failed")

    future.add_done_callback(delivered)
