"""The one failure behaviour of the worker's topic followers (pipeline/topic_follower.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from pipeline.topic_follower import Batch, TopicFollower


class FakeConsumer:
    """Records what the follower does with it; ``getmany`` returns the scripted batches."""

    def __init__(self, log: list[str], batches: list[Batch], **config: Any) -> None:
        self.log = log
        self.batches = batches
        self.config = config

    async def start(self) -> None:
        self.log.append("start")

    async def stop(self) -> None:
        self.log.append("stop")

    async def getmany(self, *, timeout_ms: int, max_records: int | None) -> Batch:
        if not self.batches:
            await asyncio.Event().wait()  # nothing more: wait like a quiet topic
        return self.batches.pop(0)


class Follower(TopicFollower):
    def __init__(self, batches: list[Batch], fail_on: set[int]) -> None:
        self.log: list[str] = []
        self.handled = 0
        self.fail_on = fail_on
        super().__init__("test follower", "127.0.0.1:1", group_id="g",
                         consumer_factory=self._consumer)
        self._batches = batches

    def _consumer(self, **config: Any) -> AIOKafkaConsumer:
        self.config = config
        return FakeConsumer(self.log, self._batches, **config)

    async def start_reading(self, consumer: AIOKafkaConsumer) -> None:
        self.log.append("position")

    async def on_batch(self, consumer: AIOKafkaConsumer, batch: Batch) -> None:
        self.handled += 1
        self.log.append(f"batch {self.handled}")
        if self.handled in self.fail_on:
            raise ConnectionError("broker went away")

    def on_stopped(self) -> None:
        self.log.append("stopped")


def test_any_failure_stops_the_consumer_and_starts_a_new_one_after_a_backoff() -> None:
    waits: list[float] = []

    async def no_wait(seconds: float) -> None:
        waits.append(seconds)

    follower = Follower([{}, {}, {}], fail_on={1, 2})
    asyncio.run(follower.run(sleep=no_wait, max_restarts=2))
    assert follower.log == [
        "start", "position", "batch 1", "stopped", "stop",
        "start", "position", "batch 2", "stopped", "stop",
    ]
    assert waits == [1.0, 2.0]
    assert follower.config == {"bootstrap_servers": "127.0.0.1:1", "group_id": "g",
                               "enable_auto_commit": False, "auto_offset_reset": "earliest",
                               "fetch_min_bytes": 1, "fetch_max_wait_ms": 500,
                               "security_protocol": "PLAINTEXT"}


def test_cancellation_stops_the_consumer_and_ends_the_follower() -> None:
    async def scenario() -> Follower:
        follower = Follower([{}], fail_on=set())
        task = asyncio.create_task(follower.run())
        while "batch 1" not in follower.log:
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return follower

    follower = asyncio.run(scenario())
    assert follower.log[-2:] == ["stopped", "stop"]
