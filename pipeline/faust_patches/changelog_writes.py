"""Table changelog writes through the worker's librdkafka producer (a faust workaround).

faust writes every table change to the table's changelog topic with its own aiokafka producer,
one small record at a time (``Collection.send_changelog`` -> ``Topic.send_soon``); with four or
so changes per message (correlation entries, done markers, quota, windows) that was ~10% of the
worker's CPU. :func:`route_changelogs` replaces ``send_changelog`` on each table instance with
one that serialises the key and value exactly as faust does (the changelog topic's own
``prepare_key``/``prepare_value``) and hands the record, with the same explicit partition, to
:class:`~pipeline.changelog_cache.ChangelogCache`, which keeps the last value per key until
the next commit and then writes it through :class:`~pipeline.outputs.OutputProducer`: recovery
reads the very same bytes, minus the intermediate values of a key.

What it relies on (faust-streaming 0.15.3, pinned; tests/unit/pipeline/faust_patches/
test_upstream.py and test_changelog_writes.py fail if these change, see :data:`UPSTREAM`):
``Table.on_key_set``/``on_key_del`` call ``self.send_changelog(partition, key, value,
key_serializer, value_serializer)`` and ignore its result; the tables use the in-memory
store, for which faust's sent-callback (``_on_changelog_sent``, RocksDB offset bookkeeping)
does nothing. Durability is unchanged: the guarded consumer awaits the cache's flush (held
writes handed over, then the output producer's flush) before every commit, as faust flushed its
own producer there, and a table's records all go through one producer.
"""

from __future__ import annotations

from typing import Any

import faust

from pipeline.changelog_cache import ChangelogCache
from pipeline.faust_patches.upstream import Upstream

__all__ = ["UPSTREAM", "route_changelogs"]

UPSTREAM: tuple[Upstream, ...] = (
    Upstream("faust.tables.base:Collection.send_changelog", "3dd3884e1b5fc0e1",
             "the method replaced per table: serialises with the changelog topic's prepare_*"),
    Upstream("faust.tables.table:Table.on_key_set", "a370e35ca55c2c7e",
             "calls send_changelog and reads only .message.partition of the result"),
    Upstream("faust.tables.table:Table.on_key_del", "4f2900b2f9d24a08",
             "calls send_changelog and reads only .message.partition of the result"),
    Upstream("faust.tables.table:Table.__setitem__", "f3bdf602abc08dd1",
             "mode's ManagedUserDict: on_key_set runs before the data changes (absent_before)"),
    Upstream("faust.tables.table:Table.__delitem__", "c0ce7ef82dbd1255",
             "mode's ManagedUserDict: on_key_del runs before the data changes"),
    Upstream("faust.tables.base:Collection._on_changelog_sent", "60122c86a120d82c",
             "faust's sent-callback, skipped: a no-op for the in-memory store"),
    Upstream("faust.tables.base:Collection._verify_source_topic_partitions", "6814da56b0d83f93",
             "wrapped per table: a topic whose metadata shows 0 partitions is not checked yet"),
    Upstream("faust.transport.drivers.aiokafka:AIOKafkaConsumerThread.topic_partitions",
             "8e5084fa9734ed33", "aiokafka's metadata snapshot: 0 for a topic being created"),
)


def route_changelogs(tables: Any, cache: ChangelogCache) -> int:
    """Send the changelog writes of every table in ``tables`` through ``cache`` (held and
    coalesced per key until the next commit, pipeline/changelog_cache.py); returns how many
    tables were changed."""
    count = 0
    for table in list(tables.values()):
        _route(table, cache)
        count += 1
    return count


class _Written:
    """What faust's ``on_key_set``/``on_key_del`` read from the result: ``.message.partition``.

    ``message`` is a property, not an attribute pointing back at the object: that was one
    reference cycle per table write, left for the garbage collector instead of being freed
    when faust drops the result (the delivery worker writes several rows per message)."""

    __slots__ = ("partition",)

    def __init__(self, partition: int) -> None:
        self.partition = partition

    @property
    def message(self) -> _Written:
        return self


def _route(table: faust.Table[Any, Any], cache: ChangelogCache) -> None:
    topic = table.changelog_topic
    name = topic.get_topic_name()
    prepare_key, prepare_value = topic.prepare_key, topic.prepare_value
    default_key, default_value = table.key_serializer, table.value_serializer
    faust_send = table.send_changelog
    json_key = faust.serializers.codecs.get_codec("json").dumps

    def send_changelog(partition: int | None, key: Any, value: Any,
                       key_serializer: Any = None, value_serializer: Any = None) -> Any:
        if partition is None:
            # Only tables that use a partitioner (none of ours) get here: faust decides.
            return faust_send(partition, key, value, key_serializer, value_serializer)
        key_codec = key_serializer or default_key
        if type(key) is str and key_codec == "json":
            raw_key = json_key(key)  # what prepare_key's four layers end in, a third the cost
        else:
            raw_key, _ = prepare_key(key, key_codec)
        if type(value) is bytes and (value_serializer or default_value) == "raw":
            raw_value: Any = value
        else:
            raw_value, _ = prepare_value(value, value_serializer or default_value)
        # faust calls this before it changes the table (mode's ManagedUserDict), so the data
        # still tells whether the changelog holds a live value for the key.
        cache.write(name, partition, raw_key, raw_value, key not in table.data)
        return _Written(partition)

    table.send_changelog = send_changelog  # type: ignore[method-assign]
    _check_partitions_once_known(table)


def _check_partitions_once_known(table: faust.Table[Any, Any]) -> None:
    """faust checks, at a table's first write from a source topic, that the source and the
    changelog have as many partitions, and crashes the worker (``PartitionsMismatch``) if not.
    On a fresh broker the changelog faust has just created can show **0** partitions in
    aiokafka's metadata snapshot for a moment: seen as "0 != 4" crashes of freshly started
    workers in 2 of ~30 drill stacks. A count of 0 (or unknown) is metadata still arriving, not
    a mismatch: skip the check until both counts are known, then let faust check as before
    (a real mismatch still stops the worker)."""
    faust_verify = table._verify_source_topic_partitions
    verified = table._verified_source_topics_for_partitions
    changelog = table.changelog_topic_name

    def verify_once_known(source_topic: str) -> None:
        if source_topic in verified:
            return
        consumer = table.app.consumer
        if not consumer.topic_partitions(source_topic) or not consumer.topic_partitions(changelog):
            return  # not known yet: checked at a later write
        faust_verify(source_topic)

    table._verify_source_topic_partitions = verify_once_known  # type: ignore[method-assign]
