"""Which requests the local broker serves, for a few seconds: by API, client and topic.

    python bench/broker_requests.py --seconds 5 --json        # beside a running benchmark
    python bench/broker_requests.py --home /tmp/benchbroker    # a broker started with --home

Turns the broker's request logger (``kafka.request.logger``) to DEBUG with Kafka's own
``kafka.admin.ConfigCommand --entity-type broker-loggers``, waits, turns it back to WARN and
counts the ``Completed request`` lines the broker wrote to its ``server.log`` meanwhile
(including the files rolled at 20 MB): requests a second by API and client id, and for produce
requests the records' topics and how many partitions each request carried.

Why: the broker's CPU is mostly per request, and librdkafka (2.16) sends one produce request
per partition, so at a steady rate the count of small requests, not of records, is what the
broker pays for (docs/performance.md#a-steady-rate). The logging costs the broker CPU itself:
keep the window to a few seconds, and do not read CPU figures from the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from smsflow.devstack.broker import LocalBroker  # noqa: E402

LOGGER = "kafka.request.logger"
#: The broker stamps its log in the machine's local time (the JVM's default zone).
LOCAL: tzinfo | None = datetime.now(UTC).astimezone().tzinfo
_STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")
_API = re.compile(r'"requestApiKeyName":"(\w+)"')
_CLIENT = re.compile(r'"clientId":"([^"]*)"')
# In a produce request's summary: each topic's name, then its partitions' indexes.
_PRODUCED = re.compile(r'\{"name":"([^"]+)","partitionData":\[(.*?)\]\}')
_DIGITS = re.compile(r"\d+")
_RUN_PREFIX = re.compile(r"^[\w-]+?\.(?=sms\.)|^smsflow-[\w-]+?-(?=[a-z-]+-changelog$)")


@dataclass(frozen=True)
class Request:
    """One ``Completed request`` line: when, which API, which client, and for a produce request
    ``(topic, partitions)`` of each topic it wrote."""

    at: datetime
    api: str
    client: str
    produced: tuple[tuple[str, int], ...] = ()


def parse_line(line: str) -> Request | None:
    """The request a log line completed, or None for any other line."""
    if "Completed request:" not in line:
        return None
    stamp, api = _STAMP.match(line), _API.search(line)
    if stamp is None or api is None:
        return None
    client = _CLIENT.search(line)
    produced: tuple[tuple[str, int], ...] = ()
    if api.group(1) == "PRODUCE":
        request_part = line.split('"response":', 1)[0]  # the response repeats the names
        produced = tuple((name, body.count('"index":'))
                         for name, body in _PRODUCED.findall(request_part))
    at = datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f").replace(tzinfo=LOCAL)
    return Request(at, api.group(1), client.group(1) if client else "?", produced)


def _short_topic(name: str) -> str:
    """A run's topic without its run prefix (``bench-1a2b.sms.sent`` -> ``sms.sent``)."""
    return _RUN_PREFIX.sub("", name)


@dataclass
class Summary:
    seconds: float
    by_api: Counter[str] = field(default_factory=Counter)
    by_client: Counter[str] = field(default_factory=Counter)
    produce_by_topic: Counter[str] = field(default_factory=Counter)
    partitions_per_produce: Counter[int] = field(default_factory=Counter)

    def as_json(self) -> dict[str, object]:
        per_s = max(self.seconds, 1e-9)
        return {
            "seconds": round(self.seconds, 2),
            "requests_per_s": round(sum(self.by_api.values()) / per_s, 1),
            "by_api_per_s": {k: round(v / per_s, 1) for k, v in self.by_api.most_common()},
            "by_client_per_s": {k: round(v / per_s, 1) for k, v in self.by_client.most_common()},
            "produce_by_topic_per_s": {
                k: round(v / per_s, 1) for k, v in self.produce_by_topic.most_common()},
            "partitions_per_produce_request": dict(sorted(self.partitions_per_produce.items())),
        }


def summarize(requests: Iterable[Request], since: datetime, until: datetime) -> Summary:
    """Counts of the requests completed in ``[since, until]``."""
    summary = Summary((until - since).total_seconds())
    for request in requests:
        if not since <= request.at <= until:
            continue
        summary.by_api[request.api] += 1
        # Client ids carry counters (aiokafka-0.14.0, faust-0.15.3, adminclient-7): by kind.
        summary.by_client[f"{_DIGITS.sub('N', request.client)} {request.api}"] += 1
        if request.api == "PRODUCE":
            summary.partitions_per_produce[sum(n for _, n in request.produced)] += 1
            for topic, _partitions in request.produced:
                summary.produce_by_topic[_short_topic(topic)] += 1
    return summary


def log_files(log: Path) -> list[Path]:
    """server.log and its rolled copies (``server.log.1`` the newest), oldest first; other
    files beside them are not the broker's log."""
    rolled = [p for p in log.parent.glob(log.name + ".*") if p.suffix[1:].isdigit()]
    return [*sorted(rolled, key=lambda p: -int(p.suffix[1:])), log]


def _set_level(broker: LocalBroker, bootstrap: str, level: str) -> None:
    command = [broker.java(), "-Xmx256m", "-cp", f"{broker.libs_dir}/*",
               "kafka.admin.ConfigCommand", "--bootstrap-server", bootstrap,
               "--entity-type", "broker-loggers", "--entity-name", "1",
               "--alter", "--add-config", f"{LOGGER}={level}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise SystemExit(f"could not set {LOGGER} to {level}: {done.stderr.strip()[-400:]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="how long to log")
    parser.add_argument("--home", type=Path, help="the broker's --home (default: smsflow's)")
    parser.add_argument("--bootstrap", default=os.environ.get("SMSFLOW_KAFKA_BOOTSTRAP"),
                        help="default: $SMSFLOW_KAFKA_BOOTSTRAP, else where the broker of "
                             "--home listens")
    parser.add_argument("--json", action="store_true", help="print one JSON object only")
    args = parser.parse_args()
    broker = LocalBroker.from_env(home=args.home)
    bootstrap = args.bootstrap or broker.running_address()
    if bootstrap is None:
        parser.error(f"no broker runs in {broker.home}; give --home or --bootstrap")
    _set_level(broker, bootstrap, "DEBUG")
    since = datetime.now(LOCAL)
    try:
        time.sleep(args.seconds)
    finally:
        until = datetime.now(LOCAL)
        _set_level(broker, bootstrap, "WARN")
    requests = (parsed for path in log_files(broker.server_log)
                for line in path.read_text(errors="replace").splitlines()
                if (parsed := parse_line(line)) is not None)
    found = summarize(requests, since, until).as_json()
    if args.json:
        print(json.dumps(found))
    else:
        print(json.dumps(found, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
