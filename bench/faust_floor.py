"""What one consumed event costs before any work: faust's per-event floor on this machine.

The throughput issue's question: can a faust worker that handles every record as one event reach
~600 µs of CPU per message end to end when a single-part message with a receipt is about seven
events in the worker? This measures the cost of *receiving* an event and doing nothing with it,
on the real broker, four ways, each in a fresh child process:

* ``faust-events``: the worker's own app (``pipeline.app.build_app``: the guarded consumer, the
  commit barrier, the output producer) with one agent ``async for event in stream.events()``;
* ``faust-batches``: the same app and agent taking ``stream.take_events(500, within=0.05)``;
* ``faust-vanilla``: a plain ``faust.App`` (none of the worker's patches), ``stream.events()``;
* ``confluent``: a bare confluent-kafka (librdkafka) consumer, ``consume(500)`` in a loop.

CPU is the child's user + system time (all threads) from its first event to its last. N small
records (~300 bytes, like a ``RoutedMessage``) are produced to a fresh 4-partition topic first.

    python bench/faust_floor.py --json              # 50,000 records per mode
    python bench/faust_floor.py --records 20000 --mode confluent

Prints one JSON object last on stdout with ``--json`` and writes
``bench/results/faust_floor.json`` with the commit, the machine and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from confluent_kafka import Consumer, Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from bench.e2e import git_commit, machine, publish  # noqa: E402

MODES = ("faust-events", "faust-batches", "faust-vanilla", "confluent")
PARTITIONS = 4
VALUE = b"x" * 300


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _produce(bootstrap: str, topic: str, records: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(30)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20,
                         "partitioner": "murmur2_random"})
    for index in range(records):
        producer.produce(topic, key=str(index % 1000).encode(), value=VALUE)
        if index % 10_000 == 0:
            producer.poll(0)
    assert producer.flush(60) == 0


# ------------------------------------------------------------------ the children


def _child_confluent(bootstrap: str, topic: str, records: int) -> dict[str, float]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"floor-{uuid.uuid4()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": True})
    consumer.subscribe([topic])
    seen, started_cpu, started = 0, 0.0, 0.0
    while seen < records:
        batch = consumer.consume(500, 1.0)
        if batch and not seen:
            started_cpu, started = _cpu_s(), time.monotonic()
        seen += sum(1 for message in batch if message.error() is None)
    result = {"cpu_s": _cpu_s() - started_cpu, "elapsed_s": time.monotonic() - started}
    consumer.close()
    return result


def _child_faust(bootstrap: str, topic: str, records: int, batches: bool,
                 vanilla: bool = False) -> None:
    from pipeline.app import build_app
    from smsflow.settings import Settings

    home = Path(os.environ.get("TMPDIR", "/tmp")) / f"floor-{uuid.uuid4().hex[:8]}"
    settings = Settings(home=home, kafka_bootstrap=bootstrap,
                        app_id=f"floor-{uuid.uuid4().hex[:8]}", topic_prefix="")
    if vanilla:
        # faust as shipped: no guarded consumer, no commit barrier, no output producer.
        import faust
        app = faust.App(settings.app_id, broker=f"kafka://{bootstrap}",
                        datadir=str(home), web_enabled=False)
        source = app.topic(topic, key_type=bytes, value_type=bytes, key_serializer="raw",
                           value_serializer="raw")
    else:
        from pipeline.faust_patches.raw_events import RawBytesSchema

        app = build_app(settings).app
        source = app.topic(topic, schema=RawBytesSchema())  # as the worker's Worker.topic
    state: dict[str, float] = {"seen": 0}

    def tick(count: int) -> None:
        if not state["seen"]:
            state["cpu0"], state["t0"] = _cpu_s(), time.monotonic()
        state["seen"] += count
        if state["seen"] >= records and "cpu_s" not in state:
            state["cpu_s"] = _cpu_s() - state["cpu0"]
            state["elapsed_s"] = time.monotonic() - state["t0"]
            # faust sends stdout to its log: the figures go to a file the parent reads.
            Path(os.environ["FLOOR_RESULT"]).write_text(json.dumps(
                {"cpu_s": state["cpu_s"], "elapsed_s": state["elapsed_s"]}))
            os._exit(0)  # the figure is taken; faust's shutdown would only add noise

    @app.agent(source)
    async def floor(stream: Any) -> None:
        if batches:
            async for events in stream.take_events(500, within=0.05):
                tick(len(events))
        else:
            async for _event in stream.events():
                tick(1)

    sys.argv = ["faust-floor", "worker", "--loglevel", "warn", "--without-web"]
    app.main()  # as `smsflow worker` runs it; tick() ends the process


def _run_child(mode: str, bootstrap: str, topic: str, records: int, timeout_s: float
               ) -> dict[str, float]:
    result = Path(os.environ.get("TMPDIR", "/tmp")) / f"floor-{uuid.uuid4().hex}.json"
    done = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--bootstrap", bootstrap, "--topic", topic,
         "--records", str(records)],
        capture_output=True, text=True, timeout=timeout_s, cwd=REPO, check=False,
        env={**os.environ, "FLOOR_RESULT": str(result)},
    )
    if result.exists():
        figures: dict[str, float] = json.loads(result.read_text())
        result.unlink()
        return figures
    raise RuntimeError(f"{mode}: no result (exit {done.returncode})\n{done.stderr[-2000:]}")


def run(bootstrap: str, records: int, modes: list[str], timeout_s: float) -> dict[str, Any]:
    load_at_start = os.getloadavg()[0]
    rows: dict[str, Any] = {}
    for mode in modes:
        topic = f"bench-floor-{mode}-{uuid.uuid4().hex[:8]}"
        _produce(bootstrap, topic, records)
        figures = _run_child(mode, bootstrap, topic, records, timeout_s)
        rows[mode] = {
            "records": records,
            "cpu_us_per_event": round(figures["cpu_s"] / records * 1e6, 1),
            "events_per_s": round(records / figures["elapsed_s"]) if figures["elapsed_s"] else None,
            "cpu_s": round(figures["cpu_s"], 2),
        }
        AdminClient({"bootstrap.servers": bootstrap}).delete_topics([topic])
    return {
        "modes": rows,
        "commit": git_commit(),
        "machine": machine(load_at_start),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--mode", action="append", choices=MODES)
    parser.add_argument("--bootstrap", default=os.environ.get("SMSFLOW_KAFKA_BOOTSTRAP",
                                                              "127.0.0.1:9092"))
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "faust_floor.json")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        if args.child == "confluent":
            Path(os.environ["FLOOR_RESULT"]).write_text(
                json.dumps(_child_confluent(args.bootstrap, args.topic, args.records)))
        else:
            _child_faust(args.bootstrap, args.topic, args.records,
                         batches=args.child == "faust-batches",
                         vanilla=args.child == "faust-vanilla")
        return 0
    result = run(args.bootstrap, args.records, args.mode or list(MODES), args.timeout)
    publish(result, args.out, as_json=args.json, lines=(
        f"{mode:14} {row['cpu_us_per_event']:>8} µs CPU/event  {row['events_per_s']} events/s"
        for mode, row in result["modes"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
