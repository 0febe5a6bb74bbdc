"""Economy off-peak holding: park on ``sms.deferred``, send back when the window opens.

The throttle calls the ``park`` function :func:`register` returns (see :mod:`pipeline.deferral`
for the whole design); the worker task runs this worker's
:class:`~pipeline.deferral.DeferredReleaser`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, cast

from pipeline.agents.release_task import register_releaser
from pipeline.app import Worker
from pipeline.deferral import DEFERRAL, release_at_header
from smsflow.topics import DEFERRED, ROUTED

__all__ = ["Park", "register"]

#: ``park(key, value, release_at)``: write a ``sms.routed`` record to ``sms.deferred`` until
#: ``release_at``; the returned future resolves once Kafka has it. The stage's divert acks after
#: it; the throttle's park-on-arrival acks at once, safe because faust flushes its producer
#: before each commit.
Park = Callable[[bytes, bytes, float], Awaitable["asyncio.Future[Any]"]]


def register(worker: Worker) -> Park:
    """The park the throttle calls; this worker's releaser sends parked Economy back to
    ``sms.routed`` when its off-peak window opens."""
    deferred_out = worker.output(DEFERRED)

    async def park(key: bytes, value: bytes, release_at: float) -> asyncio.Future[Any]:
        sent = await deferred_out.send(key=key, value=value,
                                       headers=release_at_header(release_at))
        DEFERRAL.parked += 1
        return cast("asyncio.Future[Any]", sent)

    register_releaser(worker, parked=DEFERRED, back_to=ROUTED, group_suffix="deferred")
    return park
