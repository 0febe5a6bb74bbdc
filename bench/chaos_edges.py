"""The chaos drills at the pipeline's edges, run by bench/chaos.py like the others:

* ``webhooks-sigkill``: the webhooks connector (``smsflow webhooks run``) POSTs every report to
  a receiver in this process; once ``--kill-at`` of the messages' callbacks were answered it is
  SIGKILLed and started again. Every report on ``sms.dlr`` must reach its tenant's webhook at
  least once (``webhook_lost`` 0, counted into ``lost``); ``webhook_duplicates`` counts the
  callbacks beyond the first (at-least-once by design: docs/webhooks.md).
* ``api-sigkill``: the traffic goes in over HTTP (``smsflow api``) with an ``Idempotency-Key``
  per message, 16 clients at a time; once ``--kill-at`` of the requests were answered the API is
  SIGKILLed and started again. Requests that got no answer are retried with the same key until
  they get one. Every 2xx must end terminal (``lost``), no request may stay unanswered, a
  replayed answer must carry the first attempt's id (``id_mismatches``);
  ``submitted_twice`` counts message ids that reached ``sms.submitted`` twice (the API died
  between storing the message and storing its answer: allowed, docs/api.md#idempotency),
  ``duplicate_reports`` / ``duplicate_submits`` what that cost downstream.
* ``produce-refused-sender`` / ``produce-refused-worker``: the traffic is produced evenly over
  ``PACE_S``; ``--kill-at`` of that time in, the broker refuses every produce to ``sms.sent``
  (the sender's output) or ``sms.routed`` (the worker router's) for ``--refuse-for-s`` seconds:
  the topic's ``max.message.bytes`` set to 1, so each batch is answered MSG_SIZE_TOO_LARGE, a
  broker that will not take writes (smsflow/devstack/drills.py says why not
  ``min.insync.replicas``). Reads go on. The writer must not commit its sources meanwhile
  (``source_commits_while_refused`` 0 after a ``REFUSAL_GRACE_S`` for records already stored;
  ``records_while_refused`` 0 shows the refusal held), and deliver everything once writes are
  accepted again. A writer that exited (the worker does, by design) is started again then, as
  its process manager would (``stopped_while_refused``).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from api.settings import ApiSettings, resolve_pepper
from api.tenants_cli import create_key
from bench.chaos_stack import sender_caught_up, sim_config, unique_destinations
from connectors.smsc_sim import SimulatorThread
from schemas.models import DeliveryReport, SubmitRequest
from smsflow.devstack.api_drill import post_all
from smsflow.devstack.broker import LocalBroker
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
from smsflow.settings import Settings
from smsflow.topics import DLR, REJECTED, ROUTED, SENT, SUBMITTED, THROTTLED

EDGE_SCENARIOS = ("webhooks-sigkill", "api-sigkill", "produce-refused-sender",
                  "produce-refused-worker")
#: After the refusal starts, records stored just before it may still finish and be committed.
REFUSAL_GRACE_S = 3.0
#: produce-refused-*: the traffic is produced evenly over this many seconds.
PACE_S = 10.0
Progress = Callable[[str], None]


@dataclass
class Drill:
    """One edge scenario's stack and what it found."""

    name: str
    args: argparse.Namespace
    settings: Settings
    stack: LocalStack
    receiver: HookReceiver
    requests: list[SubmitRequest]
    progress: Progress
    row: dict[str, Any] = field(default_factory=dict)

    @property
    def kill_at(self) -> int:
        fraction: float = self.args.kill_at
        messages: int = self.args.messages
        return round(fraction * messages)


def _flow_row(drill: Drill, on_start: Callable[[], None] | None = None,
              rate_per_s: float | None = None) -> None:
    """Produce the traffic to sms.submitted and wait for every terminal state."""
    result = run_flow(drill.settings, drill.requests, timeout_s=drill.args.timeout,
                      on_start=on_start, rate_per_s=rate_per_s)
    drill.row.update(messages=result.messages, terminal=result.terminal, lost=result.lost,
                     duplicate_reports=result.duplicates, statuses=dict(result.statuses),
                     elapsed_s=round(result.elapsed_s, 1), missing_sample=result.missing[:5])


def webhooks_sigkill(drill: Drill) -> None:
    ids = {r.message_id for r in drill.requests}
    stop = threading.Event()

    def kill_mid_stream() -> None:
        while not stop.wait(0.05):
            answered = len(ids & set(drill.receiver.delivered()))
            if answered >= drill.kill_at:
                drill.stack.crash_and_restart("webhooks")
                drill.row["fault_at_terminal"] = answered
                drill.progress(f"{drill.name}: connector killed and restarted after {answered} "
                               "callbacks")
                return

    killer = threading.Thread(target=kill_mid_stream, daemon=True)
    killer.start()
    try:
        _flow_row(drill)
        reported = {DeliveryReport.from_avro(value).message_id
                    for value in read_all(drill.settings, DLR)} & ids
        deadline = time.monotonic() + drill.args.timeout
        while time.monotonic() < deadline and not reported <= set(drill.receiver.delivered()):
            time.sleep(0.2)
    finally:
        stop.set()
        killer.join(30)
    delivered = drill.receiver.delivered()
    webhook_lost = sorted(reported - set(delivered))
    drill.row.update(
        lost=drill.row["lost"] + len(webhook_lost), webhook_lost=len(webhook_lost),
        reports_on_dlr=len(reported), webhook_delivered=len(reported & set(delivered)),
        webhook_duplicates=sum(n - 1 for i, n in delivered.items() if i in ids),
        webhook_lost_sample=webhook_lost[:5],
    )


def api_sigkill(drill: Drill) -> None:
    port = free_port()
    keys = {"acme-bank": start_api(drill.stack, drill.settings, port)}
    pepper = resolve_pepper(ApiSettings(key_pepper_file=pepper_file(drill.settings.home)))
    for tenant in sorted({r.tenant_id for r in drill.requests} - set(keys)):
        keys[tenant] = create_key(drill.settings, pepper, tenant, label="chaos")[0]
    base_url = f"http://127.0.0.1:{port}"
    # The keys reach the API's key table within a second; probe each one first.
    probe = asyncio.run(post_all(base_url, keys, _probes(drill.requests), key_prefix="probe",
                                 timeout_s=60))
    if probe.unanswered or probe.refused:
        raise RuntimeError(f"the API did not accept the probes: {probe.refused} "
                           f"{probe.unanswered}")
    restarted: list[asyncio.Future[None]] = []

    def on_answer(answered: int) -> None:
        if not restarted and answered >= drill.kill_at:
            loop = asyncio.get_running_loop()
            restarted.append(loop.run_in_executor(None, drill.stack.crash_and_restart, "api"))
            drill.row["fault_at_terminal"] = answered
            drill.progress(f"{drill.name}: API killed and restarted after {answered} answers")

    started = time.monotonic()

    async def post() -> Any:
        result = await post_all(base_url, keys, drill.requests, timeout_s=drill.args.timeout,
                                on_answer=on_answer)
        for future in restarted:
            await future
        return result

    posted = asyncio.run(post())
    accepted = set(posted.accepted.values())
    records, statuses = terminal_counts(drill.settings, accepted, timeout_s=drill.args.timeout)
    submitted = Counter(SubmitRequest.from_avro(value).message_id
                        for value in read_all(drill.settings, SUBMITTED))
    missing = sorted(accepted - set(records))
    drill.row.update(
        messages=len(drill.requests), terminal=len(records), lost=len(missing),
        duplicate_reports=sum(n - 1 for n in records.values()), statuses=dict(statuses),
        answered_2xx=len(posted.accepted), unanswered=len(posted.unanswered),
        refused=dict(Counter(posted.refused.values())), retried=posted.retried,
        attempt_failures=dict(posted.failures), id_mismatches=len(posted.id_mismatches),
        submitted_twice=sum(1 for i in accepted if submitted[i] > 1),
        elapsed_s=round(time.monotonic() - started, 1), missing_sample=missing[:5],
    )
    if posted.unanswered or posted.id_mismatches:
        drill.row["lost"] += len(posted.unanswered)  # a request never accepted is lost too


def _probes(requests: list[SubmitRequest]) -> list[SubmitRequest]:
    """One request per tenant of the traffic, with a body of its own (the simulator would
    count the same destination and text twice as a duplicate submit)."""
    firsts: dict[str, SubmitRequest] = {}
    for request in requests:
        firsts.setdefault(request.tenant_id, request.model_copy(update={"body": "probe"}))
    return list(firsts.values())


def produce_refused(drill: Drill) -> None:
    sender = drill.name.endswith("-sender")
    stage, source = (SENT, THROTTLED) if sender else (ROUTED, SUBMITTED)
    group = f"{drill.settings.app_id}-sender" if sender else drill.settings.app_id
    started = threading.Event()
    errors: list[str] = []

    def reports() -> int:
        return records_total(drill.settings, DLR) + records_total(drill.settings, REJECTED)

    def refuse() -> None:
        # The flow's progress callbacks only start once everything is produced: time it.
        if not started.wait(drill.args.timeout):
            return
        time.sleep(drill.args.kill_at * PACE_S)
        drill.row["fault_at_terminal"] = reports()
        refuse_produce(drill.settings, stage)
        drill.progress(f"{drill.name}: {stage} refuses produces from "
                       f"{drill.row['fault_at_terminal']} terminal records")
        try:
            time.sleep(REFUSAL_GRACE_S)
            commits, records, terminal = (committed_total(drill.settings, group, source),
                                          records_total(drill.settings, stage), reports())
            time.sleep(max(0.0, drill.args.refuse_for_s - REFUSAL_GRACE_S))
            drill.row.update(
                source_commits_while_refused=committed_total(drill.settings, group, source)
                - commits,
                records_while_refused=records_total(drill.settings, stage) - records,
                terminal_records_while_refused=reports() - terminal,
                terminal_records_at_release=reports(),
                alive_while_refused=sorted(drill.stack.pids()),
            )
        except Exception as exc:  # reported in the row, not lost in a thread
            errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            accept_produce(drill.settings, stage)
        # What a supervisor (Kubernetes) does: start a writer that stopped again.
        stopped = [p.name for p in drill.stack.processes if not p.alive()]
        for name in stopped:
            drill.stack.crash_and_restart(name)
        drill.row["stopped_while_refused"] = stopped
        drill.progress(f"{drill.name}: {stage} accepts produces again; restarted {stopped}")

    thread = threading.Thread(target=refuse, daemon=True)
    thread.start()
    try:
        # Paced over PACE_S, so the refusal lands mid-stream (a burst would be all through
        # the sender before the broker applied the new configuration).
        _flow_row(drill, on_start=started.set, rate_per_s=drill.args.messages / PACE_S)
    finally:
        started.set()
        thread.join(drill.args.refuse_for_s + PACE_S + 60)
    drill.row.update(refused_topic=stage, refused_for_s=drill.args.refuse_for_s,
                     fault_error="; ".join(errors) or None)


DRILLS: dict[str, Callable[[Drill], None]] = {
    "webhooks-sigkill": webhooks_sigkill,
    "api-sigkill": api_sigkill,
    "produce-refused-sender": produce_refused,
    "produce-refused-worker": produce_refused,
}


def run_edge_scenario(name: str, args: argparse.Namespace, broker: LocalBroker,
                      max_window: int, progress: Progress) -> dict[str, Any]:
    """One edge scenario on a fresh stack (as bench/chaos.py's ``run_scenario``): its row."""
    requests = unique_destinations(make_traffic(args.messages, seed=args.messages))
    with (tempfile.TemporaryDirectory(prefix=f"smsflow-chaos-{name}-") as home,
          SimulatorThread(sim_config(args.sim_config, name)) as sim, HookReceiver() as receiver):
        settings = isolated_settings(broker.address, Path(home), f"chaos-{name}", args.partitions)
        stack = prepared_stack(
            settings, platform_config=args.platform_config, sim_config=args.sim_config,
            sim_port=sim.port, simulator=False,
            edit_config=(lambda config: with_webhooks(config, receiver))
            if name == "webhooks-sigkill" else None)
        with stack:
            if name == "webhooks-sigkill":
                start_webhooks(stack)
            warm_up_s = warm_up(settings)
            before = sim.stats
            drill = Drill(name, args, settings, stack, receiver, requests, progress,
                          row={"scenario": name, "fault_at_terminal": None, "fault_error": None})
            progress(f"{name}: warm-up {warm_up_s:.1f}s; {args.messages} messages")
            DRILLS[name](drill)
            try:
                sender_caught_up(settings)
                stack.check_alive()
            except (TimeoutError, RuntimeError) as exc:  # a failed drill, in its row
                drill.row["fault_error"] = f"{drill.row['fault_error'] or ''} {exc}".strip()
            after = sim.stats
    row = drill.row
    row.update(duplicate_submits=after.duplicate_submits - before.duplicate_submits,
               max_window=max_window, submits_accepted=after.submits_ok - before.submits_ok,
               warm_up_s=round(warm_up_s, 1))
    progress(f"{name}: {row}")
    return row

