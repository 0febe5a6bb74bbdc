"""The inbound store: every API process keeps the recent MO messages of ``sms.inbound`` per
tenant and partition (:mod:`api.inbound`), in a follower thread, so ``GET /v1/inbound`` is a
look-up, never a scan of Kafka.

It starts reading ``inbound_window_s`` ago and forgets messages older than that; of a tenant's
messages it keeps the newest ``inbound_max_per_tenant`` (cut back to that every minute, and at
once when a burst doubles it). A message without a tenant
(an older sender published those; today's dead-letters them) is never kept, so no tenant can
see it. Switched off with ``SMSFLOW_API_INBOUND_ENABLED=false``: the route then answers 503.

Threads: records are applied (appended, pruned) in the follower thread only; the event loop
only reads. A prune replaces a partition's list instead of cutting it, so a page being read
keeps a consistent list.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import orjson
from confluent_kafka import Message
from pydantic import ValidationError

from api.follower import TopicFollower
from api.inbound import Cursor, InboundItem, Page, select
from connectors.webhooks.payload import mo_document
from schemas.codec import DecodeError
from schemas.models import InboundMessage
from smsflow.kafka_security import kafka_connection
from smsflow.settings import Settings
from smsflow.topics import INBOUND, topic_name

log = logging.getLogger(__name__)

_PRUNE_EVERY_S = 60.0


def item_of(message: InboundMessage, partition: int, offset: int) -> InboundItem:
    document = mo_document(message)
    del document["type"]  # the route returns MO only
    return InboundItem(partition, offset, message.received_at.timestamp(),
                       orjson.dumps(document))


class InboundStore:
    def __init__(self, settings: Settings, window_s: float, max_per_tenant: int,
                 clock: Callable[[], float] = time.time) -> None:
        self._window_s = window_s
        self._max_per_tenant = max_per_tenant
        self._clock = clock
        # tenant -> partition -> items in offset order
        self._items: dict[str, dict[int, list[InboundItem]]] = {}
        self.undecodable = 0
        self._pruned_at = clock()
        self.follower = TopicFollower(
            kafka_connection(settings), topic_name(settings, INBOUND), apply_message=self._apply,
            name="inbound", since_ms=lambda: int((self._clock() - self._window_s) * 1000),
            after_batch=self._maybe_prune,
        )

    def _apply(self, record: Message) -> None:
        try:
            message = InboundMessage.from_avro(record.value())
        except (DecodeError, ValidationError) as exc:
            # The pipeline dead-letters such records itself; here only the message is missing.
            self.undecodable += 1
            log.debug("inbound store skipped an undecodable record: %s", exc)
            return
        if message.tenant_id is None:
            return
        partition, offset = record.partition() or 0, record.offset() or 0
        partitions = self._items.setdefault(message.tenant_id, {})
        items = partitions.setdefault(partition, [])
        if items and offset <= items[-1].offset:
            return  # read again after a follower restart
        items.append(item_of(message, partition, offset))
        if len(items) > self._max_per_tenant * 2:  # amortised: cut back to the bound at 2x
            partitions[partition] = items[-self._max_per_tenant:]

    def _maybe_prune(self) -> None:
        now = self._clock()
        if now - self._pruned_at < _PRUNE_EVERY_S:
            return
        self._pruned_at = now
        horizon = now - self._window_s
        for tenant_id, partitions in list(self._items.items()):
            for partition, items in list(partitions.items()):
                kept = [item for item in items[-self._max_per_tenant:]
                        if item.received_at >= horizon]
                if len(kept) != len(items):
                    partitions[partition] = kept
                if not kept:
                    del partitions[partition]
            if not partitions:
                self._items.pop(tenant_id, None)

    def page(self, tenant_id: str, cursor: Cursor, since: float | None, limit: int) -> Page:
        """The tenant's messages after ``cursor``; only ever ``tenant_id``'s."""
        partitions = dict(self._items.get(tenant_id, {}))  # a copy: the thread may add keys
        return select(partitions, cursor, since, limit)
