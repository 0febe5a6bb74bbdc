"""The stream hooks against faust's own flow control and consumer."""

from __future__ import annotations

from typing import Any

import faust
from faust.types import TP, Message

from pipeline.faust_patches.stream_hooks import on_buffers_cleared, release_unacked


async def _ignore(*_args: Any) -> None:
    return None


def test_the_hook_hears_faust_clear_the_stream_buffers() -> None:
    app = faust.App("stream-hooks-test", broker="kafka://127.0.0.1:1")
    cleared: list[bool] = []
    hook = on_buffers_cleared(app, lambda: cleared.append(app.flow_control.is_active()))
    app.flow_control.suspend()
    app.flow_control.clear()
    assert cleared == [False]
    assert hook is not None  # kept alive by the caller (faust holds it weakly)


def test_a_released_record_is_no_longer_waited_for_and_never_committable() -> None:
    app = faust.App("stream-hooks-release-test", broker="kafka://127.0.0.1:1")
    consumer = app.transport.create_consumer(
        callback=_ignore, on_partitions_revoked=_ignore, on_partitions_assigned=_ignore)
    app.consumer = consumer
    try:
        tp = TP("t", 0)
        message = Message("t", 0, 5, 0.0, 0, None, None, b"v", None, tp=tp)
        consumer._unacked_messages.add(message)  # type: ignore[attr-defined]
        event = faust.Event(app, None, b"v", {}, message)
        release_unacked(app, event)
        assert message.acked and message not in consumer.unacked
        assert 5 not in consumer._acked_index[tp]  # type: ignore[attr-defined]
    finally:
        consumer._thread.thread_loop.close()  # type: ignore[attr-defined]
