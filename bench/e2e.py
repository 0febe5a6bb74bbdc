"""End-to-end benchmark: N messages through broker, worker, sender and SMSC simulator.

    python bench/e2e.py --messages 20000 --json

Uses the local broker (started if needed; or SMSFLOW_KAFKA_BOOTSTRAP), an isolated set of
topics and a fresh stack. After a one-message warm-up, all N messages are produced as one burst
and the clock runs until every message has a terminal state; latency is from a message's
``submitted_at`` to the moment its terminal record reached Kafka, so it includes the time spent
queued behind the burst. Route rates from config/platform.yaml cap the throughput.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from smsflow.flowrun import make_traffic, run_flow
from smsflow.harness import isolated_settings, prepared_stack, warm_up


def _bootstrap() -> str:
    if os.environ.get("SMSFLOW_KAFKA_BOOTSTRAP"):
        return os.environ["SMSFLOW_KAFKA_BOOTSTRAP"]
    from smsflow.broker import LocalBroker

    return LocalBroker.from_env(home=Path(".smsflow")).start()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--json", action="store_true", help="print one JSON object only")
    parser.add_argument("--out", type=Path, help="also write the JSON to this file")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="smsflow-bench-") as home:
        settings = isolated_settings(_bootstrap(), Path(home), "bench", args.partitions)
        requests = make_traffic(args.messages, seed=args.messages)
        with prepared_stack(settings) as stack:
            warm_up_s = warm_up(settings)
            result = run_flow(settings, requests, timeout_s=args.timeout)
            stack.check_alive()
    summary = result.summary()
    summary.update(
        warm_up_s=round(warm_up_s, 2),
        partitions=args.partitions,
        machine={
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
        },
        measured_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    text = json.dumps(summary, indent=None if args.json else 2)
    print(text)
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2) + "\n")
    return 0 if result.lost == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
