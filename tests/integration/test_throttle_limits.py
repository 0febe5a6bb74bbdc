"""The throttle's rate limits on the real broker, with the simulator (issue 4).

On a real stack (one partition, so every route shares the partition and the worker): no
head-of-line blocking, enforcement over 10 s windows, a live tps change, and a worker SIGKILL
while items wait in the throttle. The stage's bookkeeping (in-order acks, revocation, memory)
against a fake faust app is in tests/unit/pipeline/test_scheduling.py.

Rates are computed from record timestamps (``throttled_at``, set from the scheduler's release
time, and the Kafka timestamp of each ``sms.throttled`` record), never from how fast this machine
runs the test.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError

from connectors.producer import new_request
from schemas.models import RoutedMessage, SubmitRequest
from smsflow.config.kafka_io import apply_config
from smsflow.config.store import load_yaml
from smsflow.devstack.flowrun import run_flow, warm_up
from smsflow.devstack.harness import isolated_settings, prepared_stack
from smsflow.devstack.stack import LocalStack
from smsflow.settings import Settings
from smsflow.topics import CONFIG, ROUTED, THROTTLED, topic_name
from tests.paths import SIM_CONFIG

PLATFORM = Path(__file__).resolve().parent / "data" / "throttle-limits.yaml"

# ---------------------------------------------------------------------------------------------
# A real stack: broker, worker, sender, simulator


@pytest.fixture(scope="module")
def limits_settings(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    # One partition: every route shares the partition (and the worker) with every other.
    return isolated_settings(kafka_bootstrap, tmp_path_factory.mktemp("limits"), "limits", 1)


@pytest.fixture(scope="module")
def limits_stack(limits_settings: Settings) -> Iterator[LocalStack]:
    with prepared_stack(
        limits_settings, platform_config=PLATFORM, sim_config=SIM_CONFIG
    ) as stack:
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
    slow = _requests("tenant-a", "+447700", 100, "backlog")  # route slow: 5/s, 20 s of backlog
    fast = _requests("tenant-b", "+447701", 100, "urgent")  # route fast, produced right after
    result = run_flow(limits_settings, [*slow, *fast], timeout_s=180)
    limits_stack.check_alive()
    assert result.lost == 0, f"no terminal state for {result.missing[:5]}"

    records = _throttled(limits_settings, {r.message_id for r in [*slow, *fast]})
    assert len(records) == 200

    def waits(requests: list[SubmitRequest]) -> list[float]:
        out = []
        for request in requests:
            routed, _ = records[request.message_id]
            assert routed.throttled_at is not None
            out.append((routed.throttled_at - routed.routed_at).total_seconds())
        return sorted(out)

    slow_waits, fast_waits = waits(slow), waits(fast)
    print(f"\nslow route waits: p50 {slow_waits[50]:.2f}s max {slow_waits[-1]:.2f}s; "
          f"fast route waits: p50 {fast_waits[50]:.3f}s max {fast_waits[-1]:.3f}s")
    assert slow_waits[-1] > 15.0, "the slow route should have had a backlog of ~20 s"
    # The fast route's records sit behind 100 slow ones in the same partition, and still pass.
    assert fast_waits[-1] < 2.0

    def last_release(requests: list[SubmitRequest]) -> float:
        stamps = (records[r.message_id][0].throttled_at for r in requests)
        return max(stamp.timestamp() for stamp in stamps if stamp is not None)

    assert last_release(slow) - last_release(fast) > 10.0


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
    # Route drill: 10/s, 20 s. Crashed after 40, ~160 still wait in the throttle (>= 100 checked).
    requests = _requests("tenant-a", "+1206555", 200, "drill")
    crashed: list[tuple[int, int]] = []

    def crash_once(counts: dict[str, int], terminal: int) -> None:
        if not crashed and terminal >= 40:
            crashed.append((terminal, counts[ROUTED] - counts[THROTTLED]))
            limits_stack.crash_and_restart("worker-0")

    result = run_flow(limits_settings, requests, timeout_s=240, on_progress=crash_once)
    print(f"\ncrashed at (terminal, waiting in the throttle) = {crashed}; {result.summary()}")
    assert crashed, "the drill never crashed the worker"
    _, waiting_at_crash = crashed[0]
    assert waiting_at_crash >= 100, "the crash should hit while many items wait in the throttle"
    assert result.lost == 0, f"{result.lost} messages lost, e.g. {result.missing[:3]}"
    limits_stack.check_alive()
