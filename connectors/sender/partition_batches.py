"""Items held per Kafka partition and written as one record per partition.

Three of the sender's writes take this shape: the receipts on ``sms.dlr.raw``
(connectors/sender/receipt_batches.py) and the submit outcomes on ``sms.sent``
(connectors/sender/outcome_batches.py), both written by a thread of their own a few
milliseconds after the first item arrives, and the ledger's DONEs, written after each round of
delivery reports (connectors/sender/ledger_store.py). Why batches at all: a record per item
made the worker pay faust's per-event cost, a fetch and a produce per part
(docs/performance.md#batched-receipts).
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable
from typing import Generic, TypeVar

from smsflow.murmur2 import partition_of

log = logging.getLogger(__name__)

Item = TypeVar("Item")

#: Items at most in one record by default: a full hold is written at once, not after the delay.
MAX_BATCH = 1000


class PartitionBatches(Generic[Item]):
    """Holds items per partition until :meth:`flush` hands each partition's to ``write``
    (thread-safe). With :meth:`start`, a thread of its own flushes ``delay_s`` after the first
    item; after :meth:`stop`, :meth:`add` holds nothing more (its caller writes the item
    alone)."""

    def __init__(self, write: Callable[[int, list[Item]], None], *,
                 max_batch: int = MAX_BATCH) -> None:
        self._write = write
        self._max_batch = max_batch
        self._cond = threading.Condition()
        self._held: dict[int, list[Item]] = defaultdict(list)
        self._count = 0
        self._stopping = False
        self._thread: threading.Thread | None = None

    def add(self, partition: int, item: Item) -> bool:
        """Hold ``item`` for ``partition`` (flushing at once when the hold is full); False,
        and nothing held, once stopped."""
        with self._cond:
            if self._stopping:
                return False
            self._held[partition].append(item)
            self._count += 1
            if self._count == 1:
                self._cond.notify()  # the writing thread waits for a first item
            full = self._count >= self._max_batch
        if full:
            self.flush()
        return True

    def flush(self) -> int:
        """Write what is held now, one ``write`` per partition; how many items."""
        with self._cond:
            if not self._count:
                return 0
            held, self._held = self._held, defaultdict(list)
            flushed, self._count = self._count, 0
        for partition, items in held.items():
            self._write(partition, items)
        return flushed

    def __len__(self) -> int:
        with self._cond:
            return self._count

    def start(self, delay_s: float, name: str) -> None:
        """Flush ``delay_s`` after each first item, from a thread named ``name`` (once)."""
        with self._cond:
            if self._thread is not None or self._stopping:
                return
            self._thread = threading.Thread(target=self._write_loop, args=(delay_s,),
                                            name=name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Write what is held and stop the writing thread; later items are not held."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=5)
        self.flush()

    def _write_loop(self, delay_s: float) -> None:
        """Wait for a first item, give the others of the next ``delay_s`` a chance to join it,
        write them; so an idle sender does not wake up, and a busy one every ``delay_s``."""
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._count > 0 or self._stopping)
                # The delay, cut short by stop() (which writes what is held itself).
                if self._stopping or self._cond.wait_for(lambda: self._stopping, delay_s):
                    return
            try:
                self.flush()
            except Exception:  # a failing produce must not stop the writing of later items
                log.exception("writing a batch to Kafka failed")


class KeyedBatcher(Generic[Item]):
    """Items held for the partition Kafka's default partitioner gives their key (murmur2) and
    written by a thread of its own ``delay_s`` after the first: the base of the receipt and
    outcome batchers, which write a partition's items as one record (:meth:`_write_batch`).
    Until :meth:`use_partitions` gave a partition count (and with ``delay_s`` 0), and after
    :meth:`stop`, :meth:`hold` holds nothing: the caller writes the item alone."""

    def __init__(self, delay_s: float, thread_name: str, *, max_batch: int = MAX_BATCH) -> None:
        self._hold: PartitionBatches[Item] = PartitionBatches(self._write_batch,
                                                              max_batch=max_batch)
        self._delay_s = delay_s
        self._thread_name = thread_name
        self._partitions: int | None = None
        self._count_lock = threading.Lock()
        #: Items written, and the records that carried them (logged at stop).
        self.items = 0
        self.records = 0

    def use_partitions(self, partitions: int | None) -> None:
        """The topic's partition count (None: unknown, a record per item); starts the writing
        thread the first time batching is on."""
        if self._delay_s > 0 and partitions:
            self._hold.start(self._delay_s, self._thread_name)
            self._partitions = partitions
        else:
            self._partitions = None

    def hold(self, key: str, item: Item) -> bool:
        """Hold ``item`` for the partition of ``key``; False when not batching (now)."""
        partitions = self._partitions  # set only once the writing thread runs
        return bool(partitions
                    and self._hold.add(partition_of(key.encode(), partitions), item))

    def flush(self) -> int:
        """Write what is held now, one record per partition; how many items."""
        return self._hold.flush()

    def stop(self) -> None:
        """Write what is held and stop the writing thread; later items are written alone."""
        self._hold.stop()

    def _write_batch(self, partition: int, items: list[Item]) -> None:
        raise NotImplementedError

    def _count(self, items: int) -> None:
        with self._count_lock:
            self.items += items
            self.records += 1
