"""Tenant limits and daily quotas at the router, on the real broker with the simulator (issue 4).

On a real stack (one partition, so every tenant shares the partition and the worker): a tenant
over its rate waits while another tenant flows, its rate over 10 s windows, ``QUOTA_EXCEEDED``
rejections, quota usage surviving a worker restart, and a worker SIGKILL while records wait in a
tenant lane. The stage with tenant lanes against a fake faust app is in
tests/unit/pipeline/test_scheduling.py.

Rates and waits come from record timestamps (``routed_at`` is the tenant lane's release time),
never from how fast this machine runs the test.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError

from connectors.producer import new_request
from pipeline.quota_table import decode_row
from schemas.models import Rejection, RoutedMessage, SubmitRequest
from smsflow.devstack.flowrun import run_flow, warm_up
from smsflow.devstack.harness import isolated_settings, prepared_stack
from smsflow.devstack.stack import LocalStack
from smsflow.settings import Settings
from smsflow.topics import REJECTED, ROUTED, SUBMITTED, topic_name
from tests.paths import SIM_CONFIG

PLATFORM = Path(__file__).resolve().parent / "data" / "router-limits.yaml"

# ---------------------------------------------------------------------------------------------
# A real stack: broker, worker, sender, simulator


@pytest.fixture(scope="module")
def router_settings(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    # One partition: every tenant shares the partition (and the worker) with every other.
    return isolated_settings(kafka_bootstrap, tmp_path_factory.mktemp("router"), "router", 1)


@pytest.fixture(scope="module")
def router_stack(router_settings: Settings) -> Iterator[LocalStack]:
    with prepared_stack(
        router_settings, platform_config=PLATFORM, sim_config=SIM_CONFIG
    ) as stack:
        warm_up(router_settings, timeout_s=120)
        yield stack


def _read(settings: Settings, stage: str) -> list[tuple[bytes, float]]:
    """Every record value of a stage's topic with its Kafka timestamp (s)."""
    consumer = Consumer({
        "bootstrap.servers": settings.kafka_bootstrap,
        "group.id": f"router-reader-{uuid.uuid4()}",
        "auto.offset.reset": "earliest",
        "enable.partition.eof": True,
    })
    topic = topic_name(settings, stage)
    consumer.subscribe([topic])
    out: list[tuple[bytes, float]] = []
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
            value = message.value()
            assert value is not None
            out.append((value, message.timestamp()[1] / 1000.0))
    finally:
        consumer.close()
    return out


def _changelog_rows(settings: Settings, table: str, key: bytes) -> list[bytes | None]:
    """Every value the table's changelog (faust's topic, not ours) holds for ``key``, in order."""
    topic = f"{settings.app_id}-{table}-changelog"
    consumer = Consumer({
        "bootstrap.servers": settings.kafka_bootstrap,
        "group.id": f"changelog-reader-{uuid.uuid4()}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
    })
    consumer.subscribe([topic])
    rows: list[bytes | None] = []
    try:
        while True:  # one partition (router_settings)
            message = consumer.poll(10)
            assert message is not None, f"timed out reading {topic}"
            error = message.error()
            if error is not None:
                assert error.code() == KafkaError._PARTITION_EOF, error
                return rows
            if message.key() == key:
                rows.append(message.value())
    finally:
        consumer.close()


def _routed(settings: Settings, ids: set[str]) -> dict[str, RoutedMessage]:
    found: dict[str, RoutedMessage] = {}
    for value, _ in _read(settings, ROUTED):
        routed = RoutedMessage.from_avro(value)
        if routed.request.message_id in ids:
            found.setdefault(routed.request.message_id, routed)
    return found


def _rejections(settings: Settings, ids: set[str]) -> dict[str, Rejection]:
    found: dict[str, Rejection] = {}
    for value, _ in _read(settings, REJECTED):
        rejection = Rejection.from_avro(value)
        if rejection.message_id in ids:
            found.setdefault(rejection.message_id, rejection)
    return found


def _requests(tenant: str, prefix: str, count: int, body: str) -> list[SubmitRequest]:
    width = 13 - len(prefix)  # +447700 / +447701: valid UK mobile numbers, 13 characters
    return [new_request(tenant, f"{prefix}{n:0{width}d}", f"{body} {n}") for n in range(count)]


def _window_rates(times: list[float], start: float, end: float, width: float = 10.0,
                  step: float = 0.25) -> list[float]:
    rates = []
    s = start
    while s + width <= end:
        rates.append(sum(1 for t in times if s <= t < s + width) / width)
        s += step
    return rates


@pytest.mark.slow
def test_a_tenant_over_its_rate_waits_while_another_tenant_flows(
    router_settings: Settings, router_stack: LocalStack
) -> None:
    slow = _requests("slow-tenant", "+447700", 100, "backlog")  # 5/s: a 20 s backlog
    fast = _requests("fast-tenant", "+447700", 100, "urgent")  # same route, produced after
    result = run_flow(router_settings, [*slow, *fast], timeout_s=180)
    router_stack.check_alive()
    assert result.lost == 0, f"no terminal state for {result.missing[:5]}"

    routed = _routed(router_settings, {r.message_id for r in [*slow, *fast]})
    assert len(routed) == 200

    def waits(requests: list[SubmitRequest]) -> list[float]:
        return sorted(
            (routed[r.message_id].routed_at - r.submitted_at).total_seconds() for r in requests
        )

    slow_waits, fast_waits = waits(slow), waits(fast)
    print(f"\nslow tenant: submit → routed p50 {slow_waits[50]:.2f}s max {slow_waits[-1]:.2f}s; "
          f"fast tenant: p50 {fast_waits[50]:.3f}s max {fast_waits[-1]:.3f}s")
    assert slow_waits[-1] > 15.0, "the slow tenant should have had a backlog of ~20 s"
    # The fast tenant's records sit behind 100 slow ones in the same partition, and still pass.
    assert fast_waits[-1] < 2.0

    released = sorted(routed[r.message_id].routed_at.timestamp() for r in slow)
    # The lane's bucket starts full (one second's worth): from one second on, the rate is 5/s.
    rates = _window_rates(released, released[0] + 1.0, released[-1])
    print(f"slow tenant released at {min(rates):.2f}-{max(rates):.2f}/s over 10 s windows")
    assert rates and 4.75 <= min(rates) and max(rates) <= 5.25


@pytest.mark.slow
def test_a_tenant_past_its_daily_quota_is_rejected_with_quota_exceeded(
    router_settings: Settings, router_stack: LocalStack
) -> None:
    requests = _requests("quota-tenant", "+447701", 30, "q")  # daily_quota 20, one part each
    result = run_flow(router_settings, requests, timeout_s=120)
    assert result.lost == 0
    assert result.rejection_codes == {"QUOTA_EXCEEDED": 10}
    assert sum(result.statuses.values()) == 20
    rejections = _rejections(router_settings, {r.message_id for r in requests})
    assert len(rejections) == 10
    sample = next(iter(rejections.values()))
    assert sample.stage == "router"
    assert sample.tenant_id == "quota-tenant"
    assert sample.reason == (
        "tenant quota-tenant used 20 of its daily quota of 20 parts; this message needs 1"
    )
    assert sample.original is not None, "the rejected record keeps the original bytes"
    # The 20 charges came in one burst: the table's changelog holds their last row, not 20
    # (changes are held until the commit and written once per key, pipeline/changelog_cache.py).
    deadline = time.monotonic() + 30  # written at the next commit (faust's: every 2.8 s)
    while True:
        rows = _changelog_rows(router_settings, "tenant-quota", b'"quota-tenant"')
        last = decode_row(rows[-1]) if rows else None
        if (last is not None and last.usage.used == 20) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert last is not None and last.usage.used == 20, rows
    assert len(rows) <= 5, f"{len(rows)} changelog records for 20 changes of one row"


@pytest.mark.slow
def test_quota_usage_survives_a_worker_restart(
    router_settings: Settings, router_stack: LocalStack
) -> None:
    first = _requests("restart-tenant", "+447701", 6, "before")  # daily_quota 10
    assert run_flow(router_settings, first, timeout_s=120).rejection_codes == {}
    worker = next(p for p in router_stack.processes if p.name == "worker-0")
    assert worker.stop() == 0
    worker.start(router_stack.env)
    second = _requests("restart-tenant", "+447701", 6, "after")
    result = run_flow(router_settings, second, timeout_s=180)
    print(f"\nafter the restart: {result.summary()}")
    assert result.lost == 0
    # 6 of 10 parts were used before the restart: 4 more fit, 2 do not.
    assert result.rejection_codes == {"QUOTA_EXCEEDED": 2}
    assert sum(result.statuses.values()) == 4


@pytest.mark.slow
def test_worker_sigkill_while_records_wait_in_a_tenant_lane_loses_nothing(
    router_settings: Settings, router_stack: LocalStack
) -> None:
    """Last in the module: it crashes the worker.

    The tenant's daily quota is exactly the 200 messages sent. Everything after the oldest
    waiting record is read again after the crash, all of it charged already: a second charge
    would push the tenant past its quota and reject the tail with ``QUOTA_EXCEEDED``.
    """
    # 10/s: 20 s of backlog. Crashed after 40, ~160 still wait: enough to show a replay of many
    # waiting records, without paying for more backlog than the check needs.
    requests = _requests("drill-tenant", "+447700", 200, "drill")
    crashed: list[tuple[int, int]] = []

    def crash_once(counts: dict[str, int], terminal: int) -> None:
        if not crashed and terminal >= 40:
            crashed.append((terminal, counts[SUBMITTED] - counts[ROUTED]))
            router_stack.crash_and_restart("worker-0")

    result = run_flow(router_settings, requests, timeout_s=240, on_progress=crash_once)
    print(f"\ncrashed at (terminal, waiting in the router) = {crashed}; {result.summary()}")
    assert crashed, "the drill never crashed the worker"
    _, waiting_at_crash = crashed[0]
    assert waiting_at_crash >= 100, "the crash should hit while many records wait in the lane"
    assert result.lost == 0, f"{result.lost} messages lost, e.g. {result.missing[:3]}"
    assert result.rejection_codes == {}, "replayed records were charged to the quota again"
    router_stack.check_alive()
