"""What the design's Kafka hops alone cost per message: the same records, no work on them.

    python bench/kafka_floor.py --rate 2640 --duration 20 --json

A message with a receipt crosses Kafka as ~9.3 records in smsflow today (``--shape batched``,
the default; single-part, counted from ``bench/e2e.py``'s ``records_per_msg_by_topic``):
``sms.submitted``; the router's ``sms.routed``; the throttle's ``sms.throttled``; the sender's
``sms.sent`` and receipt on ``sms.dlr.raw``, and its ledger INTENTs and DONEs as one record per
partition per batch; the correlator's pending entry and done marker (two changelog records) and
its completed parts as one ``sms.dlr.parts`` record per partition per batch; the aggregator's
``sms.dlr`` and its done marker. ``--shape per-record`` replays the 13 records of session 14
(every ledger entry and part a record of its own, the quota-table changelog per message).
Three processes replay that with bare confluent-kafka clients and no work between consuming
and producing (the bytes are passed on): a paced load producer,
a "worker" relay (one consumer group on the five topics the worker's agents read, one producer,
linger ``SMSFLOW_OUTPUT_LINGER_MS``), and a "sender" relay (``sms.throttled`` in, ``sms.sent``,
``sms.dlr.raw`` and the ledger out). Consumers fetch with the pipeline's
``fetch.min.bytes``/``fetch.max.wait.ms`` and commit every second; every producer is
idempotent with ``acks=all`` and lz4, as ours are. A follower reads ``sms.sent`` and
``sms.dlr`` (the tracking windows and the AIMD feed). ``records_per_message`` is counted from
the topics' end offsets after the run.

It prints the CPU per message of the broker and of the relays (from /proc, between the first
record produced and the last ``sms.dlr`` record), which is the floor any implementation of
this topic design pays on this machine before routing, throttling, SMPP or Avro: the budget
left for the rest is ``2 cores / rate`` minus it. Results by scenario in
bench/results/kafka_floor.json, with the commit, machine and load average.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from bench.e2e import _bootstrap, git_commit, machine, store_scenario  # noqa: E402
from smsflow.devstack.stack import cpu_seconds  # noqa: E402
from smsflow.kafka_clients import client_config, producer_config  # noqa: E402
from smsflow.settings import Settings  # noqa: E402

RESULTS = _HERE / "results" / "kafka_floor.json"
PARTITIONS = 4
VALUE = os.urandom(300)  # about an Avro SubmitRequest/RoutedMessage
SMALL = os.urandom(60)  # changelog rows, ledger entries, receipts' keys
TOPICS = ("submitted", "routed", "throttled", "sent", "dlr-raw", "dlr-parts", "dlr",
          "quota-changelog", "pending-changelog", "parts-changelog", "ledger")
#: ``--shape per-record``: what the worker relay produces for one record of each topic it reads.
WORKER_OUT: dict[str, list[tuple[str, bytes]]] = {
    "submitted": [("routed", VALUE), ("quota-changelog", SMALL)],
    "routed": [("throttled", VALUE)],
    "sent": [("pending-changelog", VALUE)],
    "dlr-raw": [("dlr-parts", VALUE), ("pending-changelog", SMALL)],
    "dlr-parts": [("dlr", VALUE), ("parts-changelog", SMALL)],
}
SENDER_OUT = [("ledger", SMALL), ("sent", VALUE), ("ledger", SMALL), ("dlr-raw", SMALL)]
_KEY_SEP = b"\x01\x01"  # between a part batch's keys and its payload


def _consumer(bootstrap: str, group: str, topics: list[str]) -> Consumer:
    defaults = Settings()
    consumer = Consumer(client_config(
        bootstrap, **{
            "group.id": group, "auto.offset.reset": "earliest",
            "enable.auto.commit": True, "auto.commit.interval.ms": 1000,
            "fetch.min.bytes": defaults.fetch_min_bytes,
            "fetch.wait.max.ms": defaults.fetch_max_wait_ms,
        }))
    consumer.subscribe(topics)
    return consumer


def _producer(bootstrap: str) -> Producer:
    """Idempotent, ``acks=all``, the project's partitioner: ``producer_config`` as every
    producer of ours; the worker's linger and lz4."""
    return Producer(producer_config(
        bootstrap, **{"linger.ms": Settings().output_linger_ms, "compression.type": "lz4"}))


def _relay(role: str, bootstrap: str, prefix: str, stop_file: Path, shape: str) -> None:
    """Pass records on until ``stop_file`` exists: the worker's or the sender's shape."""
    name = {topic: f"{prefix}{topic}" for topic in TOPICS}
    topic_of = {full: short for short, full in name.items()}
    inputs = list(WORKER_OUT) if role == "worker" else ["throttled"]
    consumer = _consumer(bootstrap, f"{prefix}{role}", [name[t] for t in inputs])
    producer = _producer(bootstrap)
    while not stop_file.exists():
        records = [r for r in consumer.consume(500, 0.1) if r.error() is None]
        if shape == "per-record":
            for record in records:
                outputs = (WORKER_OUT[topic_of[str(record.topic())]] if role == "worker"
                           else SENDER_OUT)
                for topic, value in outputs:
                    producer.produce(name[topic], value=value, key=record.key())
        elif role == "worker":
            _worker_batched(producer, name, topic_of, records)
        else:
            _sender_batched(producer, name, records)
        producer.poll(0)
    producer.flush(30)
    consumer.close()


def _by_partition(records: list[Message]) -> dict[int, list[Message]]:
    groups: dict[int, list[Message]] = {}
    for record in records:
        groups.setdefault(record.partition() or 0, []).append(record)
    return groups


def _worker_batched(producer: Producer, name: dict[str, str], topic_of: dict[str, str],
                    records: list[Message]) -> None:
    """The worker's records today: one each, except the completed parts (one record per
    partition of a fetched batch, expanded again by the aggregator)."""
    receipts: list[Message] = []
    for record in records:
        topic, key = topic_of[str(record.topic())], record.key()
        if topic == "submitted":
            producer.produce(name["routed"], value=VALUE, key=key)
        elif topic == "routed":
            producer.produce(name["throttled"], value=VALUE, key=key)
        elif topic == "sent":
            producer.produce(name["pending-changelog"], value=VALUE, key=key)
        elif topic == "dlr-raw":
            producer.produce(name["pending-changelog"], value=SMALL, key=key)
            receipts.append(record)
        else:  # dlr-parts: a batch of parts, each a report and a done marker
            for part_key in (record.value() or b"").split(_KEY_SEP)[0].split(b"\x00"):
                producer.produce(name["dlr"], value=VALUE, key=part_key)
                producer.produce(name["parts-changelog"], value=SMALL, key=part_key)
    for partition, group in _by_partition(receipts).items():
        keys = b"\x00".join(r.key() or b"" for r in group)
        producer.produce(name["dlr-parts"], value=keys + _KEY_SEP + VALUE * len(group),
                         partition=partition)


def _sender_batched(producer: Producer, name: dict[str, str], records: list[Message]) -> None:
    """The sender's records today: an INTENT record per partition of a fetched batch, then
    each part's outcome and receipt, then a DONE record per partition."""
    groups = _by_partition(records)
    for partition, group in groups.items():
        producer.produce(name["ledger"], value=SMALL * len(group), partition=partition)
    for record in records:
        producer.produce(name["sent"], value=VALUE, key=record.key())
        producer.produce(name["dlr-raw"], value=SMALL, key=record.key())
    for partition, group in groups.items():
        producer.produce(name["ledger"], value=SMALL * len(group), partition=partition)


def _follower(bootstrap: str, prefix: str, stop_file: Path) -> None:
    consumer = _consumer(bootstrap, f"{prefix}follower", [f"{prefix}sent", f"{prefix}dlr"])
    while not stop_file.exists():
        consumer.consume(500, 0.1)
    consumer.close()


def _load(bootstrap: str, prefix: str, rate: float, messages: int) -> None:
    producer = _producer(bootstrap)
    started = time.monotonic()
    for n in range(messages):
        due = started + n / rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        producer.produce(f"{prefix}submitted", value=VALUE, key=f"msg-{n}".encode())
        producer.poll(0)
    producer.flush(60)


def _count_until(bootstrap: str, topic: str, expected: int, timeout_s: float) -> tuple[int, float]:
    """Records on ``topic`` once ``expected`` arrived (or the timeout), and when the last did."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"count-{uuid.uuid4()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    seen, last_at = 0, time.monotonic()
    deadline = time.monotonic() + timeout_s
    try:
        while seen < expected and time.monotonic() < deadline:
            for record in consumer.consume(1000, 0.5):
                error = record.error()
                if error is None:
                    seen += 1
                    last_at = time.monotonic()
                elif error.code() != KafkaError._PARTITION_EOF:
                    raise RuntimeError(f"counting {topic}: {error}")
        return seen, last_at
    finally:
        consumer.close()


def _records_written(bootstrap: str, prefix: str) -> int:
    """Records on every topic of the run (their end offsets)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"count-{uuid.uuid4()}"})
    try:
        return sum(consumer.get_watermark_offsets(TopicPartition(f"{prefix}{topic}", p),
                                                  timeout=10)[1]
                   for topic in TOPICS for p in range(PARTITIONS))
    finally:
        consumer.close()


def _child(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, __file__, *args], start_new_session=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=2640.0, help="messages/s offered")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load")
    parser.add_argument("--scenario", default=None)
    parser.add_argument("--json", action="store_true", help="print one JSON object only")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--shape", choices=("batched", "per-record"), default="batched",
                        help="today's records (default) or session 14's 13 per message")
    parser.add_argument("--role", choices=("worker", "sender", "follower", "load"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--bootstrap", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    parser.add_argument("--stop-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--messages", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role in ("worker", "sender"):
        _relay(args.role, args.bootstrap, args.prefix, args.stop_file, args.shape)
        return 0
    if args.role == "follower":
        _follower(args.bootstrap, args.prefix, args.stop_file)
        return 0
    if args.role == "load":
        _load(args.bootstrap, args.prefix, args.rate, args.messages)
        return 0

    load_at_start = os.getloadavg()[0]
    bootstrap, broker_pid = _bootstrap()
    if broker_pid is None:
        raise SystemExit("the broker's pid is needed for its CPU: run it on this machine")
    prefix = f"floor-{uuid.uuid4().hex[:8]}."
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(f"{prefix}{t}", num_partitions=PARTITIONS,
                                                replication_factor=1) for t in TOPICS]).values():
        future.result(timeout=60)
    messages = int(args.rate * args.duration)
    with tempfile.TemporaryDirectory(prefix="smsflow-kafka-floor-") as tmp:
        stop_file = Path(tmp) / "stop"
        common = ["--bootstrap", bootstrap, "--prefix", prefix, "--stop-file", str(stop_file)]
        relays = {role: _child("--role", role, "--shape", args.shape, *common)
                  for role in ("worker", "sender", "follower")}
        time.sleep(8)  # every group joined and assigned before the first record
        pids = {"broker": broker_pid, **{role: p.pid for role, p in relays.items()}}
        before, started = cpu_seconds(pids), time.monotonic()
        load = _child("--role", "load", "--rate", str(args.rate), "--messages", str(messages),
                      *common)
        pids["load"] = load.pid
        load_before = cpu_seconds({"load": load.pid})["load"]
        seen, last_at = _count_until(bootstrap, f"{prefix}dlr", messages,
                                     timeout_s=args.duration * 4 + 60)
        after = cpu_seconds(pids)
        stop_file.touch()
        for process in [load, *relays.values()]:
            process.wait(timeout=60)
    records = _records_written(bootstrap, prefix)
    admin.delete_topics([f"{prefix}{t}" for t in TOPICS])
    elapsed = last_at - started
    cpu_us = {name: round((after[name] - (load_before if name == "load" else before[name]))
                          / max(seen, 1) * 1e6) for name in pids}
    scenario = args.scenario or f"rate-{args.rate:g}"
    result = {
        "scenario": scenario,
        "offered_per_s": args.rate,
        "messages": messages,
        "delivered": seen,
        "msgs_per_s": round(seen / elapsed, 1) if elapsed > 0 else None,
        "shape": args.shape,
        "records_per_message": round(records / max(seen, 1), 2),
        "cpu_us_per_msg_by_process": cpu_us,
        "cpu_us_per_msg_without_load": sum(v for k, v in cpu_us.items() if k != "load"),
        "budget_us_per_msg_on_2_cores": round(2e6 / args.rate),
        "commit": git_commit(),
        "machine": machine(load_at_start),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    store_scenario(args.out, scenario, result)
    print(json.dumps(result, indent=None if args.json else 2))
    return 0 if seen == messages else 1


if __name__ == "__main__":
    sys.exit(main())
