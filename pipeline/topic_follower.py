"""One way for the worker to follow a Kafka topic outside faust, with one failure behaviour.

Four readers of the worker use a plain aiokafka consumer next to faust's: the configuration
watcher (``sms.config``), the route-health watcher (``sms.route-health``), the throttle's
submit feedback (``sms.sent``) and the deferred releaser (``sms.deferred``). Each is a
:class:`TopicFollower`; a subclass says only where to start reading
(:meth:`~TopicFollower.start_reading`) and what a fetched batch means
(:meth:`~TopicFollower.on_batch`).

Failure behaviour (the same for all four): any exception from the consumer or from the
subclass ends the current consumer (stopped in every case) and is logged with its traceback;
:func:`~pipeline.restarting.keep_running` starts a new consumer after a backoff of 1 s,
doubling to 30 s, reset after a run that lasted a minute. The new consumer begins again at
:meth:`~TopicFollower.start_reading`: the group readers resume from their committed offsets,
the others from where their ``start_reading`` says (the configuration from the beginning, the
feedback from the end). Cancellation (worker shutdown) ends the follower; a follower that
returns by itself is restarted too.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from pipeline.restarting import keep_running
from smsflow.kafka_clients import aiokafka_config
from smsflow.kafka_security import KafkaTarget

__all__ = ["Batch", "ConsumerFactory", "TopicFollower"]

log = logging.getLogger(__name__)

#: What ``getmany`` returns: the records fetched, per partition.
Batch = Mapping[TopicPartition, Sequence[ConsumerRecord[bytes, bytes]]]
#: Builds an (unstarted) consumer from aiokafka's keyword arguments; tests pass a fake.
ConsumerFactory = Callable[..., AIOKafkaConsumer]


class TopicFollower(ABC):
    """A long-running reader of one topic; see the module docstring."""

    #: How many records one fetch returns at most (None: aiokafka's ``max_poll_records``).
    max_records: int | None = None

    def __init__(
        self,
        name: str,
        bootstrap: KafkaTarget,
        *,
        group_id: str | None = None,
        auto_offset_reset: str = "earliest",
        fetch_min_bytes: int = 1,
        fetch_max_wait_ms: int = 500,
        consumer_factory: ConsumerFactory = AIOKafkaConsumer,
    ) -> None:
        self.name = name
        self._bootstrap = bootstrap
        self._group_id = group_id
        self._auto_offset_reset = auto_offset_reset
        # aiokafka's defaults (1 byte, 500 ms): a busy topic is then fetched again as soon as
        # anything arrived. Busy followers pass SMSFLOW_FETCH_MIN_BYTES/_MAX_WAIT_MS instead
        # (fewer, fuller fetches: docs/performance.md#fetch-batching).
        self._fetch_min_bytes = fetch_min_bytes
        self._fetch_max_wait_ms = fetch_max_wait_ms
        self._consumer_factory = consumer_factory

    async def run(
        self,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        max_restarts: int | None = None,
    ) -> None:
        """Follow the topic until cancelled, restarting after every failure (``sleep`` and
        ``max_restarts``: for tests)."""
        await keep_running(self.name, self.follow_once, sleep=sleep, max_restarts=max_restarts)

    async def follow_once(self) -> None:
        """One consumer's life: start, position, fetch batches until something fails."""
        consumer = self._consumer_factory(**aiokafka_config(
            self._bootstrap, group_id=self._group_id,
            enable_auto_commit=False, auto_offset_reset=self._auto_offset_reset,
            fetch_min_bytes=self._fetch_min_bytes, fetch_max_wait_ms=self._fetch_max_wait_ms,
        ))
        await consumer.start()
        try:
            await self.start_reading(consumer)
            while True:
                self.before_fetch(consumer)
                batch = await consumer.getmany(timeout_ms=self.fetch_timeout_ms(),
                                               max_records=self.max_records)
                await self.on_batch(consumer, batch)
        finally:
            self.on_stopped()
            await consumer.stop()

    @abstractmethod
    async def start_reading(self, consumer: AIOKafkaConsumer) -> None:
        """Subscribe or assign, and seek: where this consumer starts."""

    @abstractmethod
    async def on_batch(self, consumer: AIOKafkaConsumer, batch: Batch) -> None:
        """Handle one fetch (possibly empty: it also marks the passing of time)."""

    def before_fetch(self, consumer: AIOKafkaConsumer) -> None:  # noqa: B027 (optional hook)
        """Called before every fetch (e.g. resume partitions that became due)."""

    def fetch_timeout_ms(self) -> int:
        """How long a fetch waits for records."""
        return 1000

    def on_stopped(self) -> None:  # noqa: B027 (optional hook)
        """The consumer is about to stop (failure or shutdown): drop per-consumer state."""
