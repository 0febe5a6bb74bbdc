"""Two hooks into faust's stream bookkeeping that the scheduled stages need.

Answers two faust-streaming 0.15.3 (pinned) behaviours around rebalances and shutdown:

* **Buffers cleared.** Before faust hands partitions over (or stops), it suspends the flow,
  empties every stream buffer (``app.flow_control.clear()``: each *managed queue*'s ``clear``)
  and waits until every event it delivered is acked (``stream_wait_empty``). A stage that holds
  records for a slow lane must hear about that moment to let go of them;
  :func:`on_buffers_cleared` registers a duck-typed "queue" whose ``clear`` calls back
  (mode-streaming 0.7.1 ``FlowControlEvent.manage_queue`` keeps queues in a WeakSet, so the
  caller keeps the returned hook alive).
* **Released, not acked.** A record dropped that way must stay uncommitted (its partition's
  next owner reads it again), yet faust must stop waiting for its ack. There is no API for
  that: :func:`release_unacked` marks the message acked without going through
  ``Consumer.ack`` (which would make it committable) and takes it out of the consumer's
  in-flight set.

tests/unit/pipeline/faust_patches/test_upstream.py fails when the code in :data:`UPSTREAM`
changes; test_stream_hooks.py checks both hooks against faust's own objects.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import faust

from pipeline.faust_patches.upstream import Upstream

__all__ = ["UPSTREAM", "BufferClearHook", "on_buffers_cleared", "release_unacked"]

UPSTREAM: tuple[Upstream, ...] = (
    Upstream("mode.utils.queues:FlowControlEvent.manage_queue", "a9a01679eaacf42c",
             "registers anything with a clear() method (kept in a WeakSet)"),
    Upstream("mode.utils.queues:FlowControlEvent.clear", "dda5e40d80288a8f",
             "calls clear() on every managed queue"),
    Upstream("faust.transport.consumer:Consumer.unacked.fget", "7b6ebac5ffdcb6b7",
             "the consumer's in-flight set, which faust waits on before a rebalance"),
    Upstream("faust.transport.consumer:Consumer.wait_empty", "e4662fe24f094819",
             "waits until the in-flight set is empty (released records included)"),
)


class BufferClearHook:
    """Registered with ``app.flow_control`` as if it were a stream buffer."""

    def __init__(self, on_clear: Callable[[], None]) -> None:
        self._on_clear = on_clear

    def clear(self) -> None:
        self._on_clear()


def on_buffers_cleared(app: faust.App, on_clear: Callable[[], None]) -> BufferClearHook:
    """Call ``on_clear()`` whenever faust empties the stream buffers (flow resumed, partitions
    revoked, shutdown). Keep the returned hook referenced for as long as it should fire."""
    hook = BufferClearHook(on_clear)
    app.flow_control.manage_queue(hook)  # type: ignore[arg-type]
    return hook


def release_unacked(app: faust.App, event: faust.EventT[Any]) -> None:
    """faust stops waiting for ``event``; it is not acked, so its offset is never committed."""
    try:
        unacked = app.consumer.unacked
    except Exception:  # consumer gone (shutdown): nothing waits for it any more
        unacked = set()
    event.message.acked = True
    unacked.discard(event.message)
