"""Table changelog writes held back and coalesced per key until the next commit.

Why: every table change was one changelog record: the tenant's quota row per message, the
route, operator and tenant windows per tracking delta, a pending-receipt entry set when a part
is sent and deleted when its receipt arrives, done markers. Recovery reads a changelog
(compacted) for the *last* value of each key only, so the records in between are work for the
worker, librdkafka and the broker that nothing reads. This is Kafka Streams' record cache:
keep the last value per key and write it when the offsets are committed.

Theory of operation
-------------------
* :meth:`ChangelogCache.write` keeps ``(topic, partition, key) -> value`` (``None`` for a
  delete), the last write winning; nothing is sent yet.
* :meth:`ChangelogCache.flush` is the worker's commit barrier (``pipeline/app.py``): it hands
  every held record to the output producer and then waits, with the agents' outputs, until
  the broker stored them. faust computes the offsets of a commit *before* the barriers run, and
  a table write is made while its source record is processed, before the record is acked: so
  every write of a record in a commit is in the changelog before that commit. The barrier also
  runs at every partition revocation, before the next owner recovers the tables. A crash loses
  only writes of records that were not committed, and those records are replayed.
* A key set while the table had no value for it, and deleted again before the next flush
  (a receipt that arrives within the hold), costs no record at all: the changelog holds no live
  value for it (the table is recovered from the changelog before the agents run).
* Writes are held at most ``hold_s`` (so an idle worker that commits nothing still writes
  them: timer-driven changes such as receipt expiry) and at most ``max_keys`` keys; a clean
  stop writes what is held (the barrier runs at ``on_before_shutdown`` too).
* ``hold_s <= 0`` writes through, one record per change, as before.
"""

from __future__ import annotations

import asyncio

from pipeline.outputs import OutputProducer

__all__ = ["ChangelogCache"]

#: A held key: changelog topic, partition, serialized key.
Slot = tuple[str, int, bytes | None]

_RETRY_FULL_QUEUE_S = 0.005


class _Held:
    """The last value written for a key, and whether the changelog had none before."""

    __slots__ = ("absent_before", "value")

    def __init__(self, value: bytes | None, absent_before: bool) -> None:
        self.value = value
        self.absent_before = absent_before


class ChangelogCache:
    """One per worker: see the module docstring."""

    def __init__(self, producer: OutputProducer, *, hold_s: float, max_keys: int = 50_000,
                 ) -> None:
        self._producer = producer
        self.hold_s = hold_s
        self._max_keys = max_keys
        self._held: dict[Slot, _Held] = {}
        self._drain_at: asyncio.TimerHandle | None = None
        #: Table changes seen, records handed to the producer, and key changes that needed none.
        self.changes = 0
        self.records = 0
        self.skipped = 0

    @property
    def held(self) -> int:
        return len(self._held)

    def write(self, topic: str, partition: int, key: bytes | None, value: bytes | None,
              absent_before: bool) -> None:
        """Record a table change. ``absent_before``: the table had no value for the key."""
        self.changes += 1
        if self.hold_s <= 0:
            self._producer.send_soon(topic, key, value, partition=partition)
            self.records += 1
            return
        slot = (topic, partition, key)
        held = self._held.get(slot)
        if held is not None:
            held.value = value
            return
        self._held[slot] = _Held(value, absent_before)
        if len(self._held) >= self._max_keys:
            self.drain()
        elif self._drain_at is None:
            self._drain_at = asyncio.get_running_loop().call_later(self.hold_s, self.drain)

    def drain(self) -> None:
        """Hand every held record to the output producer (in the order keys were first held).
        A full producer queue keeps the rest held and tries again shortly."""
        if self._drain_at is not None:
            self._drain_at.cancel()
            self._drain_at = None
        held, self._held = self._held, {}
        send_soon = self._producer.send_soon
        for index, ((topic, partition, key), entry) in enumerate(held.items()):
            if entry.value is None and entry.absent_before:
                self.skipped += 1
                continue
            try:
                send_soon(topic, key, entry.value, partition=partition)
            except BufferError:
                # Nothing was written meanwhile (this runs without a pause): keep the rest.
                self._held = dict(list(held.items())[index:])
                self._drain_at = asyncio.get_running_loop().call_later(
                    _RETRY_FULL_QUEUE_S, self.drain)
                return
            self.records += 1

    async def flush(self) -> None:
        """The commit barrier: every held change handed over, then every output stored."""
        while self._held:
            self.drain()
            if self._held:
                await asyncio.sleep(_RETRY_FULL_QUEUE_S)
        await self._producer.flush()
