"""A *scheduled stage* for faust: hold records in a :class:`Scheduler` without blocking the stream.

The pure scheduler (:mod:`smsflow.domain.limits.scheduler`) decides *when* each item may go; this
module adapts it to a faust agent. The throttle uses it with lanes per route, the router with
lanes per tenant (tenant limits): only the ``configure`` callback differs (``lane_by`` in the
scheduler config picks the lane key from the item).

How an agent uses it::

    stage = ScheduledStage(app, name="throttle", source_topic=..., emit=..., configure=...,
                           version=lambda: config_watcher.snapshot.version)

    @app.agent(source)
    async def agent(stream):
        async for event in stream.noack().events():
            ticket = stage.track(event)              # every event, in consumption order
            ...decode; on a bad record: send the rejection, then stage.finish(ticket)
            rejected = stage.offer(ticket, payload, message_id=..., tenant_id=..., ...)
            ...on Rejected (quota): send the rejection, then stage.finish(ticket)
            ...else: await stage.pass_on_released()  # what may go now, from this task

    @app.task
    async def timer():
        await stage.run()                            # polls, emits released items, acks

Theory of operation
-------------------
**No head-of-line blocking.** ``offer`` never waits: the item goes into the scheduler's lane and
the stream moves on to the next record. Right after the offer the agent passes on what the
scheduler releases now (:meth:`ScheduledStage.pass_on_released`: usually the item itself, handed
to ``emit``, for the throttle a send to ``sms.throttled``); a timer task
(:meth:`ScheduledStage.run`) polls at ``next_wake_at`` for what had to wait. A lane that is over
its limit sleeps; the others are served.

**Commit safety: acks strictly in offset order.** A record may be committed only once it has been
passed on. faust commits the acked offsets, but its "contiguous prefix" computation is not safe
for out-of-order acks: faust-streaming 0.15.3 ``Consumer._new_offset`` skips a gap of exactly one
record (committed 10, offset 10 held, 11 acked -> commits 12) and does no gap check at all before
the first commit after an assignment (offset 0 held, 1-3 acked -> commits 4). Acking a fast
route's records while a slow route's older record still waits would therefore lose the waiting
record on a crash. So the stage keeps a *ledger* per partition (tickets in consumption order) and
acks only its done prefix: a ticket is done when ``emit``'s future has completed, i.e. Kafka
acknowledged the record sent on (``acks=-1`` on the app's producer), or when the agent called
:meth:`~ScheduledStage.finish` after handling the record itself (faust flushes the producer before
every commit, so a rejection sent just before ``finish`` is stored before its source is
committed). faust also acks records by itself (those its stream skips, e.g. records fetched
under a previous consumer generation after a rebalance, which it then commits during the
rebalance), so the stage also clamps what faust computes to commit for its topic
(:meth:`ScheduledStage.cap_commit`, applied by the guarded consumer) to
:meth:`ScheduledStage.safe_offset`: the oldest record it still
holds, or one past the last record it acked. The committed offset of a partition is thus at most
the oldest record still waiting; a crash re-reads everything from there (waiting items are never
lost; records passed on after the oldest waiting one are sent again: at-least-once).

**Revocation and shutdown.** Before faust hands partitions over (or stops), it waits until every
event it delivered is acked (``stream_wait_empty``); items waiting for a slow route would hold
that wait for as long as they wait. faust clears every flow-controlled buffer first
(``app.flow_control.clear()`` after ``flow_control.suspend()``), and the stage registers itself
there (:func:`~pipeline.faust_patches.stream_hooks.on_buffers_cleared`): on that call it
*abandons* the records still waiting (and any record behind them in its partition): their
items leave the scheduler (:meth:`Scheduler.revoke`), the messages are marked
so faust stops waiting for them, and they are **not** acked, so they stay uncommitted and the
partition's next owner (maybe this worker again) reads them again. Records already being sent at
the front of a ledger are kept and acked when their send completes. faust's rebalance protocol
here is eager (all partitions are revoked at every rebalance), so this drops everything held.
``app.on_partitions_revoked``/``assigned`` keep the owned-partition set, which sets the global
share (``configure(owned, total)``).

**Bounded memory.** A held record costs a ticket, the faust event (its bytes) and the decoded
payload: about 4 KB for a waiting ``RoutedMessage``, about 1 KB for one already passed on that
waits behind an older record of its partition for its ack. When the stage tracks
``high_water`` records or more, it pauses the partitions holding more than their fair share of
``low_water`` (partitions that flow freely hold only their in-flight records and keep flowing),
and resumes them at ``low_water``. A paused partition delays every route on it: the memory cap is
the one place where one route's backlog can slow another, so ``high_water`` should stay well
above a normal burst.

**Live configuration.** ``version()`` is checked on every offer and at every timer tick (at most
``max_sleep_s`` apart); a new version, or a new partition assignment, calls ``configure(owned,
total)`` and :meth:`Scheduler.reconfigure` (queues, tokens and AIMD state are kept).

**Metrics.** Plain counters, logged at info every ``metrics_interval_s`` (when something moved):
per limiter allowed, waiting, rejected, blocked and current rate (adaptive for routes), and the
stage's tracked, queued, in-flight, abandoned, clamped-commit and paused counts.
:meth:`ScheduledStage.stats` returns them as data. A clamped commit is also logged as a warning.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any, Generic, TypeVar, cast

import faust
from faust.types import TP

from pipeline.faust_patches.commit_hooks import add_commit_cap
from pipeline.faust_patches.stream_hooks import (
    BufferClearHook,
    on_buffers_cleared,
    release_unacked,
)
from smsflow.config.models import Tier
from smsflow.domain.limits import (
    Item,
    Rejected,
    Released,
    Scheduler,
    SchedulerConfig,
    SchedulerMetrics,
    SubmitSample,
)

__all__ = ["Emit", "ScheduledStage", "StageStats", "Ticket"]

log = logging.getLogger(__name__)

P = TypeVar("P")

#: ``emit(payload, released)`` sends the released item on and returns the send's future, which
#: completes when Kafka acknowledged the record (faust's ``await topic.send(...)``).
Emit = Callable[[P, Released], Awaitable["asyncio.Future[Any]"]]

# Ticket states.
_QUEUED = 0  # tracked, offered (or about to be): waiting in the scheduler
_SENDING = 1  # released, emit's future pending
_DONE = 2  # passed on (or handled by the agent): ack when it reaches the ledger's front
_ABANDONED = 3  # dropped at revocation/shutdown: never acked, re-read by the next owner


class Ticket:
    """One consumed record on its way through the stage."""

    __slots__ = ("event", "ledger", "offset", "partition", "payload", "state")

    def __init__(self, event: faust.EventT[Any], ledger: _Ledger, partition: int,
                 offset: int) -> None:
        self.event: faust.EventT[Any] | None = event
        self.ledger = ledger
        self.partition = partition
        self.offset = offset
        self.payload: Any = None
        self.state = _QUEUED

    @property
    def abandoned(self) -> bool:
        return self.state == _ABANDONED


class _Ledger:
    """A partition's tickets in consumption order; only its done prefix is acked."""

    __slots__ = ("queued", "tickets")

    def __init__(self) -> None:
        self.tickets: deque[Ticket] = deque()
        self.queued = 0  # tickets in state _QUEUED that are in the scheduler


@dataclass(frozen=True, slots=True)
class StageStats:
    tracked: int  # consumed records not yet acked (ledgers)
    queued: int  # waiting in the scheduler
    in_flight: int  # released, send not yet acknowledged
    acked: int
    released: int
    abandoned: int
    diverted: int  # held items sent elsewhere (Economy parked on sms.deferred)
    commits_clamped: int
    paused_partitions: tuple[int, ...]
    owned_partitions: tuple[int, ...]
    config_version: int
    scheduler: SchedulerMetrics


_INFINITY = float("inf")


class _Alarm:
    """A cheap wake-up for the timer task: ``set()`` from anywhere, ``wait(timeout)`` once."""

    __slots__ = ("_future", "_set")

    def __init__(self) -> None:
        self._future: asyncio.Future[None] | None = None
        self._set = False

    def set(self) -> None:
        if self._set:
            return
        self._set = True
        future = self._future
        if future is not None and not future.done():
            future.set_result(None)

    async def wait(self, timeout: float) -> None:
        if self._set:
            self._set = False
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._future = future
        handle = loop.call_later(max(0.0, timeout), _resolve, future)
        try:
            await future
        finally:
            handle.cancel()
            self._future = None
            self._set = False


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class ScheduledStage(Generic[P]):
    """See the module docstring.

    ``configure(owned, total)`` builds the scheduler config from the current configuration
    snapshot for ``owned`` of ``total`` source partitions; ``version()`` is that snapshot's
    version. ``total_partitions`` is used when the broker metadata does not say.
    """

    def __init__(
        self,
        app: faust.App,
        *,
        name: str,
        source_topic: str,
        emit: Emit[P],
        configure: Callable[[int, int], SchedulerConfig],
        divert: Emit[P] | None = None,
        version: Callable[[], int],
        total_partitions: int = 1,
        high_water: int = 20_000,
        low_water: int | None = None,
        metrics_interval_s: float = 10.0,
        max_sleep_s: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if high_water < 1:
            raise ValueError("high_water must be >= 1")
        low = int(high_water * 0.8) if low_water is None else low_water
        if not 0 <= low < high_water:
            raise ValueError("need 0 <= low_water < high_water")
        self._app = app
        self.name = name
        self.source_topic = source_topic
        self._emit = emit
        # Where items the scheduler holds for hours go instead (Economy after its off-peak
        # window closed): the throttle parks them on sms.deferred. None: they wait here.
        self._divert = divert
        self._diverted = 0
        self._configure = configure
        self._version = version
        self._default_total = max(1, total_partitions)
        self.high_water = high_water
        self.low_water = low
        self._metrics_interval_s = metrics_interval_s
        self._max_sleep_s = max_sleep_s
        self._clock = clock
        now = clock()
        self._config_version: int = version()
        self._assigned: set[int] = set()
        self._total = self._default_total
        self._scheduler = Scheduler(configure(0, self._total), now)
        self._ledgers: dict[int, _Ledger] = {}
        self._waiting: dict[tuple[int, int], Ticket] = {}  # (partition, offset) → queued ticket
        self._tracked = 0
        self._in_flight = 0
        self._acked = 0
        self._released = 0
        self._abandoned = 0
        self._paused: set[int] = set()
        self._acked_through: dict[int, int] = {}  # partition → one past the last record acked
        self._clamped = 0  # commits faust wanted beyond safe_offset
        self._failure: BaseException | None = None
        self._last_logged: tuple[int, int, int, int, set[int]] | None = None
        self._alarm = _Alarm()
        #: When the timer task wakes up next (by the stage's clock); inf while it is not waiting
        #: (so anything left queued wakes it). :meth:`pass_on_released` wakes it only when the
        #: next release is due sooner.
        self._timer_due = _INFINITY
        #: Held while a task passes released items on (they go in order, one task at a time).
        self._release_lock = asyncio.Lock()
        self._hook: BufferClearHook | None = None
        # mode types the handler with a mypy_extensions NamedArg that bound methods never match.
        app.on_partitions_revoked.connect(cast(Any, self._on_revoked))
        app.on_partitions_assigned.connect(cast(Any, self._on_assigned))

    # ------------------------------------------------------------------ the agent's side

    def _attach(self) -> None:
        if self._hook is None:
            # Not in __init__: app.flow_control binds the event loop when first used.
            self._hook = on_buffers_cleared(self._app, self._on_flow_cleared)
            add_commit_cap(self._app, self.source_topic, self.cap_commit)

    def cap_commit(self, tp: TP, offset: int | None) -> int | None:
        """Never let faust commit the source topic past what this stage has passed on.

        faust computes the offset to commit from the offsets acked so far
        (``Consumer._new_offset``). Besides the stage's own in-order acks, faust acks by itself
        every record its stream skips, notably records fetched under a previous consumer
        generation after a rebalance; and right after an assignment it commits the first run of
        acked offsets with no check that it starts at the committed offset. Together these
        committed offsets past records that were still waiting in the scheduler (seen in a
        SIGKILL drill on the real broker: 17 records lost). So the stage clamps faust's answer
        for its topic to :meth:`safe_offset`: the oldest record it still holds, or one past the
        last record it acked; nothing before it has acked anything in this assignment: no
        commit. Offsets faust drops from its bookkeeping this way are simply re-read by the next
        owner (at-least-once). Registered for the source topic only (the guarded consumer
        applies it, :mod:`pipeline.faust_patches.commit_hooks`); stages on different topics
        do not meet.
        """
        if offset is None or tp.topic != self.source_topic:
            return offset
        safe = self.safe_offset(tp.partition)
        if safe is None or safe < offset:
            # Never in steady state (the stage acks in order); after a rebalance or a
            # skipped record, faust would commit records that still wait.
            self._clamped += 1
            log.warning(
                "%s: faust would commit %s:%d at %d; held at %s (%s)", self.name, tp.topic,
                tp.partition, offset, safe,
                "nothing passed on yet in this assignment" if safe is None
                else "a record there still waits",
            )
            return safe
        return offset

    def safe_offset(self, partition: int) -> int | None:
        """The highest offset of ``partition`` that may be committed now (None: none)."""
        ledger = self._ledgers.get(partition)
        if ledger is not None and ledger.tickets:
            return ledger.tickets[0].offset
        return self._acked_through.get(partition)

    def track(self, event: faust.EventT[Any]) -> Ticket:
        """Register a consumed event, in consumption order. Every event must be tracked."""
        if self._hook is None:
            self._attach()
        message = event.message
        partition = message.partition
        ledger = self._ledgers.get(partition)
        if ledger is None:
            ledger = self._ledgers[partition] = _Ledger()
        ticket = Ticket(event, ledger, partition, message.offset)
        ledger.tickets.append(ticket)
        self._tracked += 1
        return ticket

    def offer(
        self,
        ticket: Ticket,
        payload: P,
        *,
        message_id: str,
        tenant_id: str,
        tier: Tier,
        route_id: str,
        destination: str,
        parts: int,
    ) -> Rejected | None:
        """Queue the ticket's item; ``Rejected`` (quota): the caller rejects, then ``finish``.
        Then the agent awaits :meth:`pass_on_released`, which passes on what may go now."""
        if ticket.state != _QUEUED:
            return None  # abandoned while the agent was decoding it: the next owner re-reads it
        now = self._clock()
        if self._version() != self._config_version:
            self._reconfigure(now)
        item = Item(message_id, tenant_id, tier, route_id, destination, parts, now,
                    ticket.partition, ticket.offset)
        rejected = self._scheduler.offer(item, now)
        if rejected is not None:
            return rejected
        ticket.payload = payload
        self._waiting[(ticket.partition, ticket.offset)] = ticket
        ticket.ledger.queued += 1
        # No timer wake-up here: the agent calls pass_on_released() next.
        if self._tracked >= self.high_water:
            self._check_pressure()
        return None

    def finish(self, ticket: Ticket) -> None:
        """The agent handled the record itself (e.g. rejected it): ack it in order."""
        if ticket.state == _ABANDONED:
            return
        ticket.state = _DONE
        self._ack_prefix(ticket.ledger)

    def observe(self, lane: str, sample: SubmitSample) -> float | None:
        """Feed a submit outcome to the lane's AIMD; None if this stage has no such lane."""
        state = self._scheduler.adaptive_state(lane)
        if state is None:
            return None
        rate = self._scheduler.observe(lane, sample, self._clock())
        if rate != state.rate:
            self._alarm.set()  # the lane's next release time moved
        return rate

    def has_lane(self, lane: str) -> bool:
        return self._scheduler.adaptive_state(lane) is not None

    # ------------------------------------------------------------------ the timer task

    async def run(self) -> None:
        """Poll, emit what is released, keep memory bounded, log metrics. Runs forever."""
        self._attach()
        next_metrics = self._clock() + self._metrics_interval_s
        while True:
            if self._failure is not None:
                raise self._failure
            wake_at = await self.release_due()
            now = self._clock()
            if now >= next_metrics:
                self._log_metrics(now)
                next_metrics = now + self._metrics_interval_s
            timeout = self._max_sleep_s
            if wake_at is not None:
                timeout = min(timeout, wake_at - now)
            if timeout > 0:
                self._timer_due = now + timeout
                await self._alarm.wait(timeout)
                self._timer_due = _INFINITY
            else:
                await asyncio.sleep(0)  # let the stream and the send callbacks run

    async def pass_on_released(self) -> None:
        """Right after an offer, from the agent's own task: pass on what the limits let go now
        (usually the item just offered), and wake the timer task only if what stays queued is
        due before the timer planned to look. Waking the timer per record instead cost a
        future, a timer handle and a task switch per record in each of the routing worker's two
        stages (docs/performance.md#releasing-from-the-stream)."""
        if self._release_lock.locked():
            # The timer task is passing items on (e.g. waiting on librdkafka's full queue): the
            # alarm makes it poll again right after, and it takes this item in order.
            self._alarm.set()
            return
        wake_at = await self.release_due()
        if wake_at is not None and wake_at < self._timer_due:
            self._alarm.set()

    async def release_due(self) -> float | None:
        """One timer tick: apply a new config, emit what is due, check memory; next wake-up."""
        async with self._release_lock:  # after another task's items, in order
            return await self._release_due()

    async def _release_due(self) -> float | None:
        now = self._clock()
        if self._version() != self._config_version:
            self._reconfigure(now)
        released, wake_at = self._scheduler.poll(now)
        for item in released:
            await self._pass_on(item, self._emit)
        if self._divert is not None:
            for held in self._scheduler.withdraw_held(now):
                self._diverted += 1
                await self._pass_on(Released(held, now), self._divert)
        if self._paused or self._tracked >= self.high_water:
            self._check_pressure()
        return wake_at

    async def _pass_on(self, released: Released, send: Emit[P]) -> None:
        """Send a queued ticket's payload on; it is acked in order once the send is stored."""
        item = released.item
        ticket = self._waiting.pop((item.partition, item.offset), None)
        if ticket is None or ticket.state != _QUEUED:
            return  # abandoned meanwhile (revocation): the next owner sends it
        ticket.ledger.queued -= 1
        ticket.state = _SENDING
        payload, ticket.payload = ticket.payload, None
        self._in_flight += 1
        self._released += 1
        future = await send(payload, released)
        future.add_done_callback(partial(self._on_sent, ticket))

    def _on_sent(self, ticket: Ticket, future: asyncio.Future[Any]) -> None:
        self._in_flight -= 1
        if future.cancelled() or future.exception() is not None:
            error = future.exception() if not future.cancelled() else None
            self._failure = error or RuntimeError(f"{self.name}: send cancelled")
            self._alarm.set()  # run() raises it: the worker stops, the record stays uncommitted
            return
        if ticket.state != _SENDING:
            return  # abandoned behind an older waiting record: its next owner re-sends it
        ticket.state = _DONE
        self._ack_prefix(ticket.ledger)

    def _ack_prefix(self, ledger: _Ledger) -> None:
        tickets = ledger.tickets
        while tickets and tickets[0].state == _DONE:
            ticket = tickets.popleft()
            event, ticket.event = ticket.event, None
            if event is not None:
                event.ack()
            self._acked_through[ticket.partition] = ticket.offset + 1
            self._tracked -= 1
            self._acked += 1

    # ------------------------------------------------------------------ configuration

    def _reconfigure(self, now: float) -> None:
        self._config_version = self._version()
        owned = len(self._assigned)
        self._scheduler.reconfigure(self._configure(owned, self._total), now)
        self._alarm.set()

    def _total_partitions(self) -> int:
        try:
            known = self._app.consumer.topic_partitions(self.source_topic)
        except Exception:  # consumer not started, or metadata not loaded: keep the default
            known = None
        return known if known else self._default_total

    def _on_assigned(self, _sender: Any, *args: Any, **_: Any) -> None:
        assigned: set[TP] = args[0]
        self._assigned = {tp.partition for tp in assigned if tp.topic == self.source_topic}
        # Acks of the previous assignment say nothing about what this one has passed on (the
        # partition may have been someone else's meanwhile).
        self._acked_through.clear()
        self._total = max(self._total_partitions(), max(self._assigned, default=-1) + 1)
        self._reconfigure(self._clock())
        log.info("%s: owns partitions %s of %d of %s", self.name, sorted(self._assigned),
                 self._total, self.source_topic)

    def _on_revoked(self, _sender: Any, *args: Any, **_: Any) -> None:
        revoked: set[TP] = args[0]
        partitions = {tp.partition for tp in revoked if tp.topic == self.source_topic}
        self._assigned -= partitions
        self._abandon(partitions)  # normally done already by the flow-control hook

    def _on_flow_cleared(self) -> None:
        # faust also clears the buffers when flow resumes; only a suspended flow is a
        # revocation or a shutdown (flow_control.suspend() comes first in both).
        if self._app.flow_control.is_active():
            return
        self._abandon(None)

    def _abandon(self, partitions: Iterable[int] | None) -> None:
        """Drop what waits in ``partitions`` (None: all): not acked, so re-read by the next owner.

        The front of each ledger that is already being sent (or done) is kept and acked as its
        sends complete; from the first waiting record on, everything is abandoned.
        """
        chosen = (
            set(self._ledgers) | set(self._acked_through) if partitions is None
            else set(partitions)
        )
        dropped: set[int] = set()
        for partition in chosen:
            # _acked_through stays: faust commits the revoked partitions right after this
            # (waiting for acks), and everything below it is passed on. Abandoned records are
            # never acked, so it cannot pass them. A new assignment starts afresh instead.
            ledger = self._ledgers.get(partition)
            if ledger is None:
                continue
            kept: deque[Ticket] = deque()
            cut = False
            for ticket in ledger.tickets:
                if not cut and ticket.state in (_SENDING, _DONE):
                    kept.append(ticket)
                    continue
                cut = True
                if ticket.state == _QUEUED:
                    self._waiting.pop((partition, ticket.offset), None)
                    dropped.add(partition)
                ticket.state = _ABANDONED
                event, ticket.event, ticket.payload = ticket.event, None, None
                if event is not None:
                    # Not acked (so never committed), but faust must stop waiting for it.
                    release_unacked(self._app, event)
                self._tracked -= 1
                self._abandoned += 1
            ledger.tickets = kept
            ledger.queued = 0
            if not kept:
                del self._ledgers[partition]
        if dropped:
            self._scheduler.revoke(dropped, self._clock())
        if partitions is None:
            self._paused.clear()  # faust paused and will resume everything itself
        else:
            self._paused -= chosen
        if dropped:
            log.info("%s: dropped the waiting records of partitions %s (re-read by their next "
                     "owner)", self.name, sorted(dropped))

    # ------------------------------------------------------------------ memory

    def _check_pressure(self) -> None:
        consumer = self._app.consumer
        if self._tracked >= self.high_water:
            fair = self.low_water / max(1, len(self._assigned) or len(self._ledgers))
            hot = {
                partition
                for partition, ledger in self._ledgers.items()
                if partition not in self._paused and len(ledger.tickets) > fair
                and (not self._assigned or partition in self._assigned)
            }
            if hot:
                consumer.pause_partitions({TP(self.source_topic, p) for p in hot})
                self._paused |= hot
                log.info("%s: %d records held (high water %d): paused partitions %s",
                         self.name, self._tracked, self.high_water, sorted(hot))
        elif self._paused and self._tracked <= self.low_water:
            resume = {p for p in self._paused if not self._assigned or p in self._assigned}
            consumer.resume_partitions({TP(self.source_topic, p) for p in resume})
            log.info("%s: %d records held (low water %d): resumed partitions %s",
                     self.name, self._tracked, self.low_water, sorted(resume))
            self._paused.clear()

    # ------------------------------------------------------------------ metrics

    def stats(self) -> StageStats:
        return StageStats(
            tracked=self._tracked,
            queued=len(self._waiting),
            in_flight=self._in_flight,
            acked=self._acked,
            released=self._released,
            abandoned=self._abandoned,
            diverted=self._diverted,
            commits_clamped=self._clamped,
            paused_partitions=tuple(sorted(self._paused)),
            owned_partitions=tuple(sorted(self._assigned)),
            config_version=self._config_version,
            scheduler=self._scheduler.metrics(self._clock()),
        )

    def _log_metrics(self, now: float) -> None:
        if not log.isEnabledFor(logging.INFO):
            return
        activity = (self._tracked, self._acked, self._released, self._abandoned, self._paused)
        if activity == self._last_logged:
            return  # nothing moved since the last report
        self._last_logged = (self._tracked, self._acked, self._released, self._abandoned,
                             set(self._paused))
        stats = self.stats()
        metrics = stats.scheduler
        log.info(
            "%s: tracked=%d queued=%d in_flight=%d acked=%d released=%d abandoned=%d "
            "commits_clamped=%d paused=%s oldest_wait_s=%.1f max_wait_s=%.1f",
            self.name, stats.tracked, stats.queued, stats.in_flight, stats.acked,
            stats.released, stats.abandoned, stats.commits_clamped, list(stats.paused_partitions),
            metrics.oldest_wait_s, metrics.released_wait_max_s,
        )
        for limiter in metrics.limiters.values():
            rate = "unlimited" if limiter.rate_pps is None else f"{limiter.rate_pps:.1f}"
            log.info(
                "%s: %s allowed=%d/%dparts waiting=%d/%dparts rejected=%d blocked=%d rate=%s",
                self.name, limiter.name, limiter.allowed_messages, limiter.allowed_parts,
                limiter.waiting_messages, limiter.waiting_parts, limiter.rejected_messages,
                limiter.blocked, rate,
            )
