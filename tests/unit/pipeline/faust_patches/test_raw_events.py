"""The raw-bytes schema and the per-app event path: the same events and the same producer
buffer rule as faust's, without the per-event registry and settings lookups."""

from __future__ import annotations

from typing import Any

import faust
import pytest
from faust.types import TP, Message

from pipeline.faust_patches.raw_events import RawBytesSchema, install

TOPIC = "raw-events-in"


@pytest.fixture
def app(fresh_app: faust.App) -> faust.App:
    return fresh_app


def _message(key: bytes | None, value: bytes | None) -> Message:
    tp = TP(TOPIC, 0)
    return Message(TOPIC, 0, 5, 0.0, 0, [("h", b"1")], key, value, None, tp=tp)


def _decode(app: faust.App, schema: Any, message: Message) -> Any:
    decode = schema.compile(app)
    return app.loop.run_until_complete(decode(message, propagate=True))


@pytest.mark.parametrize(("key", "value"), [(b"acme", b"\x00\x01avro"), (None, b"v"),
                                            (b"k", None)])
def test_the_raw_schema_gives_the_events_faust_s_raw_codec_gave(
    app: faust.App, key: bytes | None, value: bytes | None
) -> None:
    install(app)
    registry: faust.Schema[bytes, bytes] = faust.Schema(
        key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    raw, theirs = (_decode(app, s, _message(key, value)) for s in (RawBytesSchema(), registry))
    assert (raw.key, raw.value, raw.headers) == (theirs.key, theirs.value, theirs.headers)
    event_class: Any = app.conf.Event
    assert type(raw) is type(theirs) is event_class
    assert raw.message is not None and raw.app is app


def test_a_topic_with_the_raw_schema_keeps_it_and_bytes_types(app: faust.App) -> None:
    topic = app.topic(TOPIC, schema=RawBytesSchema())
    assert isinstance(topic.schema, RawBytesSchema)
    assert (topic.key_type, topic.value_type) == (bytes, bytes)


def test_the_producer_buffer_still_flushes_past_its_limit(app: faust.App) -> None:
    install(app)
    buffer = app.producer.buffer
    flushed: list[int | None] = []

    async def flush_atmost(max_messages: int | None) -> int:
        flushed.append(max_messages)
        return 0

    buffer.flush_atmost = flush_atmost  # type: ignore[method-assign,assignment]
    app.loop.run_until_complete(buffer.wait_until_ebb())
    assert flushed == []  # empty: nothing to wait for
    for n in range(buffer.max_messages + 1):
        buffer.pending.put_nowait(n)
    app.loop.run_until_complete(buffer.wait_until_ebb())
    assert flushed == [buffer.max_messages]  # faust's rule: flush down to the limit
