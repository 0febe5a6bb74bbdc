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

* **Runs, not a read offset.** The drain remembers the run of offsets it delivered per
  partition in the current generation, and the highest. A record fetched under an older
  generation is skipped (its new owner reads it); one fetched again after a seek is skipped
  only if it is processed or in flight (never merely because an offset says "read").
* **Commits** (:func:`~pipeline.offset_rules.committable_end`): only the run of processed
  records that starts at the committed offset, capped at the oldest record in flight; acks of
  records skipped across a rebalance are refused (not committable, read again by the owner).
* **Watchdog** (:func:`watch_for_stranded_records`): a partition whose committed record is
  neither processed, in flight nor queued, while later records were delivered or the partition
  is off the fetch list, is put back on the list and read again from that record.

At-least-once stays the contract: a record may be processed twice around a rebalance (as
after any crash), never skipped. Stages that hold records longer (the throttle's
:class:`~pipeline.scheduling.ScheduledStage`) add their own cap by wrapping the instance's
``_new_offset``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

import faust
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, Message
from mode import Service
from mode.utils.futures import notify

from pipeline.offset_rules import StallReason, committable_end, oldest_in_flight, stall_reason

log = logging.getLogger(__name__)

__all__ = ["GUARD", "CommitGuard", "GuardedConsumer", "GuardedTransport", "install"]


@dataclass
class CommitGuard:
    """Counters of what the guards changed (logged, exported as metrics, read by tests)."""

    stale_acks_refused: int = 0
    commits_capped: int = 0
    refetched_skipped: int = 0
    stale_fetches_skipped: int = 0
    head_gaps_held: int = 0
    rewinds: int = 0


GUARD = CommitGuard()


def _log_powers_of_two(count: int, message: str, *args: object) -> None:
    """Log the 1st, 2nd, 4th, 8th… occurrence: visible in logs without flooding them."""
    if count & (count - 1) == 0:
        log.info(message, count, *args)


@dataclass
class _Delivered:
    """A contiguous run of offsets the drain handed to the streams, in one generation/epoch."""

    generation: int
    epoch: int
    low: int
    high: int


class GuardedConsumer(faust_aiokafka.Consumer):
    """faust's aiokafka consumer with the drain and commit paths above corrected."""

    #: A partition whose committed record is neither processed, in flight nor queued for this
    #: many watchdog rounds in a row is read again from its committed offset.
    STALL_ROUNDS = 3
    #: ... or nothing arrived for it at all for this many rounds.
    IDLE_ROUNDS = 30

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._seeks = 0  # every seek and buffer clear counts; epochs compare against it
        self._seeked_at: dict[TP, int] = {}  # TP -> self._seeks right after its last seek
        self._runs: dict[TP, _Delivered] = {}  # the run that ends with the newest delivery
        self._highest: dict[TP, tuple[int, int]] = {}  # TP -> (generation, highest delivered)
        self._in_flight_snapshot: tuple[int, set[tuple[TP, int]]] = (-1, set())
        self._suspects: dict[TP, tuple[int, int]] = {}  # TP -> (committed offset, rounds)
        self._delivering_since: float | None = None

    # -- acks and commits --------------------------------------------------------------------

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
            self._cut_run(message.tp, message.offset)
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
            return super()._new_offset(tp)
        processed = self._acked_index[tp]
        committed = self._committed_offset[tp]
        if processed and committed is not None and min(processed) < committed:
            processed.difference_update([o for o in processed if o < committed])
            self._acked[tp] = [o for o in self._acked[tp] if o >= committed]
        end = committable_end(processed, committed)
        if end is None and processed:
            GUARD.head_gaps_held += 1  # normal while that record is in flight
        return end

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

    # -- seeks and cleared buffers end a run -------------------------------------------------

    async def seek(self, partition: TP, offset: int) -> None:
        await super().seek(partition, offset)
        self._seeks += 1
        self._seeked_at[partition] = self._seeks

    async def perform_seek(self) -> None:
        await super().perform_seek()
        self.buffers_cleared()  # every partition is read again from its committed offset

    def buffers_cleared(self) -> None:
        """The streams' buffers were emptied (flow resumed, or a revocation): runs end.

        A partition whose stream buffer was full had been taken off the fetch list
        (``on_buffer_full``); only the buffer draining below its mark puts it back, and an
        emptied buffer never drains: faust would not fetch that partition again until the next
        rebalance (the throttle's stream "stalled after a restart"). Put them back now.
        """
        self._seeks += 1
        self._runs.clear()
        for tp in tuple(self._buffered_partitions):
            self._reactivate(tp)

    def _reactivate(self, tp: TP) -> bool:
        """Put ``tp`` back on the fetch list unless it is paused or not ours; True if it was off."""
        active = self._get_active_partitions()
        self._buffered_partitions.discard(tp)
        if tp in active or tp in self._paused_partitions or tp not in self.assignment():
            return False
        active.add(tp)
        return True

    def _cut_run(self, tp: TP, offset: int) -> None:
        """A delivered record was not processed: the run ends just before it."""
        run = self._runs.get(tp)
        if run is not None and run.low <= offset <= run.high:
            if offset == run.low:
                del self._runs[tp]
            else:
                run.high = offset - 1

    # -- the drain loop ----------------------------------------------------------------------

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover (faust's loop)
        """faust's loop from fetched records to the streams, with runs instead of a read offset."""
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
                        num_since_yield += 1
                        if num_since_yield > 100:
                            await asyncio.sleep(0)
                            num_since_yield = 0
                        if acks_enabled_for(message.topic):
                            await self._deliver_tracked(tp, message, batch_started)
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

    async def _deliver_tracked(self, tp: TP, message: Message, batch_started: int) -> None:
        generation = self.app.consumer_generation_id
        offset = message.offset
        if message.generation_id != generation:
            GUARD.stale_fetches_skipped += 1
            _log_powers_of_two(GUARD.stale_fetches_skipped, "skipped %d records fetched under "
                               "an older generation (read again by their new owner)")
            return
        if self._seeked_at.get(tp, -1) > batch_started:
            return  # fetched before a seek of its partition: fetched again from there
        highest = self._highest.get(tp)
        if highest is not None and highest[0] == generation and offset <= highest[1]:
            if self._processed_or_in_flight(tp, offset):
                GUARD.refetched_skipped += 1
                _log_powers_of_two(GUARD.refetched_skipped, "skipped %d records fetched again "
                                   "(processed or in flight already)")
                return
        await self._commit_every_n()
        epoch = self._seeks
        if not await self._delivered_now(message):
            return
        if self.app.consumer_generation_id != generation or self._seeks != epoch:
            return  # the run it would extend ended meanwhile: the watchdog judges it
        run = self._runs.get(tp)
        if run is not None and run.generation == generation and run.epoch == epoch \
                and offset == run.high + 1:
            run.high = offset
        else:
            self._runs[tp] = _Delivered(generation, epoch, offset, offset)
        if highest is None or highest[0] != generation or offset > highest[1]:
            self._highest[tp] = (generation, offset)
        self._read_offset[tp] = offset  # faust's own view, for its logs

    def _processed_or_in_flight(self, tp: TP, offset: int) -> bool:
        committed = self._committed_offset[tp]
        if (committed is not None and offset < committed) or offset in self._acked_index[tp]:
            return True
        taken_at, in_flight = self._in_flight_snapshot
        if taken_at != self._seeks:
            in_flight = {(m.tp, m.offset) for m in tuple(self._unacked_messages)}
            self._in_flight_snapshot = (self._seeks, in_flight)
        return (tp, offset) in in_flight

    async def _deliver_untracked(self, tp: TP, message: Message) -> None:
        """faust's logic, unchanged, for topics without acks (table changelogs)."""
        offset = message.offset
        read_offset = self._read_offset[tp]
        if read_offset is None or offset >= read_offset:
            await self._delivered_now(message)
            self._read_offset[tp] = offset

    async def _delivered_now(self, message: Message) -> bool:
        """Hand the record to the streams; False if a suspended flow cut the delivery short."""
        delivery = self.callback(message)
        self._delivering_since = self.loop.time()
        try:
            outcome = await self.wait_first(delivery, self.suspend_flow.wait())
        finally:
            self._delivering_since = None
        return delivery in outcome.done

    async def _commit_every_n(self) -> None:
        if self._commit_every is not None and self._n_acked >= self._commit_every:
            self._n_acked = 0
            await self.commit()

    # -- the watchdog ------------------------------------------------------------------------

    def stranded(self) -> list[tuple[TP, int, StallReason]]:
        """Partitions to fetch again: ``(tp, committed offset, why)``.

        Called once a round by :func:`watch_for_stranded_records`. A partition qualifies when
        its committed record is neither processed, in flight nor queued, and either later
        records were delivered (a hole: faust dropped it) or faust took the partition off its
        fetch list, for :attr:`STALL_ROUNDS` rounds in a row; or when nothing at all arrived
        for :attr:`IDLE_ROUNDS` rounds although the log has records past it.
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
        generation = self.app.consumer_generation_id
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
            run = self._runs.get(tp)
            settled = (
                committed in self._acked_index[tp]
                or (tp, committed) in in_flight
                or (run is not None and run.generation == generation
                    and run.low <= committed <= run.high)  # queued in a stream's buffer
            )
            highest = self._highest.get(tp)
            why = stall_reason(
                committed=committed, highwater=self.highwater(tp), settled=settled,
                highest_delivered=highest[1] if highest and highest[0] == generation else None,
                on_fetch_list=tp in active,
            )
            if why is None:
                continue
            previous = self._suspects.get(tp)
            rounds = previous[1] + 1 if previous is not None and previous[0] == committed else 1
            suspects[tp] = (committed, rounds)
            if rounds >= (self.IDLE_ROUNDS if why == "idle" else self.STALL_ROUNDS):
                found.append((tp, committed, why))
        self._suspects = suspects
        return found

    async def reread(self, tp: TP, offset: int, why: StallReason) -> None:
        """Fetch ``tp`` again from ``offset`` (back on the fetch list, and seek)."""
        self._suspects.pop(tp, None)
        self._reactivate(tp)
        GUARD.rewinds += 1
        log.warning("%s:%d: record %d is neither processed nor in flight nor queued (%s): "
                    "fetching the partition again from it", tp.topic, tp.partition, offset, why)
        await self.seek(tp, offset)


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
