"""A stand-in for the parts of a faust app that :class:`pipeline.scheduling.ScheduledStage`
touches: flow control (which clears managed buffers on revocation), the consumer's pause/resume
and unacked set, and the partition signals. No broker, no event loop of faust's."""

from __future__ import annotations

from typing import Any


class Message:
    def __init__(self, partition: int, offset: int) -> None:
        self.topic = "sms.routed"
        self.partition = partition
        self.offset = offset
        self.acked = False


class Event:
    def __init__(self, partition: int, offset: int, acks: list[tuple[int, int]]) -> None:
        self.message = Message(partition, offset)
        self._acks = acks

    def ack(self) -> bool:
        self._acks.append((self.message.partition, self.message.offset))
        return True


class Flow:
    def __init__(self) -> None:
        self.active = True
        self.queues: list[Any] = []

    def manage_queue(self, queue: Any) -> None:
        self.queues.append(queue)

    def is_active(self) -> bool:
        return self.active

    def revoke(self) -> None:
        """What faust does at revocation: suspend, then clear every managed buffer."""
        self.active = False
        for queue in self.queues:
            queue.clear()


class Signal:
    def __init__(self) -> None:
        self.receivers: list[Any] = []

    def connect(self, receiver: Any) -> None:
        self.receivers.append(receiver)


class Consumer:
    def __init__(self) -> None:
        self.unacked: set[Any] = set()
        self.paused: set[int] = set()

    def pause_partitions(self, tps: Any) -> None:
        self.paused |= {tp.partition for tp in tps}

    def resume_partitions(self, tps: Any) -> None:
        self.paused -= {tp.partition for tp in tps}

    def topic_partitions(self, _topic: str) -> int | None:
        return None


class App:
    def __init__(self) -> None:
        self.flow_control = Flow()
        self.consumer = Consumer()
        self.on_partitions_revoked = Signal()
        self.on_partitions_assigned = Signal()
