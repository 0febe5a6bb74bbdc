"""Test-only fault injection for the worker: off unless its environment variable is set.

``SMSFLOW_TEST_DIE_AT_REPORT=<n>:<path>``: the worker SIGKILLs itself when the broker has
stored its ``n``-th delivery report, *before* the report's done marker is written (the crash
window of issue 13: report on ``sms.dlr``, no marker in ``dlr-parts``, source offset not
committed). It first writes the message id to ``<path>``; a worker started while ``<path>``
exists is not armed, so a drill can restart it with the same environment
(tests/integration/test_crash_recovery.py). Never set it in production.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

ENV_DIE_AT_REPORT = "SMSFLOW_TEST_DIE_AT_REPORT"


class DieAtReport:
    """Armed by :data:`ENV_DIE_AT_REPORT`; :meth:`watch` each report's send future."""

    def __init__(self, at: int, marker: Path) -> None:
        self._left = at
        self._marker = marker

    @classmethod
    def from_env(cls) -> DieAtReport | None:
        value = os.environ.get(ENV_DIE_AT_REPORT)
        if not value:
            return None
        count, _, path = value.partition(":")
        if Path(path).exists():
            return None  # fired before this process: a restart runs without the fault
        log.warning("%s is set: this worker will SIGKILL itself at report %s (a test-only "
                    "fault)", ENV_DIE_AT_REPORT, count)
        return cls(int(count), Path(path))

    def watch(self, stored: Any, message_id: str) -> None:
        """Call before the done marker's callback is added to ``stored`` (callbacks run in
        the order they were added, so the kill comes first)."""
        def delivered(done: asyncio.Future[Any]) -> None:
            if done.cancelled() or done.exception() is not None:
                return
            self._left -= 1
            if self._left == 0:
                self._marker.write_text(message_id, encoding="utf-8")
                os.kill(os.getpid(), signal.SIGKILL)

        stored.add_done_callback(delivered)
