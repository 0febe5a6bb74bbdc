"""A non-blocking multi-level rate-limit scheduler for one throttle (or router) instance.

Theory of operation
-------------------
The agent :meth:`~Scheduler.offer` s every record it consumes and calls :meth:`~Scheduler.poll`
(after offers, and from a timer at ``next_wake_at``); ``poll(now)`` returns every item that all
applicable limits allow *now* plus the time something can next be released. Nothing sleeps and
nothing is dropped: an item over a limit stays queued until it fits.

Items are queued in **lanes**, one per route in the throttle (``lane_by="route"``) or one per
tenant in the router (``lane_by="tenant"``). Lanes are independent: a lane that is over its
limit is put to sleep until its limit can admit its next item, and the other lanes keep being
served, round robin, one item per lane per round. So a saturated route never delays another
route sharing the partition (no head-of-line blocking), and a bursting tenant never delays
another tenant.

Limits applied to an item, all counted in message parts:

====================  =======================================================================
lane                  token bucket at ``min(pps, adaptive rate)`` (the route's TPS under AIMD,
                      or the tenant's agreed rate); burst ``burst_s`` seconds' worth
headroom (routes)     Standard and Economy also draw on a ``(1 - headroom)`` bucket, so a
                      share of every route stays free for Premium
global share          one bucket shared by all lanes of this instance (its share of the
                      platform cap; see :mod:`smsflow.domain.limits.hierarchy`)
destination           sliding window per destination number (anti-burst): an item over it is
                      *parked* aside, per number, in arrival order, and the lane moves on to
                      its next item; the number's window opening brings it back
daily quota           checked at :meth:`~Scheduler.offer`: a tenant past its quota is rejected
                      with ``QUOTA_EXCEEDED`` (the only rejection)
====================  =======================================================================

Inside a lane: Premium before Standard before Economy, with minimum shares for the lower tiers
and Economy off-peak holding (:mod:`smsflow.domain.limits.tiers`); inside one tier, tenants
share the lane by deficit round robin (in parts). When a higher tier's next item does not fit
the lane (or global) bucket, lower tiers wait too (strict priority: they would eat the tokens
the higher tier is waiting for); only a wait on the headroom bucket lets Premium, which does not
use it, go ahead.

The values it takes and returns are in :mod:`~smsflow.domain.limits.scheduler_values` (re-exported
here), one lane's queues and buckets in :mod:`~smsflow.domain.limits.lanes`.

Commit safety: every item carries its source ``(partition, offset)``. :meth:`~Scheduler.lowest_held`
is the lowest offset of a partition still queued here: the agent may commit below it only, and
only for records it has also passed on (acknowledged by Kafka). :meth:`~Scheduler.revoke` drops a
revoked partition's items (its new owner re-reads them from the committed offset).

``now`` is epoch seconds (``time.time()``): buckets only need a steady clock, but the daily
quota and off-peak windows need the wall clock. A clock stepping back only delays releases.
The scheduler is mutable (it owns queues), deterministic, single-threaded and free of I/O.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable
from types import MappingProxyType

from smsflow.domain.limits import aimd as _aimd
from smsflow.domain.limits.aimd import AimdState, SubmitSample
from smsflow.domain.limits.buckets import Bucket, SlidingWindow, level, take, wait_for
from smsflow.domain.limits.lanes import _GLOBAL, _GLOBAL_TURN, _HEADROOM, _LANE, _Entry, _fit, _Lane
from smsflow.domain.limits.quota import QUOTA_EXCEEDED, QuotaUsage, charge
from smsflow.domain.limits.scheduler_values import (
    DestinationLimit,
    Item,
    LaneBy,
    LimiterStats,
    Poll,
    RateLimit,
    Rejected,
    Released,
    SchedulerConfig,
    SchedulerMetrics,
)
from smsflow.domain.traffic import Tier

__all__ = [
    "DestinationLimit",
    "Item",
    "LaneBy",
    "LimiterStats",
    "Poll",
    "RateLimit",
    "Rejected",
    "Released",
    "Scheduler",
    "SchedulerConfig",
    "SchedulerMetrics",
]


class Scheduler:
    """See the module docstring. ``Scheduler(config, now)``; then offer/poll/observe."""

    def __init__(self, config: SchedulerConfig, now: float) -> None:
        self._config = config
        self._lanes: dict[str, _Lane] = {}
        self._ready: dict[str, None] = {}  # lanes to try at the next poll, round-robin order
        self._ready_since: float | None = None  # when the first of them became ready
        # (wake time, order, lane) min-heap, lazily pruned; ties wake in the order they slept.
        self._sleep: list[tuple[float, int, str]] = []
        self._wake_at: dict[str, float] = {}  # valid heap entry per sleeping lane
        self._sleeps = 0
        self._global: Bucket | None = None
        # Lanes waiting for global tokens, first come first served: without it, a lane of 1-part
        # messages would take every token as it accrues and starve a lane of 10-part messages.
        self._global_queue: dict[str, None] = {}
        self._global_blocked = 0
        self._window: SlidingWindow | None = None
        self._parked: dict[str, list[_Entry]] = {}  # destination → min-heap by offer sequence
        self._unparked: dict[str, int] = {}  # destination → parts unparked, not yet released
        self._unparked_seqs: set[int] = set()
        self._events: list[tuple[float, str]] = []  # (time, destination) to unpark, lazily pruned
        self._event_at: dict[str, float] = {}
        self._dest_allowed = [0, 0]
        self._dest_blocked = 0
        self._held: dict[int, list[int]] = {}  # partition → min-heap of held offsets
        self._held_count: dict[int, dict[int, int]] = {}  # partition → offset → copies held
        self._quota: dict[str, QuotaUsage] = {}
        self._rejected = 0
        self._seq = 0
        self._released = 0
        self._released_parts = 0
        self._wait_total = 0.0
        self._wait_max = 0.0
        self.reconfigure(config, now)

    # ------------------------------------------------------------------ configuration

    @property
    def config(self) -> SchedulerConfig:
        return self._config

    def reconfigure(self, config: SchedulerConfig, now: float) -> None:
        """Apply new limits live: accrued tokens, queues, windows and AIMD state are kept."""
        self._config = config
        g = config.global_limit
        self._global = None if g is None else _fit(self._global, g.pps, g.burst, now)
        self._global_queue.clear()  # every lane is re-tried below and queues up again
        dest = config.destination
        if dest is None:
            if self._window is not None:
                self._unpark_everything(now)
            self._window = None
        elif self._window is None:
            self._window = SlidingWindow(dest.parts, dest.window_s, dest.max_keys)
        else:
            self._window.retune(dest.parts, dest.window_s)
            self._window.max_keys = dest.max_keys
        for key, lane in list(self._lanes.items()):
            lane.configure(self._limit_for(key, lane.limit), config.tiers, config.adaptive, now)
            if lane.idle() and key not in config.lanes:
                self._drop_lane(key, now)
            elif not lane.idle():
                self._wake(key, now)
        for destination in list(self._parked):
            self._event_at.pop(destination, None)
            self._ensure_event(destination, now)

    def _limit_for(self, key: str, current: RateLimit | None) -> RateLimit | None:
        limit = self._config.lanes.get(key) or self._config.default_lane
        return limit if limit is not None else current

    def _lane(self, key: str, now: float) -> _Lane:
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane(key, self._config.tiers)
            lane.configure(self._limit_for(key, None), self._config.tiers,
                           self._config.adaptive, now)
        return lane

    def _lane_key(self, item: Item) -> str:
        return item.route_id if self._config.lane_by == "route" else item.tenant_id

    def _drop_lane(self, key: str, now: float) -> None:
        self._lanes.pop(key, None)
        self._ready.pop(key, None)
        self._wake_at.pop(key, None)
        self._leave_global_queue(key, now)

    # ------------------------------------------------------------------ offer / poll

    def offer(self, item: Item, now: float) -> Rejected | None:
        """Queue ``item``; ``Rejected`` (QUOTA_EXCEEDED) if its tenant is past its daily quota.

        Poll afterwards: the item may be releasable at once.
        """
        if item.parts < 1:
            raise ValueError(f"an item has at least one part, got {item.parts}")
        key = self._lane_key(item)
        lane = self._lane(key, now)
        quota = self._config.daily_quota.get(item.tenant_id)
        if quota is not None:
            usage, admitted = charge(self._quota.get(item.tenant_id), quota, item.parts, now)
            self._quota[item.tenant_id] = usage
            if not admitted:
                lane.rejected += 1
                self._rejected += 1
                if lane.idle() and key not in self._config.lanes:
                    self._drop_lane(key, now)
                return Rejected(
                    item, QUOTA_EXCEEDED,
                    f"tenant {item.tenant_id} used {usage.used} of {quota} parts today; "
                    f"this message needs {item.parts}",
                )
        self._seq += 1
        entry = (self._seq, item)
        self._hold(item)
        parked = self._parked.get(item.destination) if self._window is not None else None
        if parked:  # keep per-number order: it queues behind the parked ones
            self._park(lane, entry, now)
        else:
            lane.queues[item.tier].append(entry)
            if self._offer_may_release(lane, item):
                self._wake(key, now)
        return None

    def _offer_may_release(self, lane: _Lane, item: Item) -> bool:
        """Whether a new item can change what a sleeping lane does now.

        A lane asleep because its own or the global bucket is short stays asleep (a new item
        cannot make tokens appear; its timer is at most one message away), except for a Premium
        item on a lane-blocked lane: it may be smaller than the lower-tier item that waits.
        """
        if lane.key not in self._wake_at:
            return True
        if lane.blocked_by == _GLOBAL:
            return False
        return lane.blocked_by != _LANE or item.tier is Tier.PREMIUM

    def poll(self, now: float) -> Poll:
        """Release everything the limits allow at ``now``; when to poll next."""
        released: list[Released] = []
        while True:
            self._wake_due(now)
            if not self._ready:
                self._ready_since = None
                break
            self._ready_since = now
            for key in list(self._ready):
                lane = self._lanes.get(key)
                if lane is None:
                    self._ready.pop(key, None)
                    continue
                outcome = self._step(lane, now)
                if isinstance(outcome, Released):
                    released.append(outcome)
                    if lane.has_queued():
                        continue
                    outcome = None  # drained: nothing to wait for
                    lane.blocked_by = None
                self._ready.pop(key, None)
                if lane.blocked_by != _GLOBAL:
                    self._leave_global_queue(key, now)
                if outcome is not None:
                    self._sleep_until(key, max(outcome, math.nextafter(now, math.inf)))
                elif lane.idle() and key not in self._config.lanes:
                    self._drop_lane(key, now)
        return Poll(released, self.next_wake_at())

    def next_wake_at(self) -> float | None:
        """When to poll next: ``now`` right after an offer, else the earliest time a poll can
        release something (None: nothing that time alone will release)."""
        while self._sleep and self._wake_at.get(self._sleep[0][2]) != self._sleep[0][0]:
            heapq.heappop(self._sleep)
        while self._events and self._event_at.get(self._events[0][1]) != self._events[0][0]:
            heapq.heappop(self._events)
        if self._ready and self._ready_since is not None:
            return self._ready_since
        times = [heap[0][0] for heap in (self._sleep, self._events) if heap]
        earliest = min(times) if times else math.inf
        return None if earliest == math.inf else earliest

    def _wake(self, key: str, now: float) -> None:
        """Have ``key`` tried at the next poll (which should come at ``now``)."""
        if key not in self._ready:
            self._ready[key] = None
            self._wake_at.pop(key, None)
            if self._ready_since is None or now < self._ready_since:
                self._ready_since = now

    def _sleep_until(self, key: str, at: float) -> None:
        self._wake_at[key] = at
        self._sleeps += 1
        heapq.heappush(self._sleep, (at, self._sleeps, key))

    def _leave_global_queue(self, key: str, now: float) -> None:
        if key not in self._global_queue:
            return
        first = next(iter(self._global_queue)) == key
        del self._global_queue[key]
        if first and self._global_queue:
            self._wake(next(iter(self._global_queue)), now)

    def _wake_due(self, now: float) -> None:
        # Numbers first: unparking wakes lanes, which the second loop then picks up.
        while self._events and self._events[0][0] <= now:
            at, destination = heapq.heappop(self._events)
            if self._event_at.get(destination) == at:
                del self._event_at[destination]
                self._unpark(destination, now)
        while self._sleep and self._sleep[0][0] <= now:
            at, _, key = heapq.heappop(self._sleep)
            if self._wake_at.get(key) == at:
                del self._wake_at[key]
                self._ready[key] = None

    def _step(self, lane: _Lane, now: float) -> Released | float | None:
        """Release one item of ``lane``, or say when to try again: a time, :data:`_GLOBAL_TURN`
        (queued for global tokens: woken when its turn comes) or None (nothing to wait for)."""
        order, guaranteed = lane.order(now)
        headroom_wake: float | None = None
        for tier in order:
            if headroom_wake is not None and tier is not Tier.PREMIUM:
                continue
            queue = lane.queues[tier]
            while (entry := queue.peek()) is not None:
                item = entry[1]
                if self._window is not None and self._must_park(entry, now):
                    queue.pop(charge_deficit=False)
                    self._park(lane, entry, now)
                    continue
                parts = item.parts
                if lane.capacity is not None:
                    w_lane = wait_for(lane.capacity, parts, now)
                    if w_lane > 0:
                        lane.blocked_by = _LANE
                        lane.blocked[_LANE] += 1
                        wake = now + w_lane
                        return wake if headroom_wake is None else min(wake, headroom_wake)
                if tier is not Tier.PREMIUM and lane.shared is not None:
                    w_shared = wait_for(lane.shared, parts, now)
                    if w_shared > 0:
                        lane.blocked_by = _HEADROOM
                        lane.blocked[_HEADROOM] += 1
                        headroom_wake = now + w_shared
                        break
                if self._global is not None:
                    w_global = wait_for(self._global, parts, now)
                    first = next(iter(self._global_queue), lane.key)
                    if w_global > 0 or first != lane.key:
                        lane.blocked_by = _GLOBAL
                        self._global_blocked += 1
                        self._global_queue.setdefault(lane.key)
                        if first != lane.key:
                            return _GLOBAL_TURN if headroom_wake is None else headroom_wake
                        wake = now + w_global
                        return wake if headroom_wake is None else min(wake, headroom_wake)
                self._leave_global_queue(lane.key, now)
                lane.blocked_by = None
                return self._release(lane, tier, tier in guaranteed, now)
        if headroom_wake is not None:
            return headroom_wake
        lane.blocked_by = None
        return lane.held_until(now)

    def _release(self, lane: _Lane, tier: Tier, guaranteed: bool, now: float) -> Released:
        seq, item = lane.queues[tier].pop(charge_deficit=True)
        parts = item.parts
        if lane.capacity is not None:
            lane.capacity = take(lane.capacity, parts, now)
        if tier is not Tier.PREMIUM and lane.shared is not None:
            lane.shared = take(lane.shared, parts, now)
        share = lane.guarantee.get(tier)
        if share is not None:
            if guaranteed:
                lane.guarantee[tier] = take(share, parts, now)
            else:  # served on priority: spend what the share saved up, never go into debt
                available = level(share, now)
                if available > 0:
                    lane.guarantee[tier] = Bucket(
                        share.rate, share.burst, max(0.0, available - parts), now
                    )
        if self._global is not None:
            self._global = take(self._global, parts, now)
        if self._window is not None:
            self._window.take(item.destination, parts, now)
            self._dest_allowed[0] += 1
            self._dest_allowed[1] += parts
            if seq in self._unparked_seqs:
                self._settle_unparked(seq, item, now)
        lane.allowed_messages += 1
        lane.allowed_parts += parts
        self._unhold(item)
        released = Released(item, now)
        waited = released.waited_s
        self._released += 1
        self._released_parts += parts
        self._wait_total += waited
        self._wait_max = max(self._wait_max, waited)
        return released

    # ------------------------------------------------------------------ destination parking

    def _must_park(self, entry: _Entry, now: float) -> bool:
        assert self._window is not None
        seq, item = entry
        parked = self._parked.get(item.destination)
        if parked and parked[0][0] < seq:  # an older item for this number waits: keep order
            return True
        if self._window.ready_at(item.destination, item.parts, now) > now:
            self._dest_blocked += 1
            return True
        return False

    def _park(self, lane: _Lane, entry: _Entry, now: float) -> None:
        seq, item = entry
        if seq in self._unparked_seqs:
            self._settle_unparked(seq, item, now, ensure=False)
        heapq.heappush(self._parked.setdefault(item.destination, []), entry)
        lane.parked_messages += 1
        lane.parked_parts += item.parts
        self._ensure_event(item.destination, now)

    def _settle_unparked(self, seq: int, item: Item, now: float, ensure: bool = True) -> None:
        self._unparked_seqs.discard(seq)
        left = self._unparked[item.destination] - item.parts
        if left > 0:
            self._unparked[item.destination] = left
            return
        del self._unparked[item.destination]
        if ensure:
            self._ensure_event(item.destination, now)

    def _ensure_event(self, destination: str, now: float) -> None:
        """Keep the invariant: a number with parked items has a wake-up event, or items of it
        out on the lanes whose release (or re-parking) will schedule one."""
        parked = self._parked.get(destination)
        if (
            not parked
            or self._window is None
            or destination in self._event_at
            or self._unparked.get(destination, 0) > 0
        ):
            return
        at = self._window.ready_at(destination, parked[0][1].parts, now)
        self._event_at[destination] = at
        heapq.heappush(self._events, (at, destination))

    def _unpark(self, destination: str, now: float) -> None:
        """Move as many of a number's parked items as its window admits back to their lanes."""
        parked = self._parked.get(destination)
        if not parked or self._window is None:
            return
        limit = self._window.limit
        room = limit - self._window.used(destination, now) - self._unparked.get(destination, 0)
        moved: list[_Entry] = []
        while parked and min(parked[0][1].parts, limit) <= room:
            entry = heapq.heappop(parked)
            room -= entry[1].parts
            self._unparked_seqs.add(entry[0])
            self._unparked[destination] = self._unparked.get(destination, 0) + entry[1].parts
            moved.append(entry)
        for entry in reversed(moved):  # each goes to the front of its queue: newest first
            self._to_lane(entry, now)
        if not parked:
            del self._parked[destination]
        else:
            self._ensure_event(destination, now)

    def _to_lane(self, entry: _Entry, now: float) -> None:
        item = entry[1]
        key = self._lane_key(item)
        lane = self._lanes[key]
        lane.parked_messages -= 1
        lane.parked_parts -= item.parts
        lane.queues[item.tier].push_front(entry)
        self._wake(key, now)

    def _unpark_everything(self, now: float) -> None:
        for destination, parked in self._parked.items():
            for entry in sorted(parked, reverse=True):  # push_front: newest first
                self._to_lane(entry, now)
            self._event_at.pop(destination, None)
        self._parked.clear()
        self._unparked.clear()
        self._unparked_seqs.clear()

    # ------------------------------------------------------------------ adaptive rate

    def observe(self, lane_key: str, sample: SubmitSample, now: float) -> float | None:
        """Fold a submit outcome into the lane's AIMD state; its new rate (None: not adaptive)."""
        lane = self._lanes.get(lane_key)
        if lane is None:
            if lane_key not in self._config.lanes:
                return None
            lane = self._lane(lane_key, now)
        if lane.aimd is None or lane.aimd_params is None:
            return None
        before = lane.aimd.rate
        lane.aimd = _aimd.observe(lane.aimd, sample, now, lane.aimd_params)
        if lane.aimd.rate != before:
            lane.apply_rate(now)
            if not lane.idle():
                self._wake(lane_key, now)
        return lane.aimd.rate

    def adaptive_state(self, lane_key: str) -> AimdState | None:
        lane = self._lanes.get(lane_key)
        return None if lane is None else lane.aimd

    # ------------------------------------------------------------------ commit safety

    def _hold(self, item: Item) -> None:
        if item.offset < 0:
            return
        counts = self._held_count.setdefault(item.partition, {})
        if item.offset not in counts:
            heapq.heappush(self._held.setdefault(item.partition, []), item.offset)
        counts[item.offset] = counts.get(item.offset, 0) + 1

    def _unhold(self, item: Item) -> None:
        if item.offset < 0:
            return
        counts = self._held_count.get(item.partition)
        if counts is None or item.offset not in counts:
            return
        counts[item.offset] -= 1
        if counts[item.offset] == 0:
            del counts[item.offset]
        heap = self._held[item.partition]
        while heap and heap[0] not in counts:
            heapq.heappop(heap)
        if not heap:
            del self._held[item.partition]
            del self._held_count[item.partition]

    def lowest_held(self, partition: int) -> int | None:
        """Lowest source offset of ``partition`` still queued here (None: nothing held).

        Committing offset ``o`` means "every record below ``o`` is done", so the agent commits at
        most this value (and at most the lowest record it has not yet passed on itself).
        """
        heap = self._held.get(partition)
        return heap[0] if heap else None

    def held(self) -> dict[int, int]:
        """``partition → lowest held offset`` for every partition with queued items."""
        return {p: heap[0] for p, heap in self._held.items() if heap}

    def withdraw_held(self, now: float) -> list[Item]:
        """Take out every queued item its tier's policy holds at ``now`` (Economy outside its
        off-peak windows), oldest first per lane, so the caller can park them elsewhere.

        Holding them here would keep them in memory and their records uncommitted until the
        next window, hours away; the throttle writes them to ``sms.deferred`` instead. Items
        parked for the per-destination window stay; they return to their lane first.
        """
        withdrawn: list[Item] = []
        for key, lane in list(self._lanes.items()):
            queue = lane.queues[Tier.ECONOMY]
            if not queue.messages or not lane.policy.held(Tier.ECONOMY, now):
                continue
            removed = sorted(queue.remove(lambda _item: True), key=lambda entry: entry[0])
            for _seq, item in removed:
                self._unhold(item)
                withdrawn.append(item)
            if lane.idle() and key not in self._config.lanes:
                self._drop_lane(key, now)
        return withdrawn

    def revoke(self, partitions: Iterable[int], now: float) -> list[Item]:
        """Drop every item of revoked ``partitions`` (their new owner re-reads them)."""
        gone = set(partitions)

        def drop(item: Item) -> bool:
            return item.partition in gone

        removed: list[Item] = []
        for lane in self._lanes.values():
            for queue in lane.queues.values():
                removed.extend(entry[1] for entry in queue.remove(drop))
        for destination in list(self._parked):
            kept: list[_Entry] = []
            for entry in self._parked[destination]:
                if not drop(entry[1]):
                    kept.append(entry)
                    continue
                lane = self._lanes[self._lane_key(entry[1])]
                lane.parked_messages -= 1
                lane.parked_parts -= entry[1].parts
                removed.append(entry[1])
            if kept:
                heapq.heapify(kept)
                self._parked[destination] = kept
            else:
                del self._parked[destination]
                self._event_at.pop(destination, None)
        # Recount the unparked items still out on the lanes, then restore the event invariant.
        previously, self._unparked_seqs = self._unparked_seqs, set()
        self._unparked.clear()
        for lane in self._lanes.values():
            for queue in lane.queues.values():
                for seq, item in queue.entries():
                    if seq in previously:
                        self._unparked_seqs.add(seq)
                        self._unparked[item.destination] = (
                            self._unparked.get(item.destination, 0) + item.parts
                        )
        for partition in gone:
            self._held.pop(partition, None)
            self._held_count.pop(partition, None)
        for destination in list(self._parked):
            self._ensure_event(destination, now)
        for key, lane in list(self._lanes.items()):
            if lane.idle() and key not in self._config.lanes:
                self._drop_lane(key, now)
        return removed

    # ------------------------------------------------------------------ quota persistence

    def quota_usage(self, tenant_id: str) -> QuotaUsage | None:
        return self._quota.get(tenant_id)

    def restore_quota(self, tenant_id: str, usage: QuotaUsage) -> None:
        """Load a tenant's persisted usage (e.g. from a faust table on partition assignment)."""
        self._quota[tenant_id] = usage

    # ------------------------------------------------------------------ metrics

    @property
    def queued(self) -> int:
        """Messages held here (queued in lanes or parked for their number)."""
        return sum(lane.queued_messages + lane.parked_messages for lane in self._lanes.values())

    def metrics(self, now: float) -> SchedulerMetrics:
        limiters: dict[str, LimiterStats] = {}
        queued_messages = queued_parts = 0
        global_waiting = [0, 0]
        oldest: float | None = None
        for key, lane in self._lanes.items():
            messages = lane.queued_messages
            parts = lane.queued_parts
            queued_messages += messages + lane.parked_messages
            queued_parts += parts + lane.parked_parts
            if lane.blocked_by == _GLOBAL:
                global_waiting[0] += messages
                global_waiting[1] += parts
            limiters[f"{self._config.lane_by}:{key}"] = LimiterStats(
                name=f"{self._config.lane_by}:{key}",
                allowed_messages=lane.allowed_messages,
                allowed_parts=lane.allowed_parts,
                waiting_messages=messages,
                waiting_parts=parts,
                rejected_messages=lane.rejected,
                blocked=lane.blocked[_LANE] + lane.blocked[_HEADROOM],
                rate_pps=lane.effective_pps(),
            )
            for queue in lane.queues.values():
                head = queue.oldest_enqueued()
                if head is not None and (oldest is None or head < oldest):
                    oldest = head
        for parked in self._parked.values():
            for _, item in parked:
                if oldest is None or item.enqueued_at < oldest:
                    oldest = item.enqueued_at
        if self._global is not None:
            limiters[_GLOBAL] = LimiterStats(
                name=_GLOBAL,
                allowed_messages=self._released,
                allowed_parts=self._released_parts,
                waiting_messages=global_waiting[0],
                waiting_parts=global_waiting[1],
                rejected_messages=0,
                blocked=self._global_blocked,
                rate_pps=self._global.rate,
            )
        if self._window is not None:
            limiters["destination"] = LimiterStats(
                name="destination",
                allowed_messages=self._dest_allowed[0],
                allowed_parts=self._dest_allowed[1],
                waiting_messages=sum(len(p) for p in self._parked.values()),
                waiting_parts=sum(item.parts for p in self._parked.values() for _, item in p),
                rejected_messages=0,
                blocked=self._dest_blocked,
                rate_pps=self._window.limit / self._window.window_s,
            )
        return SchedulerMetrics(
            limiters=MappingProxyType(limiters),
            adaptive_rate_pps=MappingProxyType(
                {k: lane.aimd.rate for k, lane in self._lanes.items() if lane.aimd is not None}
            ),
            queued_messages=queued_messages,
            queued_parts=queued_parts,
            oldest_wait_s=0.0 if oldest is None else max(0.0, now - oldest),
            released_messages=self._released,
            released_wait_total_s=self._wait_total,
            released_wait_max_s=self._wait_max,
            tracked_destinations=0 if self._window is None else len(self._window),
            destinations_evicted_active=0 if self._window is None else self._window.evicted_active,
        )
