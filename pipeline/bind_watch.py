"""Feeds ``sms.smsc-binds`` (the senders' bind reports) into route health.

Every worker reads the whole compacted topic without a consumer group (a
:class:`~pipeline.topic_follower.TopicFollower`, restarted after any failure, reading from the
beginning again) and keeps the reports in a :data:`~smsflow.domain.tracking.binds.Board`.
The tracking agent asks :meth:`BindWatcher.smsc_bound` when it judges a route
(pipeline/agents/tracking.py); when an SMSC's answer changes, the listeners are told at once so
its routes are judged now rather than at the next idle-route tick. An SMSC counts as unbound
only after ``grace_s`` without a bind (``SMSFLOW_BIND_DOWN_GRACE_S``;
:func:`~smsflow.domain.tracking.binds.after_grace`): a bind that drops and comes back within it
never takes its routes DOWN.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer

from pipeline.decoding import decode_or_log
from pipeline.topic_follower import Batch, TopicFollower
from schemas.models import SmscBindStatus
from smsflow.domain.tracking.binds import BindReport, Board, after_grace, apply_report, smsc_bound
from smsflow.kafka_security import KafkaTarget

log = logging.getLogger(__name__)

#: Called with an SMSC id whose bound/unbound answer changed.
BindListener = Callable[[str], Awaitable[None]]


class BindWatcher(TopicFollower):
    max_records = 1000

    def __init__(self, bootstrap: KafkaTarget, topic: str, *, grace_s: float = 0.0,
                 **kwargs: Any) -> None:
        super().__init__("bind-state watcher", bootstrap, **kwargs)
        self._topic = topic
        self._grace_ms = int(grace_s * 1000)
        self._unbound_since: dict[str, int | None] = {}
        self.board: Board = {}
        self._listeners: list[BindListener] = []
        self._answers: dict[str, bool | None] = {}

    def listen(self, listener: BindListener) -> None:
        self._listeners.append(listener)

    def smsc_bound(self, smsc_id: str, now_ms: int | None = None) -> bool | None:
        now = int(time.time() * 1000) if now_ms is None else now_ms
        answer, self._unbound_since[smsc_id] = after_grace(
            smsc_bound(self.board, smsc_id, now), self._unbound_since.get(smsc_id), now,
            self._grace_ms)
        return answer

    async def start_reading(self, consumer: AIOKafkaConsumer) -> None:
        self.board = {}  # replayed from the start: compacted, so the latest report per key
        consumer.subscribe([self._topic])

    async def on_batch(self, consumer: AIOKafkaConsumer, batch: Batch) -> None:
        touched: set[str] = set()
        for message in (m for records in batch.values() for m in records):
            smsc_id, _, instance = (message.key or b"").decode(errors="replace").partition("/")
            if message.value is None:
                apply_report(self.board, smsc_id, instance, None)
                touched.add(smsc_id)
                continue
            record = await decode_or_log(SmscBindStatus, message, "bind report")
            if record is None:
                continue
            apply_report(self.board, record.smsc_id, record.instance, BindReport(
                record.bound, record.heartbeat_s, int(record.updated_at.timestamp() * 1000)))
            touched.add(record.smsc_id)
        # Every SMSC once unbound is looked at again after each fetch (empty ones too), so the
        # end of its grace is noticed without a new report.
        touched.update(smsc for smsc, since in self._unbound_since.items() if since is not None)
        for smsc_id in sorted(touched):
            answer = self.smsc_bound(smsc_id)
            if self._answers.get(smsc_id) is answer:
                continue
            self._answers[smsc_id] = answer
            log.info("SMSC %s: %s", smsc_id, {True: "a sender holds a bind", False:
                     "no sender holds a bind: its routes go DOWN", None: "no bind reports"}[
                     answer])
            for listener in self._listeners:
                await listener(smsc_id)
