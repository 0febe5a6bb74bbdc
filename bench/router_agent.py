"""Router agent throughput on the real broker: N pre-loaded messages through one faust worker.

    python bench/router_agent.py --messages 20000 --json [--out bench/results/router_agent.json]

Uses the local broker (started if needed; or SMSFLOW_KAFKA_BOOTSTRAP) and an isolated set of
topics (``smsflow.devstack.harness.isolated_settings``, as bench/e2e.py), applies
config/platform.yaml to the config topic, **pre-loads** N SubmitRequests
(``smsflow.devstack.flowrun.make_traffic``: valid traffic of three tenants to GB, DE and US
mobiles) into ``sms.submitted``, and only then starts
one ``smsflow worker`` process. The clock runs from the first to the last record the router
writes (``sms.routed``, plus the router's own ``sms.rejected`` records), by their Kafka
timestamps: worker start-up, group joins and config loading are outside it. Every message id
must come out exactly once (in = out, nothing lost, no duplicates) or the run fails.

What is measured is the router agent inside a normal worker: decode, validate, ``decide``,
segment, quota table, tenant lane, produce, commit. The worker runs every agent (throttle,
tracking, ...) in the same process, as in production; they compete for the same CPU (the
throttle consumes ``sms.routed`` while the router fills it). No sender or SMSC runs, so
nothing downstream of ``sms.throttled`` happens.

Tenant rate limits: the router enforces each tenant's ``rate_limit_pps`` (500 + 300 + 200 parts/s
in config/platform.yaml), which would make this a measurement of those limits. By default they
are lifted (rate and daily quota set to 10^6) so the router's own capacity shows; ``--keep-limits``
runs with the configuration as it is.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import Consumer, KafkaError

from connectors.producer import SmsProducer
from schemas.models import Rejection, RoutedMessage
from smsflow.devstack.flowrun import make_traffic
from smsflow.devstack.harness import isolated_settings, prepared_stack
from smsflow.devstack.stack import ManagedProcess, stack_env
from smsflow.topics import REJECTED, ROUTED, SUBMITTED, topic_name

REPO = Path(__file__).resolve().parents[1]
PLATFORM_CONFIG = REPO / "config" / "platform.yaml"
SIM_CONFIG = REPO / "config" / "demo-smsc-sim.yaml"
LIFTED = 1_000_000


def _bootstrap() -> str:
    if os.environ.get("SMSFLOW_KAFKA_BOOTSTRAP"):
        return os.environ["SMSFLOW_KAFKA_BOOTSTRAP"]
    from smsflow.devstack.broker import LocalBroker

    return LocalBroker.from_env(home=REPO / ".smsflow").start()


def _config(home: Path, keep_limits: bool) -> Path:
    if keep_limits:
        return PLATFORM_CONFIG
    raw: dict[str, Any] = yaml.safe_load(PLATFORM_CONFIG.read_text(encoding="utf-8"))
    for tenant in raw["tenants"]:
        tenant["rate_limit_pps"] = LIFTED
        if tenant.get("daily_quota") is not None:
            tenant["daily_quota"] = LIFTED * 100
    path = home / "platform-unlimited.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def _collect(
    bootstrap: str, topics: dict[str, str], expected: set[str], timeout_s: float
) -> dict[str, Any]:
    """Read the router's output until every expected message id came out (or the timeout)."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"router-bench-{uuid.uuid4()}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    consumer.subscribe(list(topics.values()))
    seen: dict[str, int] = {}
    duplicates = routed = rejected = other_rejections = 0
    first_ms = last_ms = 0
    deadline = time.monotonic() + timeout_s
    try:
        while len(seen) < len(expected) and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                raise RuntimeError(f"reading router output: {error}")
            if message.topic() == topics[ROUTED]:
                message_id = RoutedMessage.from_avro(message.value()).request.message_id
                routed += 1
            else:
                rejection = Rejection.from_avro(message.value())
                if rejection.stage != "router" or rejection.message_id is None:
                    other_rejections += 1
                    continue
                message_id = rejection.message_id
                rejected += 1
            if message_id in seen:
                duplicates += 1
                continue
            stamp = message.timestamp()[1]
            seen[message_id] = stamp
            first_ms = stamp if not first_ms else min(first_ms, stamp)
            last_ms = max(last_ms, stamp)
    finally:
        consumer.close()
    return {
        "seen": seen, "routed": routed, "rejected": rejected, "duplicates": duplicates,
        "other_rejections": other_rejections, "first_ms": first_ms, "last_ms": last_ms,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--keep-limits", action="store_true",
                        help="keep config/platform.yaml's tenant rate limits and quotas")
    parser.add_argument("--json", action="store_true", help="print one JSON object only")
    parser.add_argument("--out", type=Path, help="also write the JSON to this file")
    args = parser.parse_args()

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="smsflow-router-bench-") as tmp:
        home = Path(tmp)
        settings = isolated_settings(_bootstrap(), home, "routerbench", args.partitions)
        prepared_stack(settings, platform_config=_config(home, args.keep_limits),
                       sim_config=SIM_CONFIG)  # not started
        requests = make_traffic(args.messages, seed=args.messages)
        producer = SmsProducer(settings.kafka_bootstrap, topic_name(settings, SUBMITTED),
                               linger_ms=20)
        for request in requests:
            producer.submit(request)
        unacked = producer.flush(120)
        if unacked or producer.failed:
            raise RuntimeError(f"pre-loading failed: {unacked} unacked, {producer.failed[:3]}")
        worker = ManagedProcess(
            "worker",
            [sys.executable, "-m", "smsflow.cli", "worker", "--loglevel", "warn"],
            home / "logs" / "worker.log",
        )
        started = time.monotonic()
        worker.start(stack_env(settings))
        try:
            out = _collect(
                settings.kafka_bootstrap,
                {ROUTED: topic_name(settings, ROUTED), REJECTED: topic_name(settings, REJECTED)},
                {r.message_id for r in requests},
                args.timeout,
            )
            wall_s = time.monotonic() - started
            alive = worker.alive()
            log_tail = "" if alive else worker.log_tail()
        finally:
            worker.stop()
    count_out = len(out["seen"])
    elapsed_s = (out["last_ms"] - out["first_ms"]) / 1000
    expected = {r.message_id for r in requests}
    result = {
        "messages_in": len(requests),
        "messages_out": count_out,
        "routed": out["routed"],
        "rejected_by_router": out["rejected"],
        "lost": len(expected - set(out["seen"])),
        "duplicates": out["duplicates"],
        "elapsed_s": round(elapsed_s, 3),
        "msgs_per_s": round((count_out - 1) / elapsed_s, 1) if elapsed_s > 0 else None,
        "worker_start_to_last_output_s": round(wall_s, 2),
        "partitions": args.partitions,
        "tenant_limits": "as configured" if args.keep_limits else
                         f"lifted (rate_limit_pps {LIFTED}, daily_quota {LIFTED * 100})",
        "method": "N SubmitRequests pre-loaded into sms.submitted before one `smsflow worker` "
                  "starts; elapsed from the first to the last router output record "
                  "(sms.routed + the router's sms.rejected), by Kafka record timestamps "
                  "(ms); msgs_per_s = (out - 1) / elapsed; the worker runs every agent, no "
                  "sender or SMSC",
        "worker_alive_at_end": alive,
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_avg_1m_before": round(load_before[0], 2),
            "load_avg_1m_after": round(os.getloadavg()[0], 2),
        },
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if log_tail:
        result["worker_log_tail"] = log_tail
    text = json.dumps(result, indent=None if args.json else 2)
    print(text)
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0 if result["lost"] == 0 and result["duplicates"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
