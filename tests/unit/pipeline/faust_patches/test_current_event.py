"""A table write outside the stream lands in the partition of the event it is made for."""

from __future__ import annotations

import faust
import pytest
from faust.types import TP, Message

from pipeline.faust_patches.current_event import as_current_event


def test_a_table_write_takes_the_partition_of_the_event_set() -> None:
    app = faust.App("current-event-test", broker="kafka://127.0.0.1:1")
    table = app.Table("things", key_type=str, value_type=bytes)
    app.topics  # noqa: B018 (the conductor the table checks source topics against)
    message = Message("things-source", 3, 10, 0.0, 0, None, b"k", b"v", None,
                      tp=TP("things-source", 3))
    event = faust.Event(app, b"k", b"v", {}, message)
    table._verify_source_topic_partitions = lambda _topic: None  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match="outside of stream iteration"):
        table.partition_for_key("k")
    with as_current_event(event):
        assert table.partition_for_key("k") == 3
    with pytest.raises(TypeError):
        table.partition_for_key("k")  # reset on the way out
