"""Sender micro-benchmark: `smsflow sender` alone, between Kafka and the real SMSC simulator.

    python bench/sender.py --messages 20000 --json

No worker: N single-part ``RoutedMessage`` records (half to smsc-uk, 2 binds; half to smsc-de,
1 bind; windows of 64 as in config/platform.yaml) are written straight to an isolated
``sms.throttled`` after the sender has finished a warm-up message. The sender (``python -m
smsflow.cli sender``) and the simulator (no submit latency, every message delivered with a
receipt after ~10 ms) each run in a child process. The clock runs from the burst until every
``SubmitOutcome`` is on ``sms.sent`` and every receipt on ``sms.dlr.raw``; the sender's CPU
(user + system, all its threads, librdkafka's included) comes from ``/proc/<pid>/stat`` over
the same span. The JSON result (last line of stdout with --json) is also written to
bench/results/sender.json unless --output says otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import Consumer, Producer

from connectors.producer import new_request
from schemas.batches import is_receipt_batch, is_sent_batch, receipt_values, sent_values
from schemas.models import RoutedMessage, TextEncoding
from smsflow.config.kafka_io import apply_config
from smsflow.config.store import load_yaml
from smsflow.devstack.harness import free_port, isolated_settings
from smsflow.devstack.lifeline import tied_env
from smsflow.devstack.stack import stack_env, wait_for_port
from smsflow.topics import CONFIG, DLR_RAW, SENT, THROTTLED, apply_topics, topic_name

REPO = Path(__file__).resolve().parents[1]
PLATFORM_CONFIG = REPO / "config" / "platform.yaml"
CLK_TCK = os.sysconf("SC_CLK_TCK")

SIM = {
    "system_id": "SMSCSIM",
    "receipt_format": "both",
    "seed": 7,
    "stats_interval_s": 0,
    "accounts": [
        {"system_id": "smsc-uk", "password": "uk-pass"},
        {"system_id": "smsc-de", "password": "de-pass"},
        {"system_id": "smsc-us", "password": "us-pass"},
    ],
    "profiles": {"default": {"submit_latency_ms": 0, "delivery_ratio": 1.0,
                             "receipt_delay_ms": 10}},
}


def _bootstrap() -> str:
    if os.environ.get("SMSFLOW_KAFKA_BOOTSTRAP"):
        return os.environ["SMSFLOW_KAFKA_BOOTSTRAP"]
    from smsflow.devstack.broker import LocalBroker

    return LocalBroker.from_env(home=REPO / ".smsflow").start()


def _cpu_s(pid: int) -> float:
    """utime + stime of a process (all threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _kafka_cpu_s(pid: int) -> float:
    """CPU of librdkafka's own threads (named ``rdk:*``) in a process, in seconds."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            comm = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended
        if comm.startswith("rdk:"):
            total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _routed(index: int, settings_now: datetime) -> RoutedMessage:
    uk = index % 2 == 0
    destination = f"+4474{index:08d}" if uk else f"+49151{index:07d}"
    request = new_request("acme-bank", destination, f"bench message {index}", now=settings_now)
    return RoutedMessage(
        request=request, destination=destination,
        route_id="uk-direct" if uk else "de-direct",
        smsc_id="smsc-uk" if uk else "smsc-de",
        operator_id="gb-ee" if uk else "de-telekom", country="GB" if uk else "DE",
        encoding=TextEncoding.GSM7, parts=1, routed_at=settings_now,
    )


class _Counter:
    """Counts outcomes on sms.sent and receipts on sms.dlr.raw (from the end of each, assigned up
    front)."""

    def __init__(self, bootstrap: str, topics: list[str]) -> None:
        self._consumer = Consumer({
            "bootstrap.servers": bootstrap, "group.id": f"bench-sender-{os.getpid()}",
            "auto.offset.reset": "earliest", "enable.auto.commit": False,
        })
        self._consumer.subscribe(topics)
        self.counts = dict.fromkeys(topics, 0)

    def poll(self, timeout: float) -> None:
        for message in self._consumer.consume(num_messages=10000, timeout=timeout):
            if message.error() is None:
                # A batch (schemas/batches.py) counts each receipt or outcome it carries.
                value = message.value()
                self.counts[message.topic() or ""] += (
                    sum(1 for _ in receipt_values(value)) if is_receipt_batch(value)
                    else sum(1 for _ in sent_values(value)) if is_sent_batch(value) else 1)

    def close(self) -> None:
        self._consumer.close()


def run(messages: int, timeout_s: float) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="smsflow-bench-sender-"))
    settings = isolated_settings(_bootstrap(), home, "bsend", partitions=4)
    apply_topics(settings)
    port = free_port()
    config = load_yaml(PLATFORM_CONFIG)
    config = config.model_copy(
        update={"smscs": tuple(s.model_copy(update={"port": port}) for s in config.smscs)}
    )
    apply_config(settings.kafka_bootstrap, topic_name(settings, CONFIG), config)
    sim_yaml = home / "sim.yaml"
    sim_yaml.write_text(yaml.safe_dump(SIM))
    env = tied_env(stack_env(settings))  # the children end with this run, even a killed one
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    logs = home / "logs"
    logs.mkdir()
    sim = subprocess.Popen(
        [sys.executable, "-m", "smsflow.cli", "smsc-sim", "--config", str(sim_yaml),
         "--port", str(port), "--stats-interval", "0", "--log-level", "WARNING"],
        env=env, cwd=REPO, stdout=subprocess.DEVNULL,
        stderr=(logs / "sim.log").open("w"),
    )
    sender: subprocess.Popen[bytes] | None = None
    sent, raw = topic_name(settings, SENT), topic_name(settings, DLR_RAW)
    counter = _Counter(settings.kafka_bootstrap, [sent, raw])
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap, "linger.ms": 5})
    throttled = topic_name(settings, THROTTLED)
    try:
        wait_for_port("127.0.0.1", port, 20)
        sender = subprocess.Popen(
            [sys.executable, "-m", "smsflow.cli", "sender", "--log-level", "warning"],
            env=env, cwd=REPO, stdout=subprocess.DEVNULL,
            stderr=(logs / "sender.log").open("w"),
        )
        now = datetime.now(UTC)
        warm = _routed(0, now)
        producer.produce(throttled, key=warm.route_id, value=warm.to_avro(throttled))
        producer.flush(10)
        deadline = time.monotonic() + 120
        while counter.counts[sent] < 1 or counter.counts[raw] < 1:
            if time.monotonic() > deadline:
                raise TimeoutError(f"warm-up message not through; see {logs}")
            if sender.poll() is not None:
                raise RuntimeError(f"sender exited; see {logs}")
            counter.poll(0.2)
        base = dict(counter.counts)
        batch = [(m.route_id, m.to_avro(throttled)) for m in
                 (_routed(i, now) for i in range(1, messages + 1))]
        load_start = os.getloadavg()[0]
        cpu0, kafka0, t0 = _cpu_s(sender.pid), _kafka_cpu_s(sender.pid), time.monotonic()
        for key, value in batch:
            while True:
                try:
                    producer.produce(throttled, key=key, value=value)
                    break
                except BufferError:
                    producer.poll(0.01)
        producer.flush(30)
        deadline = t0 + timeout_s
        first_done: float | None = None
        while True:
            done_sent = counter.counts[sent] - base[sent]
            done_raw = counter.counts[raw] - base[raw]
            if done_sent >= messages and first_done is None:
                first_done = time.monotonic()
            if done_sent >= messages and done_raw >= messages:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {done_sent} outcomes / {done_raw} receipts in time")
            counter.poll(0.05)
        elapsed, cpu = time.monotonic() - t0, _cpu_s(sender.pid) - cpu0
        kafka_cpu = _kafka_cpu_s(sender.pid) - kafka0
        outcomes_s = (first_done or time.monotonic()) - t0
    finally:
        counter.close()
        if sender is not None and sender.poll() is None:
            sender.send_signal(signal.SIGTERM)
            try:
                sender.wait(30)
            except subprocess.TimeoutExpired:
                sender.kill()
        sim.send_signal(signal.SIGTERM)
        try:
            sim.wait(10)
        except subprocess.TimeoutExpired:
            sim.kill()
        from smsflow.devstack.harness import delete_run_topics

        delete_run_topics(settings.kafka_bootstrap)
    return {
        "messages": messages,
        "msgs_per_s": round(messages / elapsed),
        "outcomes_per_s": round(messages / outcomes_s),
        "sender_cpu_us_per_msg": round(cpu / messages * 1e6),
        "sender_cpu_s": round(cpu, 2),
        "librdkafka_cpu_us_per_msg": round(kafka_cpu / messages * 1e6),
        "seconds": round(elapsed, 3),
        "setup": "sender and simulator as child processes; single-part messages half to "
                 "smsc-uk (2 binds x 64), half to smsc-de (1 x 64); 10 ms receipts; until every "
                 "outcome and receipt is on Kafka",
        "commit": _commit(),
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_avg_1m_at_start": round(load_start, 2),
            "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
        },
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--timeout", type=float, default=90.0)
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    parser.add_argument("--output", type=Path, default=REPO / "bench" / "results" / "sender.json")
    args = parser.parse_args(argv)
    result = run(args.messages, args.timeout)
    text = json.dumps(result, indent=2)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['messages']} messages: {result['msgs_per_s']} msg/s, "
              f"{result['sender_cpu_us_per_msg']} us sender CPU per message")
    return 0


if __name__ == "__main__":
    sys.exit(main())
