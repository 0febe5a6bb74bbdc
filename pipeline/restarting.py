"""One restart policy for the worker's long-running readers (configuration, route health).

A Kafka error (broker restart, metadata timeout, a closed connection) must not end a reader
silently: a worker whose configuration watcher died would route on stale configuration for the
rest of its life. :func:`keep_running` logs the failure and starts the reader again after a
backoff (1 s, doubling to 30 s, reset after a run that lasted a minute). Cancellation (worker
shutdown) still ends it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

__all__ = ["keep_running"]


async def keep_running(
    name: str,
    run: Callable[[], Awaitable[None]],
    *,
    first_backoff_s: float = 1.0,
    max_backoff_s: float = 30.0,
    healthy_after_s: float = 60.0,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    max_restarts: int | None = None,
) -> int:
    """Run ``run()`` again whenever it raises or returns; returns the number of restarts once
    ``max_restarts`` is reached (tests), else never."""
    backoff = first_backoff_s
    restarts = 0
    while max_restarts is None or restarts < max_restarts:
        started = time.monotonic()
        try:
            await run()
            log.error("%s stopped by itself; starting it again in %.0f s", name, backoff)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed; starting it again in %.0f s", name, backoff)
        if time.monotonic() - started >= healthy_after_s:
            backoff = first_backoff_s
        restarts += 1
        await sleep(backoff)
        backoff = min(backoff * 2, max_backoff_s)
    return restarts
