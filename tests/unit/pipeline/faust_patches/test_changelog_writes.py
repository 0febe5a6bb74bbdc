"""The table-changelog redirect (pipeline/faust_patches/changelog_writes.py) and the faust
internals it relies on: if an upgrade changes them, these fail before a drill does."""

from __future__ import annotations

import gc
import inspect
from typing import Any

import faust
import pytest
from faust.exceptions import PartitionsMismatch
from faust.tables.table import Table

from pipeline.faust_patches.changelog_writes import route_changelogs


class RecordingCache:
    """ChangelogCache.write as the redirect calls it."""

    def __init__(self) -> None:
        self.records: list[tuple[str, int, bytes | None, bytes | None, bool]] = []

    def write(self, topic: str, partition: int, key: bytes | None, value: bytes | None,
              absent_before: bool) -> None:
        self.records.append((topic, partition, key, value, absent_before))


def _table() -> tuple[faust.App, Any]:
    app = faust.App("changelog-test", broker="kafka://127.0.0.1:1")
    table = app.Table("things", key_type=str, value_type=bytes)
    return app, table


def test_writes_the_bytes_faust_would_write_to_the_same_partition() -> None:
    app, table = _table()
    cache = RecordingCache()
    assert route_changelogs(app.tables, cache) == 1  # type: ignore[arg-type]

    written = table.send_changelog(2, "route:uk", b"\x00\x01")
    table.data["route:uk"] = b"\x00\x01"  # what faust does right after (ManagedUserDict)
    deleted = table.send_changelog(3, "route:uk", None, value_serializer="raw")

    topic = table.changelog_topic.get_topic_name()
    assert cache.records == [
        # str keys as JSON, like faust's own writes; the table had no value for the key yet
        (topic, 2, b'"route:uk"', b"\x00\x01", True),
        (topic, 3, b'"route:uk"', None, False),  # a delete is a tombstone
    ]
    assert (written.message.partition, deleted.message.partition) == (2, 3)


def test_the_result_faust_reads_holds_no_reference_to_itself() -> None:
    """One result per table write: without a cycle it is freed at once, not by the collector."""
    app, table = _table()
    route_changelogs(app.tables, RecordingCache())  # type: ignore[arg-type]
    written = table.send_changelog(1, "route:uk", b"\x00")
    assert written.message is written and written.message.partition == 1
    assert written not in gc.get_referents(written)


def test_faust_calls_send_changelog_before_it_changes_the_table() -> None:
    """``absent_before`` reads the table's data inside send_changelog: it must not be changed
    yet (mode's ManagedUserDict.__setitem__/__delitem__)."""
    _app, table = _table()
    seen: list[bool] = []

    def on_key_set(key: str, value: bytes) -> None:
        seen.append(key in table.data)

    def on_key_del(key: str) -> None:
        seen.append(key in table.data)

    table.on_key_set = on_key_set
    table.on_key_del = on_key_del
    table["k"] = b"v"
    del table["k"]
    assert seen == [False, True]


def test_faust_still_calls_send_changelog_and_reads_only_the_partition() -> None:
    for method in (Table.on_key_set, Table.on_key_del):
        source = inspect.getsource(method)
        assert "self.send_changelog(" in source, method
        assert "fut.message.partition" in source, method
    assert faust.__version__ == "0.15.3", "re-check faust_patches/changelog_writes.py"


class PartitionCounts:
    """What faust asks the consumer: a topic's partition count from the metadata snapshot."""

    def __init__(self, counts: dict[str, int | None]) -> None:
        self.counts = counts

    def topic_partitions(self, topic: str) -> int | None:
        return self.counts.get(topic)


def test_a_changelog_still_showing_0_partitions_is_checked_later_not_a_mismatch() -> None:
    app, table = _table()
    route_changelogs(app.tables, RecordingCache())  # type: ignore[arg-type]
    changelog = table.changelog_topic_name
    counts = PartitionCounts({"src": 4, changelog: 0})  # faust just created it
    app.consumer = counts  # type: ignore[assignment]
    table._verify_source_topic_partitions("src")  # faust alone raises PartitionsMismatch here
    assert "src" not in table._verified_source_topics_for_partitions

    counts.counts[changelog] = 4
    table._verify_source_topic_partitions("src")
    assert "src" in table._verified_source_topics_for_partitions


def test_a_real_partition_mismatch_still_stops_the_worker() -> None:
    app, table = _table()
    route_changelogs(app.tables, RecordingCache())  # type: ignore[arg-type]
    app.consumer = PartitionCounts({"src": 4, table.changelog_topic_name: 3})  # type: ignore[assignment]
    with pytest.raises(PartitionsMismatch):
        table._verify_source_topic_partitions("src")


@pytest.mark.parametrize("key", ["route:uk", "smsc-uk:0A1b", 'quote"back\\slash', "ünïcødé ✓",
                                 "tab\tnew\nline", ""])
def test_a_str_key_and_bytes_value_are_serialised_as_faust_serialises_them(key: str) -> None:
    """The short cut for the common case (a str key as JSON, a bytes value raw) gives the
    bytes of the changelog topic's own prepare_key/prepare_value, which recovery reads."""
    app, table = _table()
    cache = RecordingCache()
    route_changelogs(app.tables, cache)  # type: ignore[arg-type]
    table.send_changelog(1, key, b"\xff\x00value")
    topic = table.changelog_topic
    expected_key, _ = topic.prepare_key(key, table.key_serializer)
    expected_value, _ = topic.prepare_value(b"\xff\x00value", table.value_serializer)
    assert cache.records == [
        (topic.get_topic_name(), 1, expected_key, expected_value, True)
    ]
    assert faust.serializers.codecs.loads("json", expected_key) == key
