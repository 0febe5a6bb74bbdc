"""The bind-state watcher applies the grace before an SMSC counts as unbound."""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

from pipeline.bind_watch import BindWatcher
from smsflow.domain.tracking.binds import BindReport, apply_report


def _watcher_with_dropped_bind(now_ms: int) -> BindWatcher:
    watcher = BindWatcher("127.0.0.1:1", "sms.smsc-binds", grace_s=10)
    apply_report(watcher.board, "smsc-us", "sender-a", BindReport(0, 5, now_ms))
    return watcher


def test_an_smsc_without_binds_counts_as_bound_during_the_grace() -> None:
    now = int(time.time() * 1000)
    watcher = _watcher_with_dropped_bind(now)
    assert watcher.smsc_bound("smsc-us", now) is True
    assert watcher.smsc_bound("smsc-us", now + 9_999) is True
    assert watcher.smsc_bound("smsc-us", now + 10_000) is False


def test_the_end_of_the_grace_is_noticed_on_an_empty_fetch() -> None:
    now = int(time.time() * 1000)
    watcher = _watcher_with_dropped_bind(now)
    told: list[str] = []

    async def listener(smsc_id: str) -> None:
        told.append(smsc_id)

    watcher.listen(listener)
    assert watcher.smsc_bound("smsc-us", now - 20_000) is True  # unbound since 20 s ago
    asyncio.run(watcher.on_batch(cast(Any, None), {}))  # no record arrived
    assert told == ["smsc-us"]
    assert watcher.smsc_bound("smsc-us") is False
