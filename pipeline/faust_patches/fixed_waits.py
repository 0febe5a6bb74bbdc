"""faust's and mode's fixed sleeps at worker start and stop, replaced by waits for the event.

Answers three waits of faust-streaming 0.15.3 / mode-streaming 0.7.1 (pinned) that every worker
start or stop sat out in full, whatever happened meanwhile (measured on the 2-core dev box:
about 3 s per worker start and stop, paid by every test stack, drill restart and deployment):

* ``TableManager.on_start`` sleeps 1 s before it finalises the tables (creates their changelog
  channels and starts recovery): a grace period for tables declared while the app starts.
  Every table of this worker is declared before the app starts (``create_app``; the changelog
  routing depends on it), and a table added later still fails loudly (``Too late to add tables
  at this point``), so :class:`PromptTableManager` finalises at once.
* mode's ``Worker._gather_all`` polls every 0.1 s, for up to 1 s, until no asyncio task is
  left, then cancels the rest; :meth:`PromptWorker._gather_all` waits on the tasks themselves
  (same 1 s bound, same cancellation) and so returns as soon as the last one ends.
* mode's ``Worker._sentinel_task`` then sleeps 1 s flat, so that the tasks just cancelled can
  unwind before the loop closes; :meth:`PromptWorker._sentinel_task` waits (same 1 s bound)
  until those tasks are done.

The app gets both through faust's own settings (``TableManager=``, ``Worker=``).
tests/unit/pipeline/faust_patches/test_upstream.py fails when the code in :data:`UPSTREAM`
changes; test_fixed_waits.py checks the behaviour.
"""

from __future__ import annotations

import asyncio
import logging

import faust
from faust.tables import TableManager

from pipeline.faust_patches.upstream import Upstream

__all__ = ["GATHER_TIMEOUT_S", "UPSTREAM", "PromptTableManager", "PromptWorker"]

log = logging.getLogger(__name__)

UPSTREAM: tuple[Upstream, ...] = (
    Upstream("faust.tables.manager:TableManager.on_start", "365dd25fbc0e0684",
             "the 1 s sleep before _update_channels and recovery.start, overridden"),
    Upstream("mode.worker:Worker._shutdown_loop", "6ad3b1129015ee12",
             "calls _gather_all, then runs _sentinel_task before closing the loop"),
    Upstream("mode.worker:Worker._gather_all", "7e8d72ebf7496cea",
             "waits up to 10 x 0.1 s for no task to be left, then cancels the rest: overridden"),
    Upstream("mode.worker:Worker._sentinel_task", "6e66058cf3e1b616",
             "a flat 1 s sleep after the cancellation: overridden"),
)

#: The bound of each shutdown wait, as upstream: tasks still running after it are cancelled
#: (first wait) or left to the loop's close (second wait).
GATHER_TIMEOUT_S = 1.0


class PromptTableManager(TableManager):
    """faust's table manager without the 1 s sleep at start (see the module docstring)."""

    async def on_start(self) -> None:
        if not self.should_stop:
            await self._update_channels()
            await self.recovery.start()


def _others() -> set[asyncio.Task[object]]:
    current = asyncio.current_task()
    return {task for task in asyncio.all_tasks() if task is not current}


async def _until_no_other_task(what: str) -> None:
    """Return once no other task is left on the loop, or after :data:`GATHER_TIMEOUT_S`;
    tasks started meanwhile are waited for too (as upstream's polling did)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + GATHER_TIMEOUT_S
    pending = _others()
    if pending:
        log.info("shutdown: waiting for %d %s task(s): %s", len(pending), what,
                 sorted(task.get_name() for task in pending))
    while pending and (left := deadline - loop.time()) > 0:
        await asyncio.wait(pending, timeout=left)
        pending = _others()


class PromptWorker(faust.Worker):
    """faust's worker whose shutdown waits for the loop's tasks instead of fixed sleeps."""

    def _gather_all(self) -> None:
        self.loop.run_until_complete(_until_no_other_task("remaining"))
        for task in asyncio.all_tasks(loop=self.loop):
            task.cancel()

    async def _sentinel_task(self) -> None:
        await _until_no_other_task("cancelled")
