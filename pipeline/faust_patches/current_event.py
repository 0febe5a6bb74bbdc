"""Run code as if faust's stream were on a given event (its private ``_current_event``).

Answers: faust-streaming 0.15.3 (pinned) decides a table write's changelog partition from the
stream's *current event*, a private context variable (``faust.streams._current_event``, holding
a weak reference), with no public way to set it. :mod:`pipeline.after_delivery` writes done
markers from a send's delivery callback, outside the stream: it sets the variable to the event
that caused the output, so the marker lands in that event's partition as an in-stream write
would. tests/unit/pipeline/faust_patches/test_upstream.py fails when the code in
:data:`UPSTREAM` changes; test_current_event.py checks the effect on a real table.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import faust
from faust import streams

from pipeline.faust_patches.upstream import Upstream

__all__ = ["UPSTREAM", "as_current_event"]

UPSTREAM: tuple[Upstream, ...] = (
    Upstream("faust.streams:current_event", "3b821f1a78d86a58",
             "the stream's current event is read from _current_event as a weak reference"),
    Upstream("faust.tables.table:Table.partition_for_key", "3b2291811b8dd791",
             "a table write takes its partition from current_event().message.partition"),
)


@contextmanager
def as_current_event(event: faust.EventT[Any]) -> Iterator[None]:
    """Within the block, faust sees ``event`` as the stream's current event."""
    token = streams._current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        streams._current_event.reset(token)
