"""One lane of the scheduler: tier queues with deficit round robin, and its buckets.

A lane holds one route's (throttle) or one tenant's (router) queued items: a queue per tier,
each shared by tenants in deficit round robin (in parts), the lane's token bucket, its headroom
bucket and the tiers' guaranteed-share buckets, and the items parked on a destination's window.
:class:`smsflow.domain.limits.scheduler.Scheduler` serves lanes round robin; the rules are in
its module docstring.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import replace

from smsflow.domain.limits import aimd as _aimd
from smsflow.domain.limits.aimd import AimdParams, AimdState
from smsflow.domain.limits.buckets import Bucket, retune, wait_for
from smsflow.domain.limits.scheduler_values import Item, RateLimit
from smsflow.domain.limits.tiers import PRIORITY, TierPolicy
from smsflow.domain.traffic import Tier

_Entry = tuple[int, Item]  # (offer sequence, item)

_LANE = "lane"
_GLOBAL_TURN = math.inf  # "waiting for its turn at the global bucket": no timer of its own
_HEADROOM = "headroom"
_GLOBAL = "global"


def _fit(bucket: Bucket | None, rate: float, burst: float, now: float) -> Bucket:
    return Bucket.full(rate, burst, now) if bucket is None else retune(bucket, rate, burst, now)


class _TierQueue:
    """FIFO per tenant, served by deficit round robin in parts."""

    __slots__ = ("_deficit", "_started", "_tenants", "messages", "parts", "quantum")

    def __init__(self, quantum: int) -> None:
        self.quantum = quantum
        self._tenants: OrderedDict[str, deque[_Entry]] = OrderedDict()
        self._deficit: dict[str, int] = {}
        self._started = False  # has the front tenant received its quantum for this turn?
        self.messages = 0
        self.parts = 0

    def append(self, entry: _Entry) -> None:
        tenant = entry[1].tenant_id
        queue = self._tenants.get(tenant)
        if queue is None:
            queue = self._tenants[tenant] = deque()
            self._deficit[tenant] = 0
        queue.append(entry)
        self.messages += 1
        self.parts += entry[1].parts

    def push_front(self, entry: _Entry) -> None:
        """Put a returning (unparked) entry back ahead of everything younger than it.

        Usually that is the very front. Older entries can sit there too (Economy held for an
        off-peak window while a younger item of the same number was parked): the entry goes
        behind them, so order per number is kept (found by the property test).
        """
        tenant = entry[1].tenant_id
        queue = self._tenants.get(tenant)
        if queue is None:
            queue = self._tenants[tenant] = deque()
            self._deficit[tenant] = 0
            self._tenants.move_to_end(tenant, last=False)
            self._started = False
        at = 0
        for queued in queue:
            if queued[0] > entry[0]:
                break
            at += 1
        queue.insert(at, entry)
        self.messages += 1
        self.parts += entry[1].parts

    def peek(self) -> _Entry | None:
        while self._tenants:
            tenant, queue = next(iter(self._tenants.items()))
            need = min(queue[0][1].parts, self.quantum)
            if self._deficit[tenant] >= need:
                return queue[0]
            if not self._started:
                self._deficit[tenant] += self.quantum
                self._started = True
                continue
            self._tenants.move_to_end(tenant)  # its turn is over
            self._started = False
        return None

    def pop(self, charge_deficit: bool) -> _Entry:
        """Remove the entry :meth:`peek` returned."""
        tenant, queue = next(iter(self._tenants.items()))
        entry = queue.popleft()
        if charge_deficit:
            self._deficit[tenant] -= entry[1].parts
        self.messages -= 1
        self.parts -= entry[1].parts
        if not queue:
            del self._tenants[tenant]
            del self._deficit[tenant]
            self._started = False
        return entry

    def remove(self, drop: Callable[[Item], bool]) -> list[_Entry]:
        removed: list[_Entry] = []
        for tenant in list(self._tenants):
            queue = self._tenants[tenant]
            kept = deque(e for e in queue if not drop(e[1]))
            removed.extend(e for e in queue if drop(e[1]))
            if kept:
                self._tenants[tenant] = kept
            else:
                del self._tenants[tenant]
                del self._deficit[tenant]
        self._started = False
        self.messages -= len(removed)
        self.parts -= sum(e[1].parts for e in removed)
        return removed

    def entries(self) -> Iterable[_Entry]:
        for queue in self._tenants.values():
            yield from queue

    def oldest_enqueued(self) -> float | None:
        heads = [queue[0][1].enqueued_at for queue in self._tenants.values()]
        return min(heads) if heads else None


class _Lane:
    __slots__ = (
        "aimd",
        "aimd_params",
        "allowed_messages",
        "allowed_parts",
        "blocked",
        "blocked_by",
        "capacity",
        "guarantee",
        "key",
        "limit",
        "parked_messages",
        "parked_parts",
        "policy",
        "queues",
        "rejected",
        "shared",
    )

    def __init__(self, key: str, policy: TierPolicy) -> None:
        self.key = key
        self.policy = policy
        self.queues = {tier: _TierQueue(policy.quantum_parts) for tier in PRIORITY}
        self.limit: RateLimit | None = None
        self.aimd: AimdState | None = None
        self.aimd_params: AimdParams | None = None
        self.capacity: Bucket | None = None
        self.shared: Bucket | None = None
        self.guarantee: dict[Tier, Bucket] = {}
        self.allowed_messages = 0
        self.allowed_parts = 0
        self.rejected = 0
        self.parked_messages = 0
        self.parked_parts = 0
        self.blocked: dict[str, int] = {_LANE: 0, _HEADROOM: 0, _GLOBAL: 0}
        self.blocked_by: str | None = None

    def configure(
        self,
        limit: RateLimit | None,
        policy: TierPolicy,
        adaptive: AimdParams | None,
        now: float,
    ) -> None:
        self.policy = policy
        for queue in self.queues.values():
            queue.quantum = policy.quantum_parts
        self.limit = limit
        if limit is not None and adaptive is not None:
            target = limit.target_latency_s
            self.aimd_params = (
                adaptive if target is None else replace(adaptive, target_latency_s=target)
            )
            self.aimd = (
                AimdState.start(limit.pps)
                if self.aimd is None
                else _aimd.retune(self.aimd, limit.pps)
            )
        else:
            self.aimd = None
            self.aimd_params = None
        self.apply_rate(now)

    def effective_pps(self) -> float | None:
        if self.limit is None:
            return None
        if self.aimd is None:
            return self.limit.pps
        return min(self.limit.pps, self.aimd.rate)

    def apply_rate(self, now: float) -> None:
        pps = self.effective_pps()
        if pps is None or self.limit is None:
            self.capacity = self.shared = None
            self.guarantee = {}
            return
        burst = pps * self.limit.burst_s
        self.capacity = _fit(self.capacity, pps, burst, now)
        keep = 1.0 - self.limit.headroom
        self.shared = (
            _fit(self.shared, keep * pps, keep * burst, now) if self.limit.headroom > 0 else None
        )
        guarantee: dict[Tier, Bucket] = {}
        for tier, share in self.policy.min_share.items():
            if share > 0 and tier is not Tier.PREMIUM:
                guarantee[tier] = _fit(self.guarantee.get(tier), share * pps, share * burst, now)
        self.guarantee = guarantee

    @property
    def queued_messages(self) -> int:
        return sum(q.messages for q in self.queues.values())

    @property
    def queued_parts(self) -> int:
        return sum(q.parts for q in self.queues.values())

    def idle(self) -> bool:
        return self.parked_messages == 0 and all(not q.messages for q in self.queues.values())

    def order(self, now: float) -> tuple[list[Tier], list[Tier]]:
        """Tiers to try, in order, and which of them are served on their minimum share."""
        guaranteed: list[Tier] = []
        rest: list[Tier] = []
        for tier in PRIORITY:
            queue = self.queues[tier]
            if not queue.messages:
                continue
            if tier is Tier.ECONOMY and self.policy.held(tier, now):
                continue
            bucket = self.guarantee.get(tier)
            if bucket is not None:
                head = queue.peek()
                if head is not None and not wait_for(bucket, head[1].parts, now):
                    guaranteed.append(tier)
                    continue
            rest.append(tier)
        return (guaranteed + rest if guaranteed else rest), guaranteed

    def has_queued(self) -> bool:
        queues = self.queues
        return bool(
            queues[Tier.PREMIUM].messages or queues[Tier.STANDARD].messages
            or queues[Tier.ECONOMY].messages
        )

    def held_until(self, now: float) -> float | None:
        times = [
            self.policy.released_at(tier, now)
            for tier, queue in self.queues.items()
            if queue.messages and self.policy.held(tier, now)
        ]
        return min(times) if times else None
