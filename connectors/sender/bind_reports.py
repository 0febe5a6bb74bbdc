"""The sender's bind reports on ``sms.smsc-binds``: how many binds this process holds per SMSC.

The worker folds them into route health (pipeline/bind_watch.py,
smsflow/domain/tracking/binds.py): a route whose SMSC no running sender holds a bind to is
``DOWN`` within seconds, instead of degrading on its error rate. One record per SMSC and
process, keyed ``<smsc_id>/<instance>``, written when the count of bound binds changes and
every :data:`HEARTBEAT_S` otherwise (a report older than three heartbeats counts as a crashed
sender's and is ignored); at a clean stop the process writes tombstones for its keys.

:meth:`BindReporter.due` is pure (views and time in, records out); the sender's consumer loop
calls :meth:`BindReporter.report` every round, which costs a dict comparison when nothing
changed.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Final

from confluent_kafka import Producer

from connectors.sender.metrics import BindView
from connectors.smpp.models import BindState
from schemas.models import SmscBindStatus

__all__ = ["HEARTBEAT_S", "BindReporter", "instance_name"]

HEARTBEAT_S: Final = 5

#: ``produce(key, value)``: value None is a tombstone.
Produce = Callable[[bytes, bytes | None], None]


def instance_name() -> str:
    """This process, as the reports name it (a pod's host name is its pod name)."""
    return f"{socket.gethostname()}-{os.getpid()}"


class BindReporter:
    def __init__(self, topic: str, produce: Produce, *, instance: str | None = None,
                 heartbeat_s: int = HEARTBEAT_S) -> None:
        self.topic = topic
        self.instance = instance or instance_name()
        self._produce = produce
        self._heartbeat_s = heartbeat_s
        #: smsc → ((bound, configured, partitions), at)
        self._last: dict[str, tuple[tuple[int, int, tuple[int, ...]], float]] = {}

    @classmethod
    def on(cls, producer: Producer, topic: str, *, instance: str | None = None) -> BindReporter:
        """Reports written with ``producer`` (flushed with the sender's other records)."""
        return cls(topic, lambda key, value: producer.produce(topic, key=key, value=value),
                   instance=instance)

    def due(self, views: Sequence[BindView], now: float,
            partitions: Sequence[int] = ()) -> list[SmscBindStatus]:
        """The records to write at ``now`` (seconds) for these bind views, with the
        sms.throttled ``partitions`` this process consumes. An SMSC reported before and
        absent now (its last bind slot went to another process) is reported with 0 binds."""
        counts: dict[str, list[int]] = {smsc_id: [0, 0] for smsc_id in self._last}
        for view in views:
            cell = counts.setdefault(view.smsc, [0, 0])
            cell[0] += view.state is BindState.BOUND
            cell[1] += 1
        consumed = tuple(sorted(partitions))
        records = []
        for smsc_id, (bound, configured) in sorted(counts.items()):
            state = (bound, configured, consumed)
            last = self._last.get(smsc_id)
            if last is not None and last[0] == state and now - last[1] < self._heartbeat_s:
                continue
            self._last[smsc_id] = (state, now)
            records.append(SmscBindStatus(
                smsc_id=smsc_id, instance=self.instance, bound=bound, configured=configured,
                heartbeat_s=self._heartbeat_s, updated_at=datetime.fromtimestamp(now, UTC),
                throttled_partitions=list(consumed)))
        return records

    def report(self, views: Sequence[BindView], now: float,
               partitions: Sequence[int] = ()) -> None:
        for record in self.due(views, now, partitions):
            self._produce(self._key(record.smsc_id), record.to_avro(self.topic))

    def withdraw(self) -> None:
        """Tombstones for every SMSC reported: this process holds no bind any more."""
        for smsc_id in sorted(self._last):
            self._produce(self._key(smsc_id), None)
        self._last.clear()

    def _key(self, smsc_id: str) -> bytes:
        return f"{smsc_id}/{self.instance}".encode()
