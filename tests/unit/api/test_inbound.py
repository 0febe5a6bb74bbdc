"""GET /v1/inbound's paging and store: cursor round trips, oldest first, nothing missed or
repeated across pages and partitions, another tenant's messages never seen, the bounds."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from api.inbound import (
    InboundItem,
    InboundMessageOut,
    InvalidCursor,
    decode_cursor,
    encode_cursor,
    select,
)
from api.inbound_feed import InboundStore
from schemas.models import InboundKeyword, InboundMessage
from smsflow.settings import Settings

T0 = 1_796_000_000.0


def _item(partition: int, offset: int, at: float) -> InboundItem:
    return InboundItem(partition, offset, at, json.dumps({"o": offset}).encode())


def test_cursor_round_trip_and_opaque_form() -> None:
    cursor = {0: 15, 3: 7}
    encoded = encode_cursor(cursor)
    assert encoded is not None and ":" not in encoded and "=" not in encoded
    assert decode_cursor(encoded) == cursor
    assert encode_cursor({}) is None and decode_cursor(None) == {} and decode_cursor("") == {}


@pytest.mark.parametrize("bad", ["%%%", "bm90IGEgY3Vyc29y", "MDot", "LTE6NQ"])
def test_foreign_cursors_are_refused(bad: str) -> None:
    with pytest.raises(InvalidCursor):
        decode_cursor(bad)


def test_pages_walk_one_partition_oldest_first_without_gaps_or_repeats() -> None:
    items = {0: [_item(0, offset, T0 + offset) for offset in range(10, 17)]}
    seen: list[int] = []
    cursor: dict[int, int] = {}
    while True:
        page = select(items, cursor, None, 3)
        seen += [item.offset for item in page.items]
        assert page.next_cursor is not None
        cursor = decode_cursor(page.next_cursor)
        if not page.has_more:
            break
    assert seen == list(range(10, 17))
    assert select(items, cursor, None, 3).items == []  # polling at the end: nothing yet
    items[0].append(_item(0, 17, T0 + 17))  # a new one arrives
    assert [i.offset for i in select(items, cursor, None, 3).items] == [17]


def test_has_more_is_exact_at_a_page_boundary() -> None:
    items = {0: [_item(0, offset, T0) for offset in range(4)]}
    page = select(items, {}, None, 4)
    assert len(page.items) == 4 and not page.has_more


def test_since_leaves_out_older_messages() -> None:
    items = {0: [_item(0, offset, T0 + offset) for offset in range(5)]}
    assert [i.offset for i in select(items, {}, T0 + 3, 10).items] == [3, 4]


def test_two_partitions_interleave_by_time_and_keep_each_in_offset_order() -> None:
    """A grown topic: neither partition's messages are skipped even when their receive times
    are out of order within the partition (two senders' clocks)."""
    items = {
        0: [_item(0, 0, T0 + 1), _item(0, 1, T0 + 5), _item(0, 2, T0 + 3)],
        1: [_item(1, 0, T0 + 2), _item(1, 1, T0 + 4)],
    }
    seen: list[tuple[int, int]] = []
    cursor: dict[int, int] = {}
    for _ in range(10):
        page = select(items, cursor, None, 2)
        seen += [(i.partition, i.offset) for i in page.items]
        cursor = decode_cursor(page.next_cursor)
        if not page.has_more:
            break
    assert sorted(seen) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]
    assert len(seen) == len(set(seen))
    assert [o for p, o in seen if p == 0] == [0, 1, 2]


@dataclass
class _Record:
    """What the follower hands over (confluent_kafka.Message's accessors)."""

    raw: bytes
    where: tuple[int, int]

    def value(self) -> bytes:
        return self.raw

    def partition(self) -> int:
        return self.where[0]

    def offset(self) -> int:
        return self.where[1]


def _mo(tenant: str | None, text: str, at: float) -> bytes:
    return InboundMessage(
        inbound_id=str(uuid.uuid4()), tenant_id=tenant, source="+447700900123",
        destination="60001", text=text, data_coding=0, keyword=InboundKeyword.NONE,
        reason=None if tenant else "MO_UNKNOWN_DESTINATION", smsc_id="smsc-uk", bind="b#0",
        received_at=datetime.fromtimestamp(at, UTC),
    ).to_avro()


def _store(tmp_path: Path, now: list[float], max_per_tenant: int = 100) -> InboundStore:
    settings = Settings(kafka_bootstrap="127.0.0.1:1", topic_prefix="unit.", home=tmp_path)
    return InboundStore(settings, window_s=3_600, max_per_tenant=max_per_tenant,
                        clock=lambda: now[0])


def test_store_keeps_each_tenant_s_messages_apart(tmp_path: Path) -> None:
    now = [T0]
    store = _store(tmp_path, now)
    records = [("acme", "hello"), ("globex", "hi"), (None, "lost"), ("acme", "again")]
    for offset, (tenant, text) in enumerate(records):
        store._apply(_Record(_mo(tenant, text, T0), (0, offset)))  # type: ignore[arg-type]
    store._apply(_Record(b"not avro", (0, 9)))  # type: ignore[arg-type]
    acme = [json.loads(i.document) for i in store.page("acme", {}, None, 10).items]
    assert [m["text"] for m in acme] == ["hello", "again"]
    assert all(m["tenant_id"] == "acme" for m in acme)
    assert set(acme[0]) == set(InboundMessageOut.model_fields)  # the documented answer
    InboundMessageOut.model_validate(acme[0])
    assert [json.loads(i.document)["text"] for i in store.page("globex", {}, None, 10).items
            ] == ["hi"]
    assert store.page("nobody", {}, None, 10).items == []
    assert store.undecodable == 1


def test_store_ignores_a_record_read_twice_and_forgets_old_messages(tmp_path: Path) -> None:
    now = [T0]
    store = _store(tmp_path, now, max_per_tenant=2)
    for offset in range(3):
        store._apply(_Record(_mo("acme", f"m{offset}", T0 + offset), (0, offset)))  # type: ignore[arg-type]
    store._apply(_Record(_mo("acme", "m1 again", T0 + 1), (0, 1)))  # type: ignore[arg-type]
    assert len(store.page("acme", {}, None, 10).items) == 3  # under 2x the bound: not cut yet
    now[0] = T0 + 61  # the next batch prunes: the newest 2 are kept
    store._maybe_prune()
    assert [i.offset for i in store.page("acme", {}, None, 10).items] == [1, 2]
    now[0] = T0 + 3_600 + 122  # older than the window: gone
    store._maybe_prune()
    assert store.page("acme", {}, None, 10).items == []
