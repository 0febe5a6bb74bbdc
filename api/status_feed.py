"""The status store: every API process folds the pipeline's topics into message states
(:mod:`api.status`) and per-tenant daily usage, in a follower thread, so a status request is a
dict look-up, never a scan of Kafka.

It starts reading at the earlier of the start of the UTC day (usage) and ``status_window_s``
ago (statuses), and forgets a message ``status_window_s`` after its last change. Every process
reads every partition of the five topics: the cost grows with total traffic, which is why it can
be switched off (``SMSFLOW_API_STATUS_ENABLED=false``; the two GET routes then answer 503).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Message

from api.follower import TopicFollower
from api.status import DayUsage, Event, MessageState, Stage, count, step
from schemas.batches import sent_values
from schemas.codec import DecodeError
from schemas.models import (
    AvroModel,
    DeliveryReport,
    Rejection,
    RoutedMessage,
    SubmitOutcome,
    SubmitRequest,
    SubmitStatus,
)
from smsflow.kafka_security import kafka_connection
from smsflow.settings import Settings
from smsflow.topics import DLR, REJECTED, ROUTED, SENT, SUBMITTED, topic_name

log = logging.getLogger(__name__)

DAY_S = 86_400
_PRUNE_EVERY_S = 60.0


# The decoders read the Avro dicts as they come, without building the pydantic models: the
# store folds ~5 records per accepted message, and model validation (RoutedMessage nests a whole
# SubmitRequest) was most of that cost (docs/performance.md#http-api). The equivalence with the
# models is a unit test (tests/unit/api/test_status_feed.py).


def _submitted(raw: bytes | None) -> Event | None:
    r = _SUBMIT.decode(raw)
    return Event(r["message_id"], r["tenant_id"], Stage.SUBMITTED, destination=r["destination"],
                 client_ref=r["client_ref"], at=r["submitted_at"].timestamp())


def _routed(raw: bytes | None) -> Event | None:
    r = _ROUTED.decode(raw)
    request = r["request"]
    return Event(request["message_id"], request["tenant_id"], Stage.ROUTED,
                 destination=request["destination"], client_ref=request["client_ref"],
                 route_id=r["route_id"], parts=r["parts"])


def _sent(raw: bytes | None) -> Event | None:
    r = _OUTCOME.decode(raw)
    accepted = r["outcome"] == SubmitStatus.ACCEPTED.value
    return Event(r["message_id"], r["tenant_id"], Stage.SENT, route_id=r["route_id"],
                 parts=r["part_count"], part_index=r["part_index"], part_accepted=accepted)


def _reported(raw: bytes | None) -> Event | None:
    r = _REPORT.decode(raw)
    return Event(r["message_id"], r["tenant_id"], Stage.DONE, route_id=r["route_id"],
                 parts=r["parts"], status=r["status"], reason=r["reason"],
                 error_code=r["error_code"], at=r["done_at"].timestamp())


def _rejected(raw: bytes | None) -> Event | None:
    r = _REJECTION.decode(raw)
    if r["message_id"] is None:
        return None  # undecodable input: no message to show a status for
    return Event(r["message_id"], r["tenant_id"], Stage.REJECTED, status="REJECTED",
                 reason_code=r["reason_code"], reason=r["reason"],
                 at=r["rejected_at"].timestamp())


class _Codec:
    """The contract's codec, looked up at first use (the registry setting is read then)."""

    def __init__(self, model: type[AvroModel]) -> None:
        self._model = model

    def decode(self, raw: bytes | None) -> dict[str, Any]:
        return self._model.codec().decode(raw)


_SUBMIT = _Codec(SubmitRequest)
_ROUTED = _Codec(RoutedMessage)
_OUTCOME = _Codec(SubmitOutcome)
_REPORT = _Codec(DeliveryReport)
_REJECTION = _Codec(Rejection)


class StatusStore:
    def __init__(self, settings: Settings, window_s: float,
                 clock: Callable[[], float] = time.time) -> None:
        self._window_s = window_s
        self._clock = clock
        self._decoders: dict[str, Callable[[bytes | None], Event | None]] = {
            topic_name(settings, SUBMITTED): _submitted,
            topic_name(settings, ROUTED): _routed,
            topic_name(settings, SENT): _sent,
            topic_name(settings, DLR): _reported,
            topic_name(settings, REJECTED): _rejected,
        }
        self._states: dict[str, MessageState] = {}
        self._usage: dict[str, DayUsage] = {}
        self.undecodable = 0
        self._pruned_at = clock()
        self.follower = TopicFollower(
            kafka_connection(settings), list(self._decoders), apply_message=self._apply,
            name="status", since_ms=self._start_ms, after_batch=self._maybe_prune,
        )

    def _start_ms(self) -> int:
        now = self._clock()
        start_of_day = now - now % DAY_S
        return int(min(start_of_day, now - self._window_s) * 1000)

    def _apply(self, message: Message) -> None:
        decoder = self._decoders.get(message.topic() or "")
        if decoder is None:
            return
        try:
            # A sms.sent record holds one outcome or a batch (schemas/batches.py).
            values = (list(sent_values(message.value())) if decoder is _sent
                      else [message.value()])
            events = [decoder(value) for value in values]
        except (DecodeError, ValueError, KeyError, AttributeError) as exc:
            # The pipeline dead-letters such records itself; here only the status is missing.
            self.undecodable += 1
            log.debug("status feed skipped an undecodable %s record: %s", message.topic(), exc)
            return
        for event in events:
            if event is not None:
                self._fold(event, message)

    def _fold(self, event: Event, message: Message) -> None:
        now = self._clock()
        before = self._states.get(event.message_id)
        after = step(before, event, now)
        self._states[event.message_id] = after
        if after.tenant_id is not None:
            _kind, timestamp_ms = message.timestamp()
            day = int((timestamp_ms / 1000 if timestamp_ms > 0 else now) // DAY_S)
            self._usage[after.tenant_id] = count(
                self._usage.get(after.tenant_id), before, after, day
            )

    def _maybe_prune(self) -> None:
        now = self._clock()
        if now - self._pruned_at < _PRUNE_EVERY_S:
            return
        self._pruned_at = now
        horizon = now - self._window_s
        for message_id, state in list(self._states.items()):
            if state.updated < horizon:
                self._states.pop(message_id, None)

    def state(self, tenant_id: str, message_id: str) -> MessageState | None:
        """The message's state if it belongs to ``tenant_id``; None otherwise, also when it
        belongs to another tenant (the caller answers 404 either way)."""
        state = self._states.get(message_id)
        return state if state is not None and state.tenant_id == tenant_id else None

    def usage_today(self, tenant_id: str) -> DayUsage:
        today = int(self._clock() // DAY_S)
        usage = self._usage.get(tenant_id)
        return usage if usage is not None and usage.day == today else DayUsage(today)
