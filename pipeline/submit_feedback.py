"""The throttle's adaptive rates fed from ``sms.sent``: every submit outcome is an AIMD sample.

``sms.sent`` is keyed by SMSC message id, not by route, so its partitions have nothing to do
with the ``sms.routed`` partitions a worker owns: a consumer group would hand each worker an
arbitrary slice of every route's outcomes, and a route's throttle would see only part of its own
feedback. So every worker reads *all* of ``sms.sent``, without a consumer group (assigned
partitions, from the end, nothing committed: a sample is advice, not work), and keeps the
outcomes of the routes it has lanes for. A :class:`~pipeline.topic_follower.TopicFollower`:
after a failure it starts again from the end (the lanes keep their last rates meanwhile).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from pipeline.decoding import decode
from pipeline.scheduling import ScheduledStage
from pipeline.topic_follower import Batch, TopicFollower
from schemas.batches import is_sent_batch, sent_entries
from schemas.codec import DecodeError
from schemas.models import SubmitOutcome
from schemas.summaries import SentSummary, parse_sent_summary
from smsflow.domain.limits import SubmitSample
from smsflow.domain.smpp_status import StatusCategory
from smsflow.kafka_security import KafkaTarget

__all__ = ["SubmitFeedback", "sample_of"]

log = logging.getLogger(__name__)

FEEDBACK_LOG_INTERVAL_S = 10.0
_METADATA_POLL_S = 0.2


def sample_of(outcome: SubmitOutcome | SentSummary) -> SubmitSample | None:
    """The AIMD sample a submit outcome gives, or None if it says nothing about the route.

    * A response status: its category (``ESME_RTHROTTLED``/``ESME_RMSGQFUL`` are back-pressure).
    * Accepted after more than one attempt: an earlier attempt was refused (the sender retries
      back-pressure and temporary errors without reporting them), so back-pressure.
    * No response (``command_status`` < 0) after waiting: a timeout, counted as its latency;
      without any wait (never submitted: no bind, expired, unsubmittable): no sample.
    """
    latency_s = outcome.latency_ms / 1000.0
    status = outcome.command_status
    if status < 0:
        return SubmitSample(latency_s, StatusCategory.TEMPORARY) if latency_s > 0 else None
    try:
        sample = SubmitSample.from_status(latency_s, status)
    except ValueError:
        return None
    if sample.category is StatusCategory.OK and outcome.attempts > 1:
        return SubmitSample(latency_s, StatusCategory.BACKPRESSURE)
    return sample


class SubmitFeedback(TopicFollower):
    """Reads every partition of ``sms.sent`` from its end and feeds the outcomes of the routes
    ``target`` has lanes for to their AIMD (see the module docstring)."""

    max_records = 2000

    def __init__(self, bootstrap: KafkaTarget, topic: str, target: ScheduledStage[Any],
                 **kwargs: Any) -> None:
        super().__init__(f"{target.name} feedback", bootstrap, auto_offset_reset="latest",
                         **kwargs)
        self._topic = topic
        self._stage = target
        self._next_log = 0.0
        self.samples = 0  # folded into a route's AIMD
        self.foreign = 0  # outcomes of routes this worker has no lane for
        self.unusable = 0  # undecodable, or no sample (see sample_of)

    async def start_reading(self, consumer: AIOKafkaConsumer) -> None:
        # Assigning a partition makes the client fetch the topic's metadata; then take all.
        consumer.assign([TopicPartition(self._topic, 0)])
        waited = 0.0
        while not (partitions := consumer.partitions_for_topic(self._topic)):
            await asyncio.sleep(_METADATA_POLL_S)
            waited += _METADATA_POLL_S
            if waited >= 30.0:
                log.warning("%s: no metadata for %s yet", self.name, self._topic)
                waited = 0.0
        tps = [TopicPartition(self._topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        self._next_log = time.monotonic() + FEEDBACK_LOG_INTERVAL_S

    async def on_batch(self, consumer: AIOKafkaConsumer, batch: Batch) -> None:
        for records in batch.values():
            for record in records:
                if not is_sent_batch(record.value):
                    await self.fold(record.value, record.headers)
                    continue
                try:
                    entries = sent_entries(record.value, record.headers)
                except ValueError:  # a batch cut short: the correlator dead-letters it
                    self.unusable += 1
                    continue
                for value, headers in entries:  # each outcome of a batch (schemas/batches.py)
                    await self.fold(value, headers)
        if time.monotonic() >= self._next_log:
            self._next_log = time.monotonic() + FEEDBACK_LOG_INTERVAL_S
            log.info("%s: samples=%d foreign=%d unusable=%d", self.name, self.samples,
                     self.foreign, self.unusable)

    async def fold(self, value: bytes | None,
                   headers: Sequence[tuple[str, bytes | str | None]] | None = None) -> None:
        """One ``sms.sent`` record: its summary header, else its decoded value."""
        outcome: SentSummary | SubmitOutcome | None = parse_sent_summary(headers)
        if outcome is None:  # no summary header (an older sender): decode the value
            try:
                outcome = await decode(SubmitOutcome, value)
            except (DecodeError, ValidationError):
                self.unusable += 1  # the delivery agent dead-letters it
                return
        if not self._stage.has_lane(outcome.route_id):
            self.foreign += 1
            return
        sample = sample_of(outcome)
        if sample is None:
            self.unusable += 1
            return
        self._stage.observe(outcome.route_id, sample)
        self.samples += 1
