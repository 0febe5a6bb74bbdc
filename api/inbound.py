"""``GET /v1/inbound``: a tenant's recent MO messages, a page at a time (pure; no I/O).

Theory of operation
-------------------
``sms.inbound`` is keyed by tenant, so all of a tenant's MO messages are in one partition, in
offset order, and every API process reads that partition identically. A position in that order
is therefore the same on every process: the cursor is "the last offset returned, per
partition" (several partitions only if the topic was grown), so a client may ask any replica
for the next page and neither misses nor repeats a message. Messages are returned oldest first;
``since`` (a time) leaves out the ones received before it.

With several partitions the pages interleave them by ``received_at`` head by head
(:func:`heapq.merge`), which keeps each partition's messages in offset order: everything up to
the cursor's offset of a partition has been returned, nothing after it.

The cursor is opaque to clients: URL-safe base64 of ``<partition>:<offset>,...``.
"""

from __future__ import annotations

import base64
import binascii
import heapq
from bisect import bisect_right
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from pydantic import Field

from api.messages import _Wire

MAX_PAGE: Final = 1_000
DEFAULT_PAGE: Final = 100

Cursor = dict[int, int]
"""partition -> the last offset already returned."""


class InvalidCursor(ValueError):
    """Not a cursor this API returned."""


@dataclass(frozen=True, slots=True)
class InboundItem:
    """One MO message as the store keeps it: where it is on the topic, when it came, and its
    answer already serialised (a page is a join of these bytes)."""

    partition: int
    offset: int
    received_at: float  # Unix seconds
    document: bytes  # JSON object: the InboundMessageOut fields


@dataclass(frozen=True, slots=True)
class Page:
    items: list[InboundItem]
    next_cursor: str | None
    has_more: bool


def encode_cursor(cursor: Cursor) -> str | None:
    if not cursor:
        return None
    text = ",".join(f"{p}:{o}" for p, o in sorted(cursor.items()))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(value: str | None) -> Cursor:
    if not value:
        return {}
    try:
        text = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode("ascii")
        cursor: Cursor = {}
        for item in text.split(","):
            partition, offset = item.split(":")
            cursor[int(partition)] = int(offset)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidCursor(f"cursor {value[:40]!r} is not one this API returned") from exc
    if any(p < 0 or o < -1 for p, o in cursor.items()):
        raise InvalidCursor(f"cursor {value[:40]!r} is not one this API returned")
    return cursor


def _after(items: Sequence[InboundItem], offset: int, since: float | None
           ) -> Iterator[InboundItem]:
    """The items past ``offset`` (``items`` is in offset order), received at ``since`` or later.
    Indexes rather than slices: a page never copies a long history."""
    start = bisect_right(items, offset, key=lambda item: item.offset)
    for index in range(start, len(items)):
        item = items[index]
        if since is None or item.received_at >= since:
            yield item


def select(partitions: Mapping[int, Sequence[InboundItem]], cursor: Cursor,
           since: float | None, limit: int) -> Page:
    """The next ``limit`` items after ``cursor``, oldest first, and the cursor after them."""
    merged = heapq.merge(
        *(_after(items, cursor.get(partition, -1), since)
          for partition, items in sorted(partitions.items())),
        key=lambda item: item.received_at,
    )
    page: list[InboundItem] = []
    has_more = False
    for item in merged:
        if len(page) == limit:
            has_more = True
            break
        page.append(item)
    after = dict(cursor)
    for item in page:
        after[item.partition] = max(item.offset, after.get(item.partition, -1))
    return Page(page, encode_cursor(after), has_more)


class InboundMessageOut(_Wire):
    """One MO message: the fields of the MO webhook body (docs/webhooks.md) without `type`."""

    inbound_id: str = Field(description="Our id of the MO (UUID); the webhook's delivery id.")
    tenant_id: str
    source: str = Field(description="The subscriber's number, E.164 with '+' if international.")
    destination: str = Field(description="Your number, short code or sender id it was sent to.")
    text: str
    data_coding: int = Field(description="SMPP data_coding as received (8: UCS-2).")
    keyword: str = Field(description="OPT_OUT (STOP...), OPT_IN (START...) or NONE.")
    smsc_id: str
    received_at: str = Field(description="ISO 8601 UTC with milliseconds, e.g. "
                             "2026-12-05T12:00:00.123Z.")


class InboundPage(_Wire):
    messages: list[InboundMessageOut] = Field(description="Oldest first.")
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the messages after these (also to poll for new ones); "
        "null when there is no position yet (nothing returned, no cursor given)."
    )
    has_more: bool = Field(description="More messages are available right now.")
