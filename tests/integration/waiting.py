"""Waiting on a condition with a deadline, instead of sleeping a fixed time.

A fixed sleep is both too long (every run pays it) and too short (a loaded machine misses it),
and a check after "long enough" passes when the thing it guards against arrives later. These
wait for what the test means:

* :func:`worker_consumed`: the worker group has committed every record of the given topics.
  The worker stores its outputs before it commits their sources (the commit barrier), so once
  this holds, every output those records cause, duplicates included, is on its topic: a count
  taken then is final, not "final unless a duplicate shows up later".
* :func:`log_shows`: a process wrote a line matching a pattern after a given point of its log.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from smsflow.settings import Settings
from smsflow.topics import (
    DLR_PARTS,
    DLR_PARTS_TIMERS,
    DLR_RAW,
    DLR_TIMERS,
    ROUTED,
    SENT,
    SUBMITTED,
    THROTTLED,
    topic_name,
)

__all__ = ["end_offset", "flow_drained", "log_shows", "log_size", "wait_until", "worker_consumed"]

POLL_S = 0.2


def wait_until(condition: Callable[[], bool], *, timeout_s: float, what: str) -> None:
    """Return once ``condition()`` holds; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(POLL_S)


def worker_consumed(settings: Settings, topics: list[str], *, timeout_s: float = 60,
                    group: str | None = None) -> None:
    """Wait until the worker group (``settings.app_id``, or ``group``) committed every record
    of ``topics`` (names from smsflow.topics)."""
    group = group or settings.app_id
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap,
                         "group.id": group, "enable.auto.commit": False})
    try:
        names = [topic_name(settings, topic) for topic in topics]
        metadata = consumer.list_topics(timeout=10)
        tps = [TopicPartition(name, p) for name in names
               for p in sorted(metadata.topics[name].partitions)]

        def caught_up() -> bool:
            # Commits first, ends second: an output of a committed record is stored before
            # the commit, so it is inside the end offsets read afterwards.
            committed = consumer.committed(tps, timeout=10)
            ends = [consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in tps]
            return all(c.offset >= end or end == 0 for c, end in zip(committed, ends,
                                                                     strict=True))

        wait_until(caught_up, timeout_s=timeout_s, what=f"group {group} to commit all of {names}")
    finally:
        consumer.close()


def flow_drained(settings: Settings, *, timeout_s: float = 120) -> None:
    """Every stage of the flow has committed all its input, in flow order: the worker's router
    and throttle, the sender, then the delivery agents. Whatever the records sent so far cause
    (a duplicate submit or report included) is on its topic by then."""
    worker_consumed(settings, [SUBMITTED, ROUTED], timeout_s=timeout_s)
    worker_consumed(settings, [THROTTLED], timeout_s=timeout_s, group=f"{settings.app_id}-sender")
    worker_consumed(settings, [SENT, DLR_RAW, DLR_TIMERS, DLR_PARTS, DLR_PARTS_TIMERS],
                    timeout_s=timeout_s)


def end_offset(settings: Settings, topic: str, partition: int = 0) -> int:
    """The end (high watermark) of one partition of one of our topics."""
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap,
                         "group.id": f"{settings.app_id}-probe", "enable.auto.commit": False})
    try:
        tp = TopicPartition(topic_name(settings, topic), partition)
        return int(consumer.get_watermark_offsets(tp, timeout=10)[1])
    finally:
        consumer.close()


def log_size(path: Path) -> int:
    """Where the log ends now: pass it to :func:`log_shows` to look only at what comes next."""
    return path.stat().st_size if path.exists() else 0


def log_shows(path: Path, pattern: str, *, after: int = 0, timeout_s: float = 60) -> str:
    """Wait until ``path`` has a line matching ``pattern`` past byte ``after``; returns it."""
    regex = re.compile(pattern)
    found: list[str] = []

    def matched() -> bool:
        with path.open("rb") as handle:
            handle.seek(after)
            text = handle.read().decode(errors="replace")
        found.extend(line for line in text.splitlines() if regex.search(line))
        return bool(found)

    wait_until(matched, timeout_s=timeout_s, what=f"{pattern!r} in {path.name}")
    return found[0]
