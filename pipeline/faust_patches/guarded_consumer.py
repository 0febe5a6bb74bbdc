"""faust's consumer, corrected so that no record is skipped, stranded or committed unprocessed.

faust-streaming 0.15.3 (pinned) loses or strands records around rebalances and table recovery
(its issue #596: "events skipped and commits stalled after table recovery"). What we measured
in our drills (worker SIGKILL, scale-out, throttle stop/kill), each fixed here:

1. **Read offset overtakes the fetch position** (``Consumer._drain_messages``). The drain drops
   every record below its per-partition read offset, which it sets *after* a delivery, even
   when a seek or a rebalance happened while that delivery waited for a full stream buffer:
   the records re-fetched after table recovery's seek were dropped as read though some never
   reached an agent (~3,500 drops in one scale-out run; 25 of 3,000 messages stranded).
2. **Emptied buffers are not re-fetched.** Resuming the flow empties every stream buffer
   (``FlowControlEvent.resume`` clears its queues), and a partition whose buffer was full had
   been taken off the fetch list (``on_buffer_full``): an emptied buffer never drains, so that
   partition was not fetched again until the next rebalance ("the throttle's stream stalled
   after a restart"). Pausing a partition likewise drops the rest of its fetched batch.
3. **Commit arithmetic.** ``_new_offset`` pops the run it computes before the commit happens,
   so a capped or failed commit forgets processed records and stalls; it lets one unprocessed
   record through at the head; and records that the stream skipped across a rebalance are
   acked, and so committed, unprocessed.

:class:`GuardedConsumer` (installed by :func:`install`) replaces those paths for topics with
acks (our agents' inputs; table changelogs keep faust's logic):

* **Each generation starts at the committed offset.** After a rebalance faust resumes the
  partitions and only then seeks them to their committed offsets (``perform_seek``); records
  fetched in between come from wherever aiokafka's fetch position was, which may be past the
  committed offset (records fetched under the old generation and labelled with the new one).
  Delivered, such a record began the partition's run in the middle: the records before it
  came later, out of order, and the tracking windows (which skip a delta at or below the last
  position merged into a window) dropped them: ~100 window events in one scale-out run
  (:meth:`GuardedConsumer.seek_to_committed`). Such records are now held back until the
  generation's committed offsets are known; then delivery starts exactly there.
* **In offset order, not a read offset.** The drain keeps, per partition and generation, the
  next offset to deliver. A record past it means records were dropped on the way (faust's
  pause drops the rest of a fetched batch): the partition is fetched again from the missing
  one before anything later is delivered, so every agent sees each partition in order (the
  tracking fan-out and the quota table keep positions and rely on it). A record below it,
  fetched again after a seek, is skipped if it is processed or in flight; a record fetched
  under an older generation is skipped (its new owner reads it). When faust empties the
  stream buffers, each partition is fetched again from its first record no stream took.
* **Commits** (:func:`~pipeline.offset_rules.committable_end`): only the run of processed
  records that starts at the committed offset, capped at the oldest record in flight; acks of
  records skipped across a rebalance are refused (not committable, read again by the owner).
* **Bounded rebalance wait** (:meth:`GuardedConsumer.wait_empty`): before a rebalance faust
  waits until every delivered record is acked, for ever. A failover drill (broker and worker
  killed together) left a surviving worker in that wait for 10 minutes on five ``sms.sent``
  records one of their two agents had acked and the other never received (still referenced off
  the streams, so faust's weak in-flight set never let go). After :attr:`WAIT_EMPTY_MAX_S`
  the records still in flight are released unacked: not committable, read again by their
  partitions' next owner (a duplicate at worst, never a loss), and the rebalance goes on.
* **Watchdog** (:func:`watch_for_stranded_records`): a partition whose committed record is
  neither processed nor in flight, while the partition is off the fetch list (3 s), or
  delivered but never taken, or nothing arrives (30 s), is put back on the list and fetched
  again from that record.

At-least-once stays the contract: a record may be processed twice around a rebalance (as
after any crash), never skipped. Stages that hold records longer (the throttle's
:class:`~pipeline.scheduling.ScheduledStage`) add their own cap through
:func:`~pipeline.faust_patches.commit_hooks.add_commit_cap`, and outputs of our own producer
are awaited before a commit (:func:`~pipeline.faust_patches.commit_hooks.add_commit_barrier`).

What this patch overrides, copies or reads in faust-streaming 0.15.3 (pinned) is listed in
:data:`UPSTREAM` and :data:`CONSUMER_ATTRIBUTES`; tests/unit/pipeline/faust_patches/
test_upstream.py and test_guarded_consumer.py fail when any of it changes. The pure rules live in
:mod:`pipeline.offset_rules`, the counters in :mod:`pipeline.commit_guard`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Any, cast

import faust
from aiokafka.errors import IllegalStateError
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, Message
from mode import Service
from mode.utils.futures import notify

from pipeline.commit_guard import GUARD, log_powers_of_two
from pipeline.faust_patches.commit_hooks import barriers_of, capped
from pipeline.faust_patches.upstream import Upstream
from pipeline.offset_rules import StallReason, committable_end, oldest_in_flight, stall_reason

log = logging.getLogger(__name__)

__all__ = [
    "CONSUMER_ATTRIBUTES", "UPSTREAM", "GuardedConsumer", "GuardedTransport", "install",
    "watch_for_stranded_records",
]

_CONSUMER = "faust.transport.consumer:Consumer"

#: How often a delivery waiting for room in a full stream buffer looks again
#: (:meth:`GuardedConsumer._until_room`). Only a backlog fills a buffer; 2 ms is nothing
#: next to the time its records wait in there.
ROOM_POLL_S = 0.002


def _half_empty(queue: asyncio.Queue[Any]) -> bool:
    """A stream buffer holds at most half of its capacity."""
    return queue.qsize() * 2 <= queue.maxsize
#: The faust code this patch overrides (o), copies (c) or whose behaviour it relies on (r).
UPSTREAM: tuple[Upstream, ...] = (
    Upstream(f"{_CONSUMER}._drain_messages", "44a2500309e83c63",
             "(c) the fetch-to-streams loop copied into GuardedConsumer._drain_messages"),
    Upstream(f"{_CONSUMER}._new_offset", "1d2c7ea89a7ad4f1",
             "(o) the commit arithmetic replaced by committable_end"),
    Upstream(f"{_CONSUMER}._filter_committable_offsets", "dc5e9baf5d994485",
             "(o) calls self._new_offset per partition; the result is capped at in-flight"),
    Upstream(f"{_CONSUMER}.ack", "5fcf41cf45153475",
             "(o) adds to _acked_index/_unacked_messages; refused across rebalances"),
    Upstream(f"{_CONSUMER}.seek", "b86a9fe05f956b30", "(o) counted, to order re-fetches"),
    Upstream(f"{_CONSUMER}.perform_seek", "0e8c130ff4b0afd8",
             "(r) calls seek_to_committed; sets _committed_offset from its answer"),
    Upstream("faust.tables.recovery:Recovery.on_recovery_completed", "6ef567acf072e46d",
             "(r) resumes the partitions, then perform_seek, once per rebalance"),
    Upstream("faust.tables.recovery:Recovery._resume_streams", "d986a6710c1aca98",
             "(r) the same order when there is nothing to recover"),
    Upstream("faust.transport.drivers.aiokafka:Consumer.seek_to_committed", "f1d483b861b0328b",
             "(o) the generation's start offsets recorded"),
    Upstream("aiokafka.consumer.consumer:AIOKafkaConsumer.seek_to_committed", "f6cd85c8b70a4ccf",
             "(r) seeks only partitions whose committed offset is > 0"),
    Upstream("faust.transport.consumer:ThreadDelegateConsumer._commit", "a20eec84e4b2ed50",
             "(o) the commit, preceded by the commit barriers"),
    Upstream(f"{_CONSUMER}.on_buffer_full", "c8961679e0bcdce5",
             "(r) takes a partition off the fetch list via _buffered_partitions"),
    Upstream(f"{_CONSUMER}._should_commit", "5ce941793947ad42",
             "(r) whether an offset is above the committed one"),
    Upstream("faust.transport.drivers.aiokafka:ConsumerThread.seek", "4dc79bf62cb25c2c",
             "(r) aiokafka's seek; _rewind runs it on the consumer thread's loop"),
    Upstream("mode.utils.queues:FlowControlEvent.clear", "dda5e40d80288a8f",
             "(r) clears every stream buffer; install() wraps it to re-fetch what was lost"),
    Upstream("faust.transport.conductor:Conductor._update_tp_index", "e8e3ac9025ef44f7",
             "(r) app.topics._tp_index: the channels (agents) reading each partition"),
    Upstream(f"{_CONSUMER}.wait_empty", "e4662fe24f094819",
             "(o) loops while _unacked_messages, waking on _waiting_for_ack; bounded here"),
)
#: Private attributes of faust's consumer this patch reads or writes (checked on an instance).
CONSUMER_ATTRIBUTES = (
    "_thread", "_read_offset", "_unacked_messages", "_acked_index", "_acked",
    "_committed_offset", "_buffered_partitions", "_paused_partitions", "_waiting_for_ack",
    "_commit_every", "_n_acked", "_get_active_partitions", "_set_active_tps", "_stopped",
)


def _log_powers_of_two(count: int, message: str, *args: object) -> None:
    log_powers_of_two(log, count, message, *args)


class GuardedConsumer(faust_aiokafka.Consumer):
    """faust's aiokafka consumer with the drain and commit paths above corrected."""

    #: Watchdog rounds (seconds) before a partition off the fetch list is fetched again ...
    STALL_ROUNDS = 3
    #: ... and before one whose committed record was delivered but not taken, or never came.
    IDLE_ROUNDS = 30
    #: Longest wait for in-flight records before a rebalance (agents take milliseconds per
    #: record; a schema-registry outage is the slowest legitimate case and is retried after).
    WAIT_EMPTY_MAX_S = 30.0
    #: Records fetched so far (read by the fetch shape's controller, fetch_wait.adapt_fetches).
    records_received = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._seeks = 0  # every seek and buffer clear counts; epochs compare against it
        self._seeked_at: dict[TP, int] = {}  # TP -> self._seeks right after its last seek
        self._next: dict[TP, tuple[int, int]] = {}  # TP -> (generation, next offset to deliver)
        self._first_delivered: dict[TP, int] = {}  # TP -> first offset of its generation
        #: TP -> (generation, committed offset at its start; None: nothing committed yet)
        self._start_of: dict[TP, tuple[int, int | None]] = {}
        #: TP -> (generation, lowest offset held back before the generation's start was known)
        self._held: dict[TP, tuple[int, int]] = {}
        self._gap_checks: dict[TP, tuple[int, int, int]] = {}  # TP -> (expected, got, times)
        self._suspects: dict[TP, tuple[int, int]] = {}  # TP -> (committed offset, rounds)
        self._delivering_since: float | None = None

    # -- acks and commits --------------------------------------------------------------------

    async def wait_empty(self) -> None:
        """faust's wait for every delivered record to be acked, bounded (module docstring)."""
        releaser = asyncio.ensure_future(self._release_in_flight_after(self.WAIT_EMPTY_MAX_S))
        try:
            await super().wait_empty()
        finally:
            releaser.cancel()

    async def _release_in_flight_after(self, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        stuck = [message for message in tuple(self._unacked_messages) if not message.acked]
        for message in stuck:
            message.acked = True  # not through ack(): never committable
            self._unacked_messages.discard(message)
        GUARD.wait_empty_released += len(stuck)
        log.warning("rebalance: %d in-flight record(s) not acked after %.0fs released unacked "
                    "(their partitions' next owner reads them again): %s", len(stuck), delay_s,
                    ", ".join(f"{m.tp.topic}:{m.tp.partition}@{m.offset}" for m in stuck[:10]))
        notify(self._waiting_for_ack)

    async def _commit(self, offsets: Mapping[TP, int]) -> bool:
        # faust flushed its own producer just before this; the agents' outputs go through
        # another one (pipeline.outputs), and a source may be committed only once they are
        # stored too.
        for barrier in barriers_of(self.app):
            await barrier()
        return bool(await super()._commit(offsets))

    def ack(self, message: Message) -> bool:
        if message.acked:
            return False
        if (
            message.generation_id != self.app.consumer_generation_id
            or not self.app.flow_control.is_active()
        ):
            # Skipped (or finished) across a rebalance: not committable; read again by the
            # partition's next owner. faust must still stop waiting for it.
            message.acked = True
            self._unacked_messages.discard(message)
            GUARD.stale_acks_refused += 1
            _log_powers_of_two(GUARD.stale_acks_refused, "refused %d acks of records skipped "
                               "across rebalances (read again by their partitions' next owner)")
            notify(self._waiting_for_ack)
            return False
        acked = bool(super().ack(message))
        if not acked:
            # A second delivery of an acked offset, or one below the committed offset: faust
            # keeps such a record in its unacked set forever, and the in-flight cap with it.
            self._unacked_messages.discard(message)
        return acked

    def _new_offset(self, tp: TP) -> int | None:
        """The offset to commit: the end of the run of processed records from the committed one.

        faust's version pops the run from its bookkeeping when it *computes* it, so a commit
        that is then capped (or fails) forgets processed records and stalls later; and it
        passes one unprocessed record at the head. This one reads without popping and prunes
        only what is below the committed offset.
        """
        if not self.app.topics.acks_enabled_for(tp.topic):
            return capped(self.app, tp, super()._new_offset(tp))
        processed = self._acked_index[tp]
        committed = self._committed_offset[tp]
        if processed and committed is not None and min(processed) < committed:
            processed.difference_update([o for o in processed if o < committed])
            self._acked[tp] = [o for o in self._acked[tp] if o >= committed]
        end = committable_end(processed, committed)
        if end is None and processed:
            GUARD.head_gaps_held += 1  # normal while that record is in flight
        return capped(self.app, tp, end)

    def _filter_committable_offsets(self, tps: Iterable[TP]) -> dict[TP, int]:
        offsets = super()._filter_committable_offsets(tps)
        if not offsets:
            return offsets
        oldest = oldest_in_flight(tuple(self._unacked_messages))
        for tp, offset in list(offsets.items()):
            floor = oldest.get(tp)
            if floor is None or floor >= offset:
                continue
            GUARD.commits_capped += 1
            log.info("faust would commit %s:%d at %d past in-flight record %d; capped",
                     tp.topic, tp.partition, offset, floor)
            if self._should_commit(tp, floor):
                offsets[tp] = floor
            else:
                del offsets[tp]
        return offsets

    # -- positions: the next offset to deliver, per partition ---------------------------------

    def _next_of(self, tp: TP) -> int | None:
        mark = self._next.get(tp)
        return mark[1] if mark is not None and mark[0] == self.app.consumer_generation_id \
            else None

    def lag(self) -> int:
        """Records fetchable but not yet delivered, over the partitions being delivered: the
        last fetched high watermark less the next offset to deliver (pipeline/backlog_batching.py).
        """
        behind, assigned = 0, self.assignment()
        for tp in list(self._next):
            offset = self._next_of(tp)  # None: a position of an earlier generation
            if offset is None or tp not in assigned:  # revoked meanwhile: aiokafka asserts
                continue
            highwater = self.highwater(tp)  # None until the partition was fetched once
            if highwater is not None and highwater > offset:
                behind += highwater - offset
        return behind

    def _rewind(self, tp: TP, offset: int) -> None:
        """Fetch ``tp`` again from ``offset`` and deliver nothing else of it before that."""
        self._seek_on_consumer_thread(tp, offset)
        self._read_offset[tp] = offset
        self._seeks += 1
        self._seeked_at[tp] = self._seeks
        self._next[tp] = (self.app.consumer_generation_id, offset)

    def _seek_on_consumer_thread(self, tp: TP, offset: int) -> None:
        """Seek aiokafka's consumer on its own thread's event loop.

        The aiokafka consumer lives on faust's consumer thread; a seek called from the app's
        loop (faust's own ``_seek`` does that) deletes the partition's entry in the fetcher's
        ``_records`` while that thread's ``fetched_records`` may be between reading and deleting
        it: ``KeyError`` in the fetcher, which crashed the worker under load (a benchmark run
        with the stranded-record watchdog seeking). On the thread's loop the seek runs between
        the fetcher's steps instead. It lands a moment later; records fetched meanwhile from the
        old position are refused by :meth:`_deliver_in_order` (``_next`` is already moved) and
        at worst cause one more rewind.
        """
        thread = self._thread
        loop: asyncio.AbstractEventLoop | None = getattr(thread, "thread_loop", None)
        if loop is None or not loop.is_running() or _running_loop() is loop:
            _seek_quietly(thread, tp, offset)
            return
        loop.call_soon_threadsafe(_seek_quietly, thread, tp, offset)

    async def seek_to_committed(self) -> Mapping[TP, int]:
        """faust's seek of every assigned partition to its committed offset (``perform_seek``,
        once per rebalance, after the partitions were resumed): each partition's deliveries in
        this generation start at that offset (:meth:`_deliver_in_order`)."""
        generation = self.app.consumer_generation_id
        committed = await super().seek_to_committed()
        if self.app.consumer_generation_id != generation:
            return committed  # another rebalance began: its own seek comes
        self._seeks += 1
        for partition, offset in committed.items():
            tp = TP(partition.topic, partition.partition)
            start = offset if offset is not None and offset >= 0 else None
            self._start_of[tp] = (generation, start)
            held = self._held.pop(tp, None)
            if start is not None and start > 0:
                # aiokafka seeked (it does for offsets > 0 only): a fetch begun before this
                # returns records from the old position; they are refused.
                self._seeked_at[tp] = self._seeks
            elif held is not None and held[0] == generation:
                # No seek, and records were held back: read them again, from offset 0 when
                # that is the committed offset, else (nothing committed yet: aiokafka started
                # at the log's start) from the lowest one held.
                self._rewind(tp, 0 if start is not None else held[1])
        return committed

    async def seek(self, partition: TP, offset: int) -> None:
        await super().seek(partition, offset)
        self._seeks += 1
        self._seeked_at[partition] = self._seeks
        # Records fetched again below the next offset: those taken are skipped, the others
        # (emptied from a buffer) delivered again, in order.

    def buffers_cleared(self) -> None:
        """The streams' buffers were emptied (flow resumed, or a revocation).

        Records delivered but still in a buffer are gone: each partition is fetched again from
        its first record no stream took (older ones were, and count as in flight or processed).
        A partition whose buffer was full had also been taken off the fetch list
        (``on_buffer_full``); only the buffer draining puts it back, and an emptied buffer never
        drains: faust would not fetch it again until the next rebalance (the throttle's stream
        "stalled after a restart"). Put them back now.
        """
        for tp in tuple(self._buffered_partitions):
            self._reactivate(tp)
        if not self.app.flow_control.is_active():
            return  # a revocation: the next assignment starts from the committed offsets
        generation = self.app.consumer_generation_id
        taken = {(m.tp, m.offset) for m in tuple(self._unacked_messages)}
        for tp, (mark_generation, next_offset) in list(self._next.items()):
            if mark_generation != generation:
                continue
            committed = self._committed_offset[tp]
            start = self._first_delivered.get(tp, next_offset)
            if committed is not None:
                start = max(start, committed)
            first_lost = next(
                (o for o in range(start, next_offset) if not self._taken(tp, o, taken)), None
            )
            if first_lost is not None and tp in self.assignment():
                GUARD.rewinds += 1
                log.info("%s:%d: records from %d were in a stream buffer faust emptied; "
                         "fetching them again", tp.topic, tp.partition, first_lost)
                self._rewind(tp, first_lost)
                if len(self._channels_of(tp)) > 1:
                    # Taken by one agent, emptied from the other's buffer: such a record is
                    # never acked (faust acks once every agent did), and would hold the
                    # in-flight cap forever. Its new copy, delivered to both, counts instead.
                    for message in tuple(self._unacked_messages):
                        if message.tp == tp and message.offset >= first_lost:
                            self._unacked_messages.discard(message)

    def _reactivate(self, tp: TP) -> bool:
        """Put ``tp`` back on the fetch list unless it is paused or not ours; True if it was off."""
        active = self._get_active_partitions()
        self._buffered_partitions.discard(tp)
        if tp in active or tp in self._paused_partitions or tp not in self.assignment():
            return False
        active.add(tp)
        return True

    # -- the drain loop ----------------------------------------------------------------------

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover (faust's loop)
        """faust's loop from fetched records to the streams, delivering in offset order."""
        consumer_should_stop = cast(Service, self)._stopped.is_set
        fetcher_should_stop = cast(Service, fetcher)._stopped.is_set
        acks_enabled_for = self.app.topics.acks_enabled_for
        num_since_yield = 0
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                self.diag.set_flag(CONSUMER_FETCHING)
                records = self.getmany(timeout=1.0)
                batch_started: int | None = None  # when the fetch returned (its first record)
                await self.sleep(0)  # getmany may return at once, in a loop
                if not self.should_stop:
                    async for tp, message in records:
                        if batch_started is None:
                            batch_started = self._seeks
                        self.records_received += 1
                        num_since_yield += 1
                        if num_since_yield > 100:
                            await asyncio.sleep(0)
                            num_since_yield = 0
                        if acks_enabled_for(message.topic):
                            await self._deliver_in_order(tp, message, batch_started)
                        else:
                            await self._deliver_untracked(tp, message)
                    self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)

    async def _deliver_in_order(self, tp: TP, message: Message, batch_started: int) -> None:
        """Deliver ``message`` if it is the partition's next record; agents that keep positions
        (the tracking fan-out, the quota table) rely on seeing each partition in order."""
        generation = self.app.consumer_generation_id
        offset = message.offset
        if message.generation_id != generation:
            GUARD.stale_fetches_skipped += 1
            _log_powers_of_two(GUARD.stale_fetches_skipped, "skipped %d records fetched under "
                               "an older generation (read again by their new owner)")
            return
        if self._seeked_at.get(tp, -1) > batch_started:
            return  # fetched before a seek of its partition: fetched again from there
        expected = self._next_of(tp)
        if expected is None:  # the partition's first record in this generation
            start = self._start_of.get(tp)
            if start is None or start[0] != generation:
                # Before faust's seek to this generation's committed offsets: from an older
                # fetch position, perhaps past the committed offset. Held back; fetched again
                # from the committed offset once it is known (seek_to_committed).
                held = self._held.get(tp)
                if held is None or held[0] != generation or offset < held[1]:
                    self._held[tp] = (generation, offset)
                GUARD.held_before_start += 1
                _log_powers_of_two(GUARD.held_before_start, "held back %d records fetched "
                                   "before their generation's committed offsets were known")
                return
            expected = offset if start[1] is None else start[1]
            self._first_delivered[tp] = expected
        if offset > expected:
            if self._absent(tp, expected, offset):
                expected = offset  # not in the log: counted as processed, delivery goes on
            else:
                # Records between were dropped on the way (faust's pause drops the rest of a
                # fetched batch): read them again first. Nothing after them goes before.
                GUARD.rewinds += 1
                _log_powers_of_two(GUARD.rewinds, "fetched again %d times from a record "
                                   "faust dropped (last: %s:%d from %d)", tp.topic,
                                   tp.partition, expected)
                self._rewind(tp, expected)
                return
        if offset < expected and self._taken(tp, offset):
            GUARD.refetched_skipped += 1
            _log_powers_of_two(GUARD.refetched_skipped, "skipped %d records fetched again "
                               "(processed or in flight already)")
            return
        await self._commit_every_n()
        epoch = self._seeks
        if not await self._delivered_now(message):
            return  # cut short by a suspended flow: the next record triggers a rewind to it
        if self.app.consumer_generation_id == generation and self._seeks == epoch:
            self._next[tp] = (generation, max(offset + 1, expected))
        self._read_offset[tp] = offset  # faust's own view, for its logs

    def _absent(self, tp: TP, expected: int, offset: int) -> bool:
        """True once fetching again from ``expected`` has returned ``offset`` three times in a
        row: those offsets are not in the log (transaction markers, compaction), not dropped.
        They count as processed, so commits pass them (faust's own gap rule)."""
        previous = self._gap_checks.get(tp)
        seen = previous[2] + 1 if previous is not None and previous[:2] == (expected, offset) \
            else 1
        self._gap_checks[tp] = (expected, offset, seen)
        if seen < 3:
            return False
        del self._gap_checks[tp]
        log.warning("%s:%d: offsets %d-%d are not in the log (transaction markers or "
                    "compaction); counted as processed", tp.topic, tp.partition, expected,
                    offset - 1)
        self._acked_index[tp].update(range(expected, offset))
        return True

    def _taken(self, tp: TP, offset: int,
               in_flight: set[tuple[TP, int]] | None = None) -> bool:
        """Processed, or taken by its stream and not acked yet (``in_flight``: a snapshot of
        faust's unacked set, when the caller asks about many offsets).

        A record of a topic two agents read (``sms.sent``) may have been taken by one while
        the other's buffer was emptied: it counts as taken only once processed, so the other
        gets it again (both agents of that topic tolerate a repeat).
        """
        committed = self._committed_offset[tp]
        if (committed is not None and offset < committed) or offset in self._acked_index[tp]:
            return True
        if len(self._channels_of(tp)) > 1:
            return False
        if in_flight is not None:
            return (tp, offset) in in_flight
        return any(m.offset == offset and m.tp == tp for m in tuple(self._unacked_messages))

    async def _deliver_untracked(self, tp: TP, message: Message) -> None:
        """faust's logic, unchanged, for topics without acks (table changelogs)."""
        offset = message.offset
        read_offset = self._read_offset[tp]
        if read_offset is None or offset >= read_offset:
            await self._delivered_now(message)
            self._read_offset[tp] = offset

    async def _delivered_now(self, message: Message) -> bool:
        """Hand the record to the streams; False if a suspended flow cut the delivery short."""
        self._delivering_since = self.loop.time()
        try:
            if self._a_buffer_is_full(message.tp):
                await self._until_room(message.tp)
            if self.app.flow_control.is_active() and not self._a_buffer_is_full(message.tp):
                # Nothing to wait for: faust's handler puts the event in every stream's buffer
                # without blocking. Racing it against the suspended flow (below) costs two
                # tasks per record, about 10% of the worker's CPU (docs/performance.md).
                await self.callback(message)
                return True
            delivery = self.callback(message)
            outcome = await self.wait_first(delivery, self.suspend_flow.wait())
            return delivery in outcome.done
        finally:
            self._delivering_since = None

    async def _until_room(self, tp: TP) -> None:
        """Wait until the buffers of ``tp``'s streams are at most half full, or the flow stops.

        A backlog keeps the buffers full: delivering each record as one slot frees up meant
        racing every record against the suspended flow (two tasks and an ``asyncio.wait``
        each, ~19% of the per-event floor in bench/faust_floor.py). Waiting here for half a
        buffer of room, checked every :data:`ROOM_POLL_S`, lets the next half buffer of records
        take the fast path. A stopped flow ends the wait; the caller's race then cuts the
        delivery short, as before."""
        GUARD.buffer_waits += 1
        channels = self._channels_of(tp)
        while self.app.flow_control.is_active() and not self.suspend_flow.is_set():
            if all(_half_empty(channel.queue) for channel in channels):
                return
            await asyncio.sleep(ROOM_POLL_S)

    def _a_buffer_is_full(self, tp: TP) -> bool:
        """Would delivering to ``tp``'s streams wait for room in a buffer?"""
        return any(channel.queue.full() for channel in self._channels_of(tp))

    def _channels_of(self, tp: TP) -> tuple[Any, ...]:
        """The agents' channels reading ``tp`` (faust's private conductor index)."""
        return tuple(self.app.topics._tp_index.get(tp, ()))  # type: ignore[attr-defined]

    async def _commit_every_n(self) -> None:
        if self._commit_every is not None and self._n_acked >= self._commit_every:
            self._n_acked = 0
            await self.commit()

    # -- the watchdog ------------------------------------------------------------------------

    def stranded(self) -> list[tuple[TP, int, StallReason]]:
        """Partitions to fetch again: ``(tp, committed offset, why)``.

        Called once a round by :func:`watch_for_stranded_records`. A partition qualifies when
        its committed record is neither processed nor in flight (see
        :func:`~pipeline.offset_rules.stall_reason`) for :attr:`STALL_ROUNDS` rounds in a row
        when faust took it off its fetch list, :attr:`IDLE_ROUNDS` otherwise (a slow stream
        buffer is not a lost record).
        """
        if (
            not self.flow_active
            or not self.app.flow_control.is_active()
            or self.app.rebalancing
            or (self._delivering_since is not None
                and self.loop.time() - self._delivering_since > 0.5)
        ):
            # Rebalancing, or the streams are full and the drain waits: records not delivered
            # yet are not stranded. Judge again when it moves.
            self._suspects.clear()
            return []
        in_flight = {(m.tp, m.offset) for m in tuple(self._unacked_messages)}
        acks_enabled_for = self.app.topics.acks_enabled_for
        active = self._get_active_partitions()
        found: list[tuple[TP, int, StallReason]] = []
        suspects: dict[TP, tuple[int, int]] = {}
        for tp in self.assignment():
            if not acks_enabled_for(tp.topic) or tp in self._paused_partitions:
                continue
            committed = self._committed_offset.get(tp)
            if committed is None:
                continue
            why = stall_reason(
                committed=committed, highwater=self.highwater(tp),
                settled=committed in self._acked_index[tp] or (tp, committed) in in_flight,
                next_offset=self._next_of(tp), on_fetch_list=tp in active,
            )
            if why is None:
                continue
            previous = self._suspects.get(tp)
            rounds = previous[1] + 1 if previous is not None and previous[0] == committed else 1
            suspects[tp] = (committed, rounds)
            if rounds >= (self.STALL_ROUNDS if why == "off the fetch list" else self.IDLE_ROUNDS):
                found.append((tp, committed, why))
        self._suspects = suspects
        return found

    async def reread(self, tp: TP, offset: int, why: StallReason) -> None:
        """Fetch ``tp`` again from ``offset`` (back on the fetch list, and seek)."""
        self._suspects.pop(tp, None)
        self._reactivate(tp)
        GUARD.rewinds += 1
        log.warning("%s:%d: record %d is not being processed (%s): fetching the partition "
                    "again from it", tp.topic, tp.partition, offset, why)
        self._rewind(tp, offset)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _seek_quietly(thread: Any, tp: TP, offset: int) -> None:
    """``thread.seek``; a partition revoked before a scheduled seek ran needs none (its next
    owner starts from the committed offset)."""
    try:
        thread.seek(tp, offset)
    except IllegalStateError:
        log.info("%s:%d: no longer assigned; seek to %d not needed", tp.topic, tp.partition,
                 offset)


class GuardedTransport(faust_aiokafka.Transport):
    """The aiokafka transport, creating :class:`GuardedConsumer` consumers."""

    Consumer = GuardedConsumer


def install(app: faust.App) -> None:
    """Give ``app`` the guarded consumer. Call before anything creates the app's consumer."""
    if getattr(app, "_consumer", None) is not None:
        raise RuntimeError("install the guarded consumer before the app's consumer exists")
    app.transport = GuardedTransport(app.conf.broker_consumer, app)
    flow_control = app.flow_control
    clear = flow_control.clear

    def clear_and_tell() -> None:
        clear()
        consumer = getattr(app, "_consumer", None)
        if isinstance(consumer, GuardedConsumer):
            consumer.buffers_cleared()

    flow_control.clear = clear_and_tell  # type: ignore[method-assign]


async def watch_for_stranded_records(app: faust.App, every_s: float = 1.0) -> None:
    """Read a partition again from its committed offset when faust dropped that record.

    faust drops fetched records on several paths we do not own (a paused partition loses the
    rest of its fetched batch; resuming the flow empties the streams' buffers); a dropped
    record is never committed (the guards above), but nothing would read it again until the
    next rebalance. This finds them within a few rounds and seeks back.
    """
    while True:
        await asyncio.sleep(every_s)
        consumer = getattr(app, "_consumer", None)
        if not isinstance(consumer, GuardedConsumer):
            continue
        for tp, offset, why in consumer.stranded():
            await consumer.reread(tp, offset, why)
