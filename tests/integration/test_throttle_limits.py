"""The throttle's rate limits on the real broker, with the simulator (issue 4).

* The stage's bookkeeping (in-order acks, revocation, memory) against a fake faust app: fast.
* On a real stack (one partition, so every route shares the partition and the worker):
  no head-of-line blocking, enforcement over 10 s windows, a live tps change, and a worker
  SIGKILL while items wait in the throttle.

Rates are computed from record timestamps (``throttled_at``, set from the scheduler's release
time, and the Kafka timestamp of each ``sms.throttled`` record), never from how fast this machine
runs the test.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from confluent_kafka import Consumer, KafkaError
from faust.types import TP

from connectors.producer import new_request
from pipeline.faust_patches.commit_hooks import capped
from pipeline.scheduling import ScheduledStage
from schemas.models import RoutedMessage, SubmitRequest
from smsflow.config.kafka_io import apply_config
from smsflow.config.models import Tier
from smsflow.config.store import load_yaml
from smsflow.domain.limits import RateLimit, Released, SchedulerConfig
from smsflow.flowrun import run_flow, warm_up
from smsflow.harness import isolated_settings, prepared_stack
from smsflow.settings import Settings
from smsflow.stack import LocalStack
from smsflow.topics import CONFIG, ROUTED, THROTTLED, topic_name

PLATFORM = Path(__file__).resolve().parent / "data" / "throttle-limits.yaml"

# ---------------------------------------------------------------------------------------------
# The stage against a fake faust app (no broker)


class _Message:
    def __init__(self, partition: int, offset: int) -> None:
        self.topic = "sms.routed"
        self.partition = partition
        self.offset = offset
        self.acked = False


class _Event:
    def __init__(self, partition: int, offset: int, acks: list[tuple[int, int]]) -> None:
        self.message = _Message(partition, offset)
        self._acks = acks

    def ack(self) -> bool:
        self._acks.append((self.message.partition, self.message.offset))
        return True


class _Flow:
    def __init__(self) -> None:
        self.active = True
        self.queues: list[Any] = []

    def manage_queue(self, queue: Any) -> None:
        self.queues.append(queue)

    def is_active(self) -> bool:
        return self.active

    def revoke(self) -> None:
        """What faust does at revocation: suspend, then clear every managed buffer."""
        self.active = False
        for queue in self.queues:
            queue.clear()


class _Signal:
    def __init__(self) -> None:
        self.receivers: list[Any] = []

    def connect(self, receiver: Any) -> None:
        self.receivers.append(receiver)


class _Consumer:
    def __init__(self) -> None:
        self.unacked: set[Any] = set()
        self.paused: set[int] = set()

    def pause_partitions(self, tps: Any) -> None:
        self.paused |= {tp.partition for tp in tps}

    def resume_partitions(self, tps: Any) -> None:
        self.paused -= {tp.partition for tp in tps}

    def topic_partitions(self, _topic: str) -> int | None:
        return None


class _App:
    def __init__(self) -> None:
        self.flow_control = _Flow()
        self.consumer = _Consumer()
        self.on_partitions_revoked = _Signal()
        self.on_partitions_assigned = _Signal()


class _Harness:
    """A stage on a fake app with a manual clock; every emit's future completes on demand."""

    def __init__(self, lanes: dict[str, float], **kwargs: Any) -> None:
        self.app = _App()
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
        self.events: list[_Event] = []

    def _configure(self, _owned: int, _total: int) -> SchedulerConfig:
        return SchedulerConfig(
            lane_by="route", lanes={k: RateLimit(pps=v) for k, v in self.lanes.items()}
        )

    async def _emit(self, payload: str, _released: Released) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.sent.append((payload, future))
        return future

    def offer(self, route: str, partition: int = 0) -> _Event:
        offset = sum(1 for e in self.events if e.message.partition == partition)
        event = _Event(partition, offset, self.acks)
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
# A real stack: broker, worker, sender, simulator


@pytest.fixture(scope="module")
def limits_settings(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    # One partition: every route shares the partition (and the worker) with every other.
    return isolated_settings(kafka_bootstrap, tmp_path_factory.mktemp("limits"), "limits", 1)


@pytest.fixture(scope="module")
def limits_stack(limits_settings: Settings) -> Iterator[LocalStack]:
    with prepared_stack(limits_settings, platform_config=PLATFORM) as stack:
        warm_up(limits_settings, timeout_s=120)
        yield stack


def _throttled(settings: Settings, ids: set[str]) -> dict[str, tuple[RoutedMessage, float]]:
    """``message_id → (record, Kafka timestamp in s)`` for ``ids`` on ``sms.throttled``."""
    consumer = Consumer({
        "bootstrap.servers": settings.kafka_bootstrap,
        "group.id": f"limits-reader-{uuid.uuid4()}",
        "auto.offset.reset": "earliest",
        "enable.partition.eof": True,
    })
    topic = topic_name(settings, THROTTLED)
    consumer.subscribe([topic])
    found: dict[str, tuple[RoutedMessage, float]] = {}
    eof: set[int] = set()
    partitions = len(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
    try:
        while len(eof) < partitions:
            message = consumer.poll(10)
            assert message is not None, f"timed out reading {topic}"
            error = message.error()
            if error is not None:
                assert error.code() == KafkaError._PARTITION_EOF, error
                eof.add(message.partition() or 0)
                continue
            routed = RoutedMessage.from_avro(message.value())
            if routed.request.message_id in ids and routed.request.message_id not in found:
                found[routed.request.message_id] = (routed, message.timestamp()[1] / 1000.0)
    finally:
        consumer.close()
    return found


#: Valid mobile numbers (the router checks them with phonenumbers), as in flowrun.make_traffic:
#: prefix → total length with the '+'.
_LENGTH = {"+447700": 13, "+447701": 13, "+4915112": 14, "+4916212": 13, "+1206555": 12}


def _requests(tenant: str, prefix: str, count: int, body: str) -> list[SubmitRequest]:
    width = _LENGTH[prefix] - len(prefix)
    return [new_request(tenant, f"{prefix}{n:0{width}d}", f"{body} {n}") for n in range(count)]


def _window_counts(times: list[float], start: float, end: float, width: float = 10.0,
                   step: float = 0.25) -> list[int]:
    """Releases in every ``[s, s + width)`` for ``s`` from ``start`` to ``end - width``."""
    counts = []
    s = start
    while s + width <= end:
        counts.append(sum(1 for t in times if s <= t < s + width))
        s += step
    return counts


@pytest.mark.slow
def test_a_saturated_route_does_not_delay_another_route_on_its_partition(
    limits_settings: Settings, limits_stack: LocalStack
) -> None:
    slow = _requests("tenant-a", "+447700", 150, "backlog")  # route slow: 5/s, 30 s of backlog
    fast = _requests("tenant-b", "+447701", 100, "urgent")  # route fast, produced right after
    result = run_flow(limits_settings, [*slow, *fast], timeout_s=180)
    limits_stack.check_alive()
    assert result.lost == 0, f"no terminal state for {result.missing[:5]}"

    records = _throttled(limits_settings, {r.message_id for r in [*slow, *fast]})
    assert len(records) == 250

    def waits(requests: list[SubmitRequest]) -> list[float]:
        out = []
        for request in requests:
            routed, _ = records[request.message_id]
            assert routed.throttled_at is not None
            out.append((routed.throttled_at - routed.routed_at).total_seconds())
        return sorted(out)

    slow_waits, fast_waits = waits(slow), waits(fast)
    print(f"\nslow route waits: p50 {slow_waits[75]:.2f}s max {slow_waits[-1]:.2f}s; "
          f"fast route waits: p50 {fast_waits[50]:.3f}s max {fast_waits[-1]:.3f}s")
    assert slow_waits[-1] > 20.0, "the slow route should have had a backlog of ~30 s"
    # The fast route's records sit behind 150 slow ones in the same partition, and still pass.
    assert fast_waits[-1] < 2.0

    def last_release(requests: list[SubmitRequest]) -> float:
        stamps = (records[r.message_id][0].throttled_at for r in requests)
        return max(stamp.timestamp() for stamp in stamps if stamp is not None)

    assert last_release(slow) - last_release(fast) > 15.0


@pytest.mark.slow
def test_a_route_is_released_within_five_percent_of_its_limit_over_10s_windows(
    limits_settings: Settings, limits_stack: LocalStack
) -> None:
    tps = 50.0
    requests = _requests("tenant-a", "+4915112", 1000, "metered")  # route metered: 50/s
    result = run_flow(limits_settings, requests, timeout_s=180)
    assert result.lost == 0

    records = _throttled(limits_settings, {r.message_id for r in requests})
    assert len(records) == len(requests)
    released = sorted(
        r.throttled_at.timestamp() for r, _ in records.values() if r.throttled_at is not None
    )
    stamped = sorted(ts for _, ts in records.values())
    for name, times in (("throttled_at", released), ("Kafka timestamp", stamped)):
        t0, t_end = times[0], times[-1]
        # The bucket starts full (one second's worth): from one second on, the rate is the limit.
        steady = _window_counts(times, t0 + 1.0, t_end)
        assert steady, f"{name}: releases spanned only {t_end - t0:.1f}s"
        low, high = min(steady) / 10.0, max(steady) / 10.0
        print(f"\n{name}: 10 s windows from t0+1s: {low:.1f}-{high:.1f}/s (limit {tps}); "
              f"span {t_end - t0:.1f}s")
        assert tps * 0.95 <= low and high <= tps * 1.05
        # Any 10 s window, including the start: at most the limit plus one burst.
        assert max(_window_counts(times, t0, t_end + 10.0)) <= tps * 10 + tps + 1


@pytest.mark.slow
def test_a_tps_change_applies_live(limits_settings: Settings, limits_stack: LocalStack) -> None:
    config = load_yaml(PLATFORM)
    port = limits_stack.sim_port
    config = config.model_copy(update={
        "smscs": tuple(s.model_copy(update={"port": port}) for s in config.smscs),
        "routes": tuple(
            r.model_copy(update={"tps": 20.0}) if r.id == "de-other" else r
            for r in config.routes
        ),
    })
    apply_config(limits_settings.kafka_bootstrap, topic_name(limits_settings, CONFIG), config)
    requests = _requests("tenant-b", "+4916212", 300, "retuned")  # route de-other: 1000 → 20/s
    result = run_flow(limits_settings, requests, timeout_s=120)
    assert result.lost == 0
    records = _throttled(limits_settings, {r.message_id for r in requests})
    times = sorted(
        r.throttled_at.timestamp() for r, _ in records.values() if r.throttled_at is not None
    )
    steady = _window_counts(times, times[0] + 1.0, times[-1])
    print(f"\nretuned route: 10 s windows {min(steady) / 10:.1f}-{max(steady) / 10:.1f}/s")
    assert 19.0 <= min(steady) / 10.0 and max(steady) / 10.0 <= 21.0


@pytest.mark.slow
def test_worker_stop_while_items_wait_is_clean_and_loses_nothing(
    limits_settings: Settings, limits_stack: LocalStack
) -> None:
    """faust waits for every delivered event to be acked before it stops (or hands partitions
    over); the stage must let go of the waiting ones, or the stop hangs until SIGKILL."""
    requests = _requests("tenant-b", "+1206555", 200, "stop")  # route drill: 10/s, 20 s
    worker = next(p for p in limits_stack.processes if p.name == "worker-0")
    stopped: list[tuple[int, int, int | None]] = []

    def stop_once(counts: dict[str, int], terminal: int) -> None:
        if not stopped and terminal >= 30:
            waiting = counts[ROUTED] - counts[THROTTLED]
            code = worker.stop()  # SIGTERM; SIGKILL after 20 s
            stopped.append((terminal, waiting, code))
            worker.start(limits_stack.env)

    result = run_flow(limits_settings, requests, timeout_s=240, on_progress=stop_once)
    print(f"\nstopped at (terminal, waiting in the throttle, exit code) = {stopped}; "
          f"{result.summary()}")
    assert stopped, "the drill never stopped the worker"
    _, waiting, code = stopped[0]
    assert waiting >= 100, "the stop should come while many items wait in the throttle"
    assert code == 0, "the worker did not stop by itself (it was killed)"
    assert result.lost == 0, f"{result.lost} messages lost, e.g. {result.missing[:3]}"
    limits_stack.check_alive()


@pytest.mark.slow
def test_worker_sigkill_while_items_wait_loses_nothing(
    limits_settings: Settings, limits_stack: LocalStack
) -> None:
    """Last in the module: it restarts the worker."""
    requests = _requests("tenant-a", "+1206555", 300, "drill")  # route drill: 10/s, 30 s
    crashed: list[tuple[int, int]] = []

    def crash_once(counts: dict[str, int], terminal: int) -> None:
        if not crashed and terminal >= 60:
            crashed.append((terminal, counts[ROUTED] - counts[THROTTLED]))
            limits_stack.crash_and_restart("worker-0")

    result = run_flow(limits_settings, requests, timeout_s=240, on_progress=crash_once)
    print(f"\ncrashed at (terminal, waiting in the throttle) = {crashed}; {result.summary()}")
    assert crashed, "the drill never crashed the worker"
    _, waiting_at_crash = crashed[0]
    assert waiting_at_crash >= 100, "the crash should hit while many items wait in the throttle"
    assert result.lost == 0, f"{result.lost} messages lost, e.g. {result.missing[:3]}"
    limits_stack.check_alive()
