"""Chaos drills at the pipeline's edges, small versions of bench/chaos.py's (chaos_edges.py):

* the webhooks connector SIGKILLed mid-stream: every report still reaches its tenant's webhook
  (at least once);
* the API SIGKILLed while clients post: every 2xx ends terminal, requests without an answer
  are retried with their ``Idempotency-Key`` and produce no second report;
* the broker refusing the sender's ``sms.sent``: the sender stays up, takes no new work and
  commits nothing past the refused outcomes, and delivers everything once writes are accepted
  again (before the fix in connectors/sender/store_retry.py those messages never ended);
* the broker refusing the worker's ``sms.routed``: the worker stops with its sources
  uncommitted; started again after the refusal, it delivers everything.

Real broker, real processes (worker, sender, SMSC simulator, webhooks, API).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from api.settings import ApiSettings, resolve_pepper
from api.tenants_cli import create_key
from connectors.producer import SmsProducer
from schemas.models import DeliveryReport, SubmitRequest
from smsflow.devstack.api_drill import ApiDrillResult, post_all
from smsflow.devstack.demo_api import pepper_file, start_api
from smsflow.devstack.drills import (
    HookReceiver,
    accept_produce,
    committed_total,
    records_total,
    refuse_produce,
    start_webhooks,
    terminal_counts,
    with_webhooks,
)
from smsflow.devstack.flowrun import make_traffic, run_flow, warm_up
from smsflow.devstack.harness import free_port, isolated_settings, prepared_stack, read_all
from smsflow.devstack.stack import LocalStack
from smsflow.kafka_security import kafka_connection
from smsflow.settings import Settings
from smsflow.topics import DLR, DLR_RAW, ROUTED, SENT, SUBMITTED, THROTTLED, topic_name
from tests.integration.waiting import log_shows, wait_until
from tests.paths import PLATFORM_CONFIG, SIM_CONFIG

pytestmark = pytest.mark.slow

HOLD_S = 4.0  # how long a refused writer must keep still to count as waiting


@pytest.fixture
def settings(kafka_bootstrap: str, tmp_path: Path) -> Settings:
    return isolated_settings(kafka_bootstrap, tmp_path, "edge")


@pytest.fixture
def stack(settings: Settings) -> Iterator[LocalStack]:
    with prepared_stack(settings, platform_config=PLATFORM_CONFIG, sim_config=SIM_CONFIG) as stack:
        warm_up(settings, timeout_s=120)
        yield stack


def _produce(settings: Settings, requests: list[SubmitRequest]) -> None:
    producer = SmsProducer(kafka_connection(settings), topic_name(settings, SUBMITTED))
    for request in requests:
        producer.submit(request)
    assert producer.flush(30) == 0 and not producer.failed


def _stays(condition: Callable[[], bool], hold_s: float) -> bool:
    """True if ``condition()`` holds at every check for ``hold_s``: a state that must last
    (a writer keeping still), not an event to wait for."""
    until = time.monotonic() + hold_s
    while time.monotonic() < until:
        if not condition():
            return False
        time.sleep(0.25)
    return condition()


def test_webhooks_connector_killed_mid_stream_delivers_every_report(
    settings: Settings,
) -> None:
    # Answers 100 reports, then holds the next POSTs until the connector has been killed.
    with HookReceiver(hold_after=100) as receiver, prepared_stack(
        settings, platform_config=PLATFORM_CONFIG, sim_config=SIM_CONFIG,
        edit_config=lambda config: with_webhooks(config, receiver),
    ) as stack:
        start_webhooks(stack)
        warm_up(settings, timeout_s=120)
        requests = make_traffic(600, seed=14)
        ids = {r.message_id for r in requests}
        killed: list[int] = []

        def kill_once(_counts: dict[str, int], _terminal: int) -> None:
            answered = len(ids & set(receiver.delivered()))
            if not killed and answered >= 100:
                killed.append(answered)
                stack.crash_and_restart("webhooks")
                receiver.release()

        result = run_flow(settings, requests, timeout_s=120, on_progress=kill_once)
        assert result.lost == 0, result.missing[:3]
        reported = {DeliveryReport.from_avro(v).message_id for v in read_all(settings, DLR)} & ids
        if not killed:  # the callbacks lagged the reports: kill now, mid-stream all the same
            answered = len(ids & set(receiver.delivered()))
            assert answered < len(reported), "every callback came before the kill could"
            killed.append(answered)
            stack.crash_and_restart("webhooks")
            receiver.release()
        wait_until(lambda: reported <= set(receiver.delivered()), timeout_s=90,
                   what="every report POSTed to its webhook after the restart")
        stack.check_alive()
    delivered = receiver.delivered()
    print(f"\nkilled after {killed[0]} callbacks; {len(reported)} reports; "
          f"{sum(delivered[i] - 1 for i in reported)} sent twice (at-least-once)")
    assert 0 < killed[0] < len(reported)


def test_api_killed_while_clients_post_loses_and_duplicates_nothing(
    settings: Settings, stack: LocalStack,
) -> None:
    port = free_port()
    keys = {"acme-bank": start_api(stack, settings, port)}
    pepper = resolve_pepper(ApiSettings(key_pepper_file=pepper_file(settings.home)))
    requests = make_traffic(300, seed=41)
    for tenant in {r.tenant_id for r in requests} - set(keys):
        keys[tenant] = create_key(settings, pepper, tenant, label="drill")[0]
    base_url = f"http://127.0.0.1:{port}"
    probes = asyncio.run(post_all(base_url, keys, requests[:3], key_prefix="probe",
                                  timeout_s=60))
    assert not probes.unanswered and not probes.refused, "the API never took the keys"
    restarts: list[asyncio.Future[None]] = []

    def kill_once(answered: int) -> None:
        if not restarts and answered >= 60:
            restarts.append(asyncio.get_running_loop().run_in_executor(
                None, stack.crash_and_restart, "api"))

    async def post() -> ApiDrillResult:
        result = await post_all(base_url, keys, requests, timeout_s=120, on_answer=kill_once)
        for restart in restarts:
            await restart
        return result

    posted = asyncio.run(post())
    assert restarts, "the API was never killed"
    assert posted.unanswered == [] and posted.refused == {}
    assert posted.id_mismatches == [], "a replayed answer carried another message id"
    assert posted.retried > 0, "no request was in flight when the API died"
    accepted = set(posted.accepted.values())
    records, statuses = terminal_counts(settings, accepted, timeout_s=120)
    print(f"\n{posted.retried} requests retried ({dict(posted.failures)}); {dict(statuses)}")
    assert accepted - set(records) == set(), "accepted messages without a terminal state"
    assert [i for i, n in records.items() if n > 1] == [], "a message reported twice"
    stack.check_alive()


def test_sender_waits_while_the_broker_refuses_its_outcomes(
    settings: Settings, stack: LocalStack,
) -> None:
    group = f"{settings.app_id}-sender"
    throttled = records_total(settings, THROTTLED)  # the sender may commit up to here
    outcomes = records_total(settings, SENT)
    receipts = records_total(settings, DLR_RAW)
    sender_log = next(p.log_path for p in stack.processes if p.name == "sender")
    requests = make_traffic(200, seed=7)
    refuse_produce(settings, SENT)
    try:
        _produce(settings, requests)
        # The parts reach the SMSC (receipts come back) but no outcome is stored.
        wait_until(lambda: records_total(settings, DLR_RAW) > receipts, timeout_s=60,
                   what="the sender submitting while sms.sent refuses writes")
        log_shows(sender_log, r"not stored", timeout_s=30)  # the sender saw the refusal
        assert _stays(lambda: records_total(settings, SENT) == outcomes
                      and committed_total(settings, group, THROTTLED) <= throttled
                      and "sender" in stack.pids(), HOLD_S), \
            "the sender committed, stored or died while its outcomes were refused"
    finally:
        accept_produce(settings, SENT)
    records, _statuses = terminal_counts(settings, {r.message_id for r in requests},
                                         timeout_s=90)
    assert len(records) == len(requests), "messages without a terminal state"
    assert max(records.values()) == 1
    stack.check_alive()


def test_worker_stops_while_the_broker_refuses_its_output_and_delivers_after(
    settings: Settings, stack: LocalStack,
) -> None:
    submitted = records_total(settings, SUBMITTED)  # the worker may commit up to here
    requests = make_traffic(100, seed=8)
    worker = next(p for p in stack.processes if p.name == "worker-0")
    refuse_produce(settings, ROUTED)
    try:
        _produce(settings, requests)
        wait_until(lambda: not worker.alive(), timeout_s=60,
                   what="the worker stopping on a refused output")
        assert worker.process is not None and worker.process.returncode != 0
        assert committed_total(settings, settings.app_id, SUBMITTED) <= submitted, \
            "the worker committed sources whose outputs were refused"
    finally:
        accept_produce(settings, ROUTED)
    stack.crash_and_restart("worker-0")  # what its supervisor does
    records, _statuses = terminal_counts(settings, {r.message_id for r in requests},
                                         timeout_s=120)
    assert len(records) == len(requests), "messages without a terminal state"
    stack.check_alive()
