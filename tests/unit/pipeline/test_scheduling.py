"""The scheduled stage (pipeline.scheduling) against a fake faust app: acks in offset order while
an older record waits, per-partition acks, revocation, flow resume, high water, the commit clamp
and live retuning, for route lanes (the throttle) and tenant lanes (the router). In memory, with
a manual clock; the same stage on a real broker is in tests/integration/test_throttle_limits.py
and test_router_limits.py."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, cast

import pytest
from faust.types import TP

from pipeline.faust_patches.commit_hooks import capped
from pipeline.scheduling import ScheduledStage
from smsflow.config.models import Tier
from smsflow.domain.limits import RateLimit, Released, SchedulerConfig
from tests.unit.pipeline.fake_faust import App, Event

# ---------------------------------------------------------------------------------------------
# Route lanes (the throttle)


class _Harness:
    """A stage on a fake app with a manual clock; every emit's future completes on demand."""

    def __init__(self, lanes: dict[str, float], **kwargs: Any) -> None:
        self.app = App()
        self.now = 1000.0
        self.acks: list[tuple[int, int]] = []
        self.sent: list[tuple[str, asyncio.Future[Any]]] = []
        self.lanes = dict(lanes)
        self.version = 0
        self.stage: ScheduledStage[str] = ScheduledStage(
            cast(Any, self.app), name="test", source_topic="sms.routed", emit=self._emit,
            configure=self._configure, version=lambda: self.version, clock=lambda: self.now,
            **kwargs,
        )
        self.events: list[Event] = []

    def _configure(self, _owned: int, _total: int) -> SchedulerConfig:
        return SchedulerConfig(
            lane_by="route", lanes={k: RateLimit(pps=v) for k, v in self.lanes.items()}
        )

    async def _emit(self, payload: str, _released: Released) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.sent.append((payload, future))
        return future

    def offer(self, route: str, partition: int = 0) -> Event:
        offset = sum(1 for e in self.events if e.message.partition == partition)
        event = Event(partition, offset, self.acks)
        self.events.append(event)
        self.app.consumer.unacked.add(event.message)
        ticket = self.stage.track(cast(Any, event))
        self.stage.offer(ticket, f"{route}#{partition}/{offset}", message_id=str(uuid.uuid4()),
                         tenant_id="t", tier=Tier.STANDARD, route_id=route,
                         destination=f"+4477009{offset:05d}", parts=1)
        return event

    async def complete_sends(self) -> None:
        for _, future in self.sent:
            if not future.done():
                future.set_result(None)
        await asyncio.sleep(0)  # run the done callbacks


@pytest.mark.asyncio
async def test_acks_stay_in_offset_order_while_an_older_record_waits() -> None:
    h = _Harness({"slow": 1.0, "fast": 1000.0})
    h.offer("slow")  # offset 0: released at once (a full bucket of 1)
    h.offer("slow")  # offset 1: waits a second
    h.offer("fast")  # offset 2
    h.offer("fast")  # offset 3
    await h.stage.release_due()
    assert [p for p, _ in h.sent] == ["slow#0/0", "fast#0/2", "fast#0/3"]
    await h.complete_sends()
    # 2 and 3 are passed on, but acking them before 1 would let faust commit past it.
    assert h.acks == [(0, 0)]
    assert h.stage.stats().tracked == 3

    h.now += 1.0
    await h.stage.release_due()
    await h.complete_sends()
    assert h.acks == [(0, 0), (0, 1), (0, 2), (0, 3)]
    stats = h.stage.stats()
    assert (stats.tracked, stats.queued, stats.in_flight, stats.acked) == (0, 0, 0, 4)


@pytest.mark.asyncio
async def test_the_agent_passes_on_what_may_go_and_wakes_the_timer_only_for_what_waits() -> None:
    """pass_on_released() from the agent's task: no timer wake-up per record (the alarm is the
    timer task's wake-up; _timer_due is when it planned to look next)."""
    h = _Harness({"slow": 1.0, "fast": 1000.0})
    h.stage._timer_due = h.now + 30  # the timer sleeps until then
    h.offer("fast")
    await h.stage.pass_on_released()
    assert [payload for payload, _ in h.sent] == ["fast#0/0"]  # at once, from this task
    h.offer("slow")  # a full bucket of 1: goes at once too
    await h.stage.pass_on_released()
    assert not h.stage._alarm._set  # nothing waits: the timer sleeps on
    h.offer("slow")  # waits a second: sooner than the timer planned to look
    await h.stage.pass_on_released()
    assert len(h.sent) == 2 and h.stage._alarm._set
    h.stage._alarm._set = False
    h.stage._timer_due = h.now + 0.5  # the timer looks before that record is due anyway
    h.offer("slow")
    await h.stage.pass_on_released()
    assert not h.stage._alarm._set
    h.now += 1.0
    await h.stage.release_due()  # the timer's tick
    assert [payload for payload, _ in h.sent][2:] == ["slow#0/2"]


@pytest.mark.asyncio
async def test_while_the_timer_passes_items_on_the_agent_leaves_its_item_to_it() -> None:
    """No waiting (or spinning) in the agent's task while the timer's send waits for room in
    librdkafka's queue: the timer is told to poll again, and sends the item after its own."""
    h = _Harness({"fast": 1000.0})
    h.stage._timer_due = h.now + 30
    await h.stage._release_lock.acquire()  # the timer task, inside a send
    h.offer("fast")
    await h.stage.pass_on_released()
    assert h.sent == [] and h.stage._alarm._set
    h.stage._release_lock.release()
    await h.stage.release_due()  # the timer's next round
    assert [payload for payload, _ in h.sent] == ["fast#0/0"]


@pytest.mark.asyncio
async def test_partitions_are_acked_independently() -> None:
    h = _Harness({"slow": 1.0, "fast": 1000.0})
    h.offer("slow", partition=0)
    h.offer("slow", partition=0)  # waits
    h.offer("fast", partition=1)
    await h.stage.release_due()
    await h.complete_sends()
    assert sorted(h.acks) == [(0, 0), (1, 0)]


@pytest.mark.asyncio
async def test_revocation_abandons_waiting_records_without_acking_them() -> None:
    h = _Harness({"slow": 1.0, "fast": 1000.0})
    h.offer("fast")  # 0: sending
    h.offer("slow")  # 1: sending (the bucket's one token)
    waiting = h.offer("slow")  # 2: waits
    behind = h.offer("fast")  # 3: sending, but behind a waiting record
    await h.stage.release_due()
    assert len(h.sent) == 3

    h.app.flow_control.revoke()
    # faust waits for every delivered message to be acked or gone: these two must be gone,
    # and not acked (so never committed: the partition's next owner reads them again).
    for event in (waiting, behind):
        assert event.message.acked
        assert event.message not in h.app.consumer.unacked
    await h.complete_sends()
    assert h.acks == [(0, 0), (0, 1)]
    stats = h.stage.stats()
    assert (stats.tracked, stats.queued, stats.abandoned) == (0, 0, 2)
    assert stats.scheduler.queued_messages == 0

    h.now += 5.0
    await h.stage.release_due()
    assert len(h.sent) == 3, "an abandoned record must not be sent by this worker"


@pytest.mark.asyncio
async def test_flow_resume_does_not_drop_anything() -> None:
    h = _Harness({"slow": 1.0})
    h.offer("slow")
    h.offer("slow")
    for queue in h.app.flow_control.queues:  # faust also clears buffers when flow resumes
        queue.clear()
    await h.stage.release_due()
    h.now += 1.0
    await h.stage.release_due()
    await h.complete_sends()
    assert h.acks == [(0, 0), (0, 1)]


@pytest.mark.asyncio
async def test_high_water_pauses_the_backlogged_partition_only() -> None:
    h = _Harness({"slow": 1.0, "fast": 1000.0}, high_water=4, low_water=2)
    for _ in range(5):
        h.offer("slow", partition=0)
    h.offer("fast", partition=1)
    await h.stage.release_due()
    await h.complete_sends()
    assert h.app.consumer.paused == {0}
    assert h.stage.stats().paused_partitions == (0,)

    for _ in range(4):  # one a second
        h.now += 1.0
        await h.stage.release_due()
        await h.complete_sends()
    await h.stage.release_due()  # the tick after the acks notices the low water
    assert h.app.consumer.paused == set()
    assert h.stage.stats().tracked == 0


@pytest.mark.asyncio
async def test_faust_never_commits_past_a_waiting_record() -> None:
    h = _Harness({"slow": 1.0, "fast": 1000.0})
    wanted: dict[Any, int | None] = {}
    h.offer("slow")  # 0: released
    h.offer("slow")  # 1: waits
    h.offer("fast")  # 2
    await h.stage.release_due()
    await h.complete_sends()

    def guarded(tp: TP) -> int | None:  # what the guarded consumer commits, after the caps
        return capped(h.app, tp, wanted.get(tp))

    routed, other = TP("sms.routed", 0), TP("sms.sent", 0)
    # faust wants to commit past record 1 (e.g. records it skipped and acked itself): clamped.
    wanted.update({routed: 3, other: 7})
    assert guarded(routed) == 1
    assert guarded(other) == 7  # other topics are not the stage's business
    assert h.stage.stats().commits_clamped == 1
    h.now += 1.0
    await h.stage.release_due()
    await h.complete_sends()
    assert guarded(routed) == 3
    # Nothing acked in this partition (e.g. just after an assignment): no commit at all.
    wanted[TP("sms.routed", 5)] = 10
    assert guarded(TP("sms.routed", 5)) is None


@pytest.mark.asyncio
async def test_a_new_config_version_retunes_the_lane() -> None:
    h = _Harness({"slow": 1.0})
    h.offer("slow")
    assert h.stage.stats().scheduler.limiters["route:slow"].rate_pps == 1.0
    h.lanes["slow"] = 7.0
    h.version = 1
    await h.stage.release_due()
    assert h.stage.stats().scheduler.limiters["route:slow"].rate_pps == 7.0
    assert h.stage.stats().config_version == 1


# ---------------------------------------------------------------------------------------------
# Tenant lanes (the router)


class _TenantHarness:
    def __init__(self, lanes: dict[str, float]) -> None:
        self.app = App()
        self.now = 1000.0
        self.acks: list[tuple[int, int]] = []
        self.sent: list[tuple[str, asyncio.Future[Any]]] = []
        self.offsets = 0
        self.stage: ScheduledStage[str] = ScheduledStage(
            cast(Any, self.app), name="router", source_topic="sms.submitted", emit=self._emit,
            configure=lambda _o, _t: SchedulerConfig(
                lane_by="tenant", lanes={k: RateLimit(pps=v) for k, v in lanes.items()}
            ),
            version=lambda: 0, clock=lambda: self.now,
        )

    async def _emit(self, payload: str, _released: Released) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.sent.append((payload, future))
        return future

    def offer(self, tenant: str, route: str = "shared") -> None:
        offset, self.offsets = self.offsets, self.offsets + 1
        event = Event(0, offset, self.acks)
        self.app.consumer.unacked.add(event.message)
        ticket = self.stage.track(cast(Any, event))
        self.stage.offer(ticket, f"{tenant}/{offset}", message_id=str(uuid.uuid4()),
                         tenant_id=tenant, tier=Tier.STANDARD, route_id=route,
                         destination=f"+4477009{offset:05d}", parts=1)

    async def complete_sends(self) -> None:
        for _, future in self.sent:
            if not future.done():
                future.set_result(None)
        await asyncio.sleep(0)


@pytest.mark.asyncio
async def test_a_tenant_over_its_rate_waits_while_another_on_the_same_route_flows() -> None:
    h = _TenantHarness({"noisy": 1.0, "quiet": 1000.0})
    for _ in range(3):
        h.offer("noisy")  # offset 0 goes at once (a full bucket of 1); 1 and 2 wait
    h.offer("quiet")  # offset 3: same partition, same route, another tenant
    await h.stage.release_due()
    assert [p for p, _ in h.sent] == ["noisy/0", "quiet/3"]
    await h.complete_sends()
    assert h.acks == [(0, 0)], "acks stay in offset order behind the waiting records"
    limiters = h.stage.stats().scheduler.limiters
    assert limiters["tenant:noisy"].waiting_messages == 2
    assert limiters["tenant:quiet"].blocked == 0

    for _ in range(2):  # one a second: the bucket holds one second's worth
        h.now += 1.0
        await h.stage.release_due()
        await h.complete_sends()
    assert h.acks == [(0, 0), (0, 1), (0, 2), (0, 3)]


@pytest.mark.asyncio
async def test_revocation_still_lets_faust_commit_what_was_passed_on() -> None:
    """faust commits the revoked partitions after clearing the buffers: the stage must not
    refuse that commit, or every rebalance and clean stop re-sends the last commit interval."""
    h = _TenantHarness({"noisy": 1.0, "quiet": 1000.0})
    h.offer("quiet")  # 0
    h.offer("noisy")  # 1: released (a full bucket of 1)
    h.offer("noisy")  # 2: waits
    h.offer("quiet")  # 3: passed on behind a waiting record
    await h.stage.release_due()
    await h.complete_sends()
    assert h.stage.safe_offset(0) == 2
    h.app.flow_control.revoke()
    assert h.stage.safe_offset(0) == 2, "records 0 and 1 are passed on: committable"
    assert h.stage.stats().abandoned == 2
    h.stage._on_assigned(None, set())
    assert h.stage.safe_offset(0) is None, "a new assignment has passed nothing on yet"
