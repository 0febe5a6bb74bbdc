"""Which of the sender's partitions to pause, and when to resume them (pure; hysteresis).

Records of every SMSC share the ``sms.throttled`` partitions (keyed by route), and the
sender holds what it has read in per-SMSC queues until a window has room. Two bounds keep
that memory finite:

* **Per SMSC.** An SMSC with more than ``per_smsc_limit`` parts queued (bound but not
  answering, or far slower than its traffic) is *over*: the partitions its queued parts came
  from are paused, and they stay paused until its queue is back at half the limit. The set is
  sticky while the SMSC is over (a partition whose last queued part of that SMSC went out
  stays paused too): resuming it would only read more of the same SMSC's records.
  Partitions that carry none of its queued parts keep flowing, so an SMSC whose routes hash
  to other partitions is not delayed at all. One that shares a partition with the stuck
  SMSC waits with it: records of one partition are read in order, and what was read is
  held in memory, so that is the price of a bound.
  A consume round takes at most what the fullest SMSC not over its bound has room for, so
  one round never puts an SMSC over: only an SMSC that does not drain gets there. (Pausing
  drops the partition's fetched records, which are fetched again after the resume.)
* **In total.** At ``total_limit`` parts across all queues (or while a record Kafka refused
  is being produced again, ``hold_all``) every assigned partition pauses, until the total is
  back at half: the memory bound of last resort (many SMSCs over at once).

:class:`PartitionPauser` applies the difference between the gate's answer and what it paused
before to the sender's consumer (``Consumer.pause``/``resume`` per partition).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping

from confluent_kafka import Consumer, TopicPartition

__all__ = ["PartitionGate", "PartitionPauser"]

log = logging.getLogger("smsflow.sender")


class PartitionGate:
    """See the module docstring."""

    def __init__(self, *, per_smsc_limit: int, total_limit: int) -> None:
        if per_smsc_limit < 1 or total_limit < 1:
            raise ValueError("queue limits must be >= 1")
        self.per_smsc_limit = per_smsc_limit
        self.total_limit = total_limit
        self.all_paused = False
        #: SMSC → the partitions paused for it (sticky while it is over its limit).
        self.over: dict[str, set[int]] = {}

    def paused(
        self,
        queued: Mapping[str, Mapping[int, int]],
        assigned: Collection[int],
        *,
        hold_all: bool = False,
    ) -> frozenset[int]:
        """The partitions (of ``assigned``) to keep paused, given the parts queued per SMSC
        and source partition."""
        totals = {smsc: sum(by_partition.values()) for smsc, by_partition in queued.items()}
        total = sum(totals.values())
        if hold_all or total >= self.total_limit:
            self.all_paused = True
        elif self.all_paused and total <= self.total_limit // 2:
            self.all_paused = False
        for smsc, parts in totals.items():
            partitions = self.over.get(smsc)
            if partitions is None:
                if parts > self.per_smsc_limit:
                    self.over[smsc] = {p for p, n in queued[smsc].items() if n > 0}
            elif parts <= self.per_smsc_limit // 2:
                del self.over[smsc]
            else:
                partitions.update(p for p, n in queued[smsc].items() if n > 0)
        for smsc in [s for s in self.over if s not in totals]:  # its queue is gone
            del self.over[smsc]
        if self.all_paused:
            return frozenset(assigned)
        held = set().union(*self.over.values()) if self.over else set()
        return frozenset(held.intersection(assigned))

    def quiet(self, totals: Mapping[str, int], *, hold_all: bool = False) -> bool:
        """Nothing held and no bound reached (``totals``: parts queued per SMSC): then
        :meth:`paused` would answer "nothing" without needing the per-partition counts."""
        return (not hold_all and not self.all_paused and not self.over
                and sum(totals.values()) < self.total_limit
                and all(n <= self.per_smsc_limit for n in totals.values()))

    def room(self, queued: Mapping[str, int]) -> int:
        """How many records one consume round may take (parts queued per SMSC given): what
        the total bound leaves, and what the fullest SMSC not yet over its bound has left
        (a round's records may all be for that SMSC; an SMSC over its bound gets no more
        from its paused partitions)."""
        fullest = max((n for smsc, n in queued.items() if smsc not in self.over), default=0)
        return min(self.total_limit - sum(queued.values()), self.per_smsc_limit - fullest)


class PartitionPauser:
    """Keeps the consumer's paused partitions at what :class:`PartitionGate` says.

    Called every consume round, so the usual case costs almost nothing: while nothing is
    paused and no SMSC is near a bound (:meth:`PartitionGate.quiet`, from the plain per-SMSC
    totals), neither the per-partition counts nor the consumer are asked. The assignment is
    kept from the rebalance callbacks instead of ``Consumer.assignment()`` per round."""

    def __init__(self, consumer: Consumer, topic: str, gate: PartitionGate) -> None:
        self._consumer = consumer
        self._topic = topic
        self._gate = gate
        self.assigned: frozenset[int] = frozenset()
        self.paused: frozenset[int] = frozenset()

    def assign(self, partitions: Collection[int]) -> None:
        """A new assignment. librdkafka keeps a partition paused across a rebalance that
        gives it back (checked with confluent-kafka 2.16: a partition paused before another
        consumer joined and left delivered 0 of 20 new records afterwards), so every assigned
        partition counts as paused until the next :meth:`apply` resumes those the gate does
        not hold."""
        self.assigned = frozenset(partitions)
        self.paused = self.assigned

    def revoke(self, partitions: Collection[int]) -> None:
        self.assigned -= frozenset(partitions)
        self.paused -= frozenset(partitions)

    def apply(self, totals: Mapping[str, int],
              by_partition: Callable[[], Mapping[str, Mapping[int, int]]], *,
              hold_all: bool) -> bool:
        """Pause and resume to match the gate (``totals``: parts queued per SMSC;
        ``by_partition()``: the same per source partition, asked only when needed). True
        when a partition was newly paused."""
        if not self.paused and self._gate.quiet(totals, hold_all=hold_all):
            return False
        queued = by_partition()
        paused = self._gate.paused(queued, self.assigned, hold_all=hold_all)
        if paused == self.paused:
            return False
        pause = sorted(paused - self.paused)
        resume = sorted(self.paused - paused)
        if pause:
            log.info("pausing partitions %s: parts queued per SMSC and partition %s; over "
                     "their bound: %s", pause, dict(queued),
                     "all (total)" if self._gate.all_paused else sorted(self._gate.over))
            self._consumer.pause([TopicPartition(self._topic, p) for p in pause])
        if resume:
            self._resume([TopicPartition(self._topic, p) for p in resume])
        self.paused = paused
        return bool(pause)

    def _resume(self, partitions: list[TopicPartition]) -> None:
        """Resume, then seek each partition to where the application is: librdkafka only
        notices a resume at its broker thread's next idle wake-up, up to a second later when
        no other partition of that broker is fetching (measured: ~0.9 s against ~25 ms with
        the seek, which wakes it). The position is the next record to hand over, so the
        seek skips and repeats nothing; a partition with no position yet is left alone."""
        self._consumer.resume(partitions)
        for tp in self._consumer.position(partitions):
            if tp.offset >= 0:
                self._consumer.seek(tp)
