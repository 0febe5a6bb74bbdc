"""The one way a worker runs a :class:`~pipeline.deferral.DeferredReleaser`: records parked on
``parked`` go back to ``back_to`` (unchanged) when due, in consumer group
``<app id>-<group_suffix>``, as a task of the worker's faust app.

Used by the off-peak hold (``sms.deferred`` → ``sms.routed``) and the quarantine hold
(``sms.held`` → ``sms.submitted``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, cast

from pipeline.app import Worker
from pipeline.deferral import DeferredReleaser


def register_releaser(
    worker: Worker,
    *,
    parked: str,
    back_to: str,
    group_suffix: str,
    ready: Callable[[], Awaitable[Any]] | None = None,
    **releaser_options: Any,
) -> DeferredReleaser:
    """Build the releaser and start it as an app task once ``ready()`` (if given) returns."""
    settings = worker.settings
    back_out = worker.output(back_to)

    async def send_back(key: bytes | None, value: bytes) -> asyncio.Future[Any]:
        return cast("asyncio.Future[Any]", await back_out.send(key=key, value=value))

    releaser = DeferredReleaser(
        settings.kafka_bootstrap,
        worker.name(parked),
        f"{settings.app_id}-{group_suffix}",
        send_back,
        release_per_s=settings.deferred_release_per_s,
        **releaser_options,
    )

    async def release() -> None:
        if ready is not None:
            await ready()
        await releaser.run()

    release.__name__ = release.__qualname__ = f"release_{group_suffix}"
    worker.app.task(release)
    return releaser
