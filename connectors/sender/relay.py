"""Where a sender without a bind slot for an SMSC passes that SMSC's messages.

With bind leases (connectors/sender/bind_slots.py) a sender may consume sms.throttled records
for an SMSC it holds no bind to: records are partitioned by route, slots by SMSC, and there can
be more sender replicas than an SMSC allows binds. Such a record is written again to
sms.throttled, unchanged, on a partition consumed by a sender that does hold a bind (the
partitions each sender consumes travel in its bind reports on sms.smsc-binds, schema v2), and
the original's offset is finished once Kafka stored the copy: at-least-once, like a failover.
The copy skips the routing and the rate limits (they were applied once); the idempotency
ledger of the sender that submits it keeps a replayed copy from being submitted twice.

:class:`BindDirectory` follows sms.smsc-binds on its own thread (no consumer group: every
sender reads the whole compacted topic) into the same board the worker judges route health
from (smsflow/domain/tracking/binds.py).
"""

from __future__ import annotations

import logging
import threading
import zlib
from collections.abc import Sequence
from typing import Final

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition
from pydantic import ValidationError

from schemas.codec import DecodeError
from schemas.models import SmscBindStatus
from schemas.retrying import decode_blocking
from smsflow.domain.tracking.binds import BindReport, Board, apply_report, holder_partitions
from smsflow.kafka_clients import client_config
from smsflow.kafka_security import KafkaTarget

__all__ = ["RELAYED_HEADER", "BindDirectory", "pick_partition"]

log = logging.getLogger("smsflow.sender.relay")

#: Header on a relayed copy: the instance that passed it on (for logs and tests).
RELAYED_HEADER: Final = "smsflow-relayed-by"
_POLL_S: Final = 0.2


def pick_partition(partitions: Sequence[int], message_id: str) -> int:
    """One of the holders' partitions, the same for the same message (a replayed original is
    copied to the same partition, where the ledger knows it)."""
    return partitions[zlib.crc32(message_id.encode()) % len(partitions)]


class BindDirectory:
    def __init__(self, bootstrap: KafkaTarget, topic: str, instance: str, group_id: str) -> None:
        self.instance = instance
        self._topic = topic
        self._consumer = Consumer({
            **client_config(bootstrap),
            "group.id": group_id,  # required by the client; assigned, nothing is committed
            "enable.auto.commit": False,
        })
        self._lock = threading.Lock()
        self._board: Board = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sender-bind-directory",
                                        daemon=True)

    def start(self) -> None:
        """Start following (idempotent)."""
        if self._thread.is_alive() or self._stop.is_set():
            return
        self._consumer.assign([TopicPartition(self._topic, 0, OFFSET_BEGINNING)])
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self._consumer.close()

    def holder_partitions(self, smsc_id: str, now_ms: int) -> list[int]:
        """sms.throttled partitions of the other senders holding a bind to ``smsc_id``."""
        with self._lock:
            return holder_partitions(self._board, smsc_id, now_ms, besides=self.instance)

    def _run(self) -> None:
        while not self._stop.is_set():
            for message in self._consumer.consume(500, _POLL_S):
                self._apply(message)

    def _apply(self, message: Message) -> None:
        error = message.error()
        if error is not None:
            if error.code() != KafkaError._PARTITION_EOF:
                log.warning("bind directory: %s", error)
            return
        smsc_id, _, instance = (message.key() or b"").decode(errors="replace").partition("/")
        value = message.value()
        report: BindReport | None = None
        if value is not None:
            try:
                record = decode_blocking(SmscBindStatus, value)
            except (DecodeError, ValidationError) as exc:
                log.warning("bind directory: undecodable report %s skipped: %s", smsc_id, exc)
                return
            smsc_id, instance = record.smsc_id, record.instance
            report = BindReport(record.bound, record.heartbeat_s,
                                int(record.updated_at.timestamp() * 1000),
                                tuple(record.throttled_partitions))
        with self._lock:
            apply_report(self._board, smsc_id, instance, report)
