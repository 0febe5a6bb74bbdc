"""Stand-ins for the batchers' tests (test_receipt_batches, test_outcome_batches): a produce
function that records what it was given, whose delivery reports the test fires, and the items'
own callbacks."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError

from smsflow.murmur2 import partition_of

PARTITIONS = 4
Headers = list[tuple[str, str | bytes | None]]
Delivery = Callable[[KafkaError | None, Any], None]


@dataclass
class Produced:
    topic: str
    key: str | None
    value: bytes
    on_delivery: Delivery
    partition: int | None
    headers: Headers | None = field(default=None)


class Recorder:
    """Stands for ``SenderService._produce`` or ``StoreRetry.produce``."""

    def __init__(self) -> None:
        self.records: list[Produced] = []
        self.produced = threading.Event()

    def __call__(self, topic: str, key: str | None, value: bytes, on_delivery: Delivery, *,
                 partition: int | None = None, headers: Headers | None = None) -> None:
        self.records.append(Produced(topic, key, value, on_delivery, partition, headers))
        self.produced.set()


class Callbacks:
    """The items' own delivery callbacks (a receipt's answer to its SMSC, an outcome's ledger
    DONE): what each got, and that it got it once."""

    def __init__(self) -> None:
        self.results: dict[str, KafkaError | None] = {}

    def callback(self, key: str) -> Delivery:
        def on_delivery(error: KafkaError | None, _message: Any) -> None:
            assert key not in self.results, f"{key} called back twice"
            self.results[key] = error
        return on_delivery


def keys_by_partition(count: int) -> dict[int, list[str]]:
    """``count`` keys ``smsc-uk:<hex>`` by the partition of :data:`PARTITIONS` each goes to."""
    found: dict[int, list[str]] = {}
    for n in range(count):
        key = f"smsc-uk:{n:08x}"
        found.setdefault(partition_of(key.encode(), PARTITIONS), []).append(key)
    return found
