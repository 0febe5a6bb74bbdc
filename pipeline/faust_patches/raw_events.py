"""faust's per-event decoding and checks, without the lookups our raw-bytes topics do not need.

Every record faust hands to an agent passes through the conductor's handler, which, per event:

* decodes key and value through the app's serializer registry (``Registry.loads_key`` /
  ``loads_value``: type checks, a codec lookup by name, the ``raw`` codec's copy) although
  every input topic of the worker is raw bytes in and out (agents decode with our Avro codec,
  :mod:`pipeline.app`);
* builds the event through ``App.create_event``, which looks ``conf.Event`` up in faust's
  settings registry each time (``SettingsRegistry.__getattribute__`` and ``Param.on_get``);
* awaits ``ProducerBuffer.wait_until_ebb``, whose ``size`` looks ``conf.producer_threaded`` up
  each time, to hold streams while faust's producer buffer is over 100 records. Nothing the
  worker sends goes through that buffer (outputs and table changelogs go through librdkafka,
  :mod:`pipeline.outputs`, :mod:`.changelog_writes`); the check stays, without the lookup.

Together ~10% of the per-event floor (bench/faust_floor.py, py-spy). This module keeps each
behaviour and drops the lookups: :class:`RawBytesSchema` for the worker's topics returns the
fetched key and value bytes as they are (what the ``raw`` codec returned for bytes), and
:func:`install` binds the event class once and checks the producer buffer's queue directly.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.types import EventT, Message

from pipeline.faust_patches.upstream import Upstream

__all__ = ["UPSTREAM", "RawBytesSchema", "install"]

UPSTREAM: tuple[Upstream, ...] = (
    Upstream("faust.serializers.schemas:Schema.loads_key", "9adc30303f20915c",
             "overridden: the key as fetched (raw bytes)"),
    Upstream("faust.serializers.schemas:Schema.loads_value", "61a4628b4e0966e6",
             "overridden: the value as fetched (raw bytes)"),
    Upstream("faust.serializers.schemas:Schema.compile", "d46eec5ce3195b2c",
             "binds app.create_event and the schema's loads_* when a handler is compiled"),
    Upstream("faust.app.base:App.create_event", "15fea3d1e95e6625",
             "conf.Event(app, key, value, headers, message): replaced per app"),
    Upstream("faust.transport.producer:ProducerBuffer.wait_until_ebb", "758dd5744044071b",
             "flushes when size > max_messages: replaced per buffer, same rule"),
    Upstream("faust.transport.producer:ProducerBuffer.size.fget", "b543a978fdece62e",
             "len(pending) unless producer_threaded (the worker's is not)"),
    Upstream("faust.transport.conductor:Conductor._compile_message_handler", "9fbc0538097aa4ec",
             "binds app.producer.buffer.wait_until_ebb per handler"),
)


class RawBytesSchema(faust.Schema):  # type: ignore[type-arg]
    """Keys and values as the fetched bytes, without the serializer registry."""

    def __init__(self) -> None:
        super().__init__(key_type=bytes, value_type=bytes, key_serializer="raw",
                         value_serializer="raw")

    def loads_key(self, app: Any, message: Message, *, loads: Any = None,
                  serializer: Any = None) -> Any:
        return message.key

    def loads_value(self, app: Any, message: Message, *, loads: Any = None,
                    serializer: Any = None) -> Any:
        return message.value


def install(app: faust.App) -> None:
    """Bind the event class once and check faust's producer buffer without settings lookups;
    call before the app starts (handlers bind both when they are compiled)."""
    event_class: Any = app.conf.Event

    def create_event(key: Any, value: Any, headers: Any, message: Message) -> EventT[Any]:
        event: EventT[Any] = event_class(app, key, value, headers, message)
        return event

    app.create_event = create_event  # type: ignore[method-assign]
    if app.conf.producer_threaded:
        return  # the size is another queue's then: leave faust's check as it is
    buffer = app.producer.buffer
    ebb = buffer.wait_until_ebb

    async def wait_until_ebb() -> None:
        if buffer.pending.qsize() > buffer.max_messages:
            await ebb()

    buffer.wait_until_ebb = wait_until_ebb  # type: ignore[method-assign]
