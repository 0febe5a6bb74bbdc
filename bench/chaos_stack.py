"""What every chaos drill shares (bench/chaos.py, bench/chaos_edges.py): the traffic with one
destination per message, the SMSC simulator's configuration per scenario, and the wait until
the sender has committed everything it will ever submit."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import Consumer, TopicPartition

from schemas.models import SubmitRequest
from smsflow.settings import Settings
from smsflow.topics import THROTTLED, topic_name

#: ``smsc-throttling``: share of submit_sm the simulator answers ESME_RTHROTTLED (0x58).
THROTTLE_RATIO = 0.3
#: ``receipts-before-resp``: submit_sm_resp held this long, receipts sent at once.
RESP_AFTER_RECEIPT_MS = 30.0


def unique_destinations(requests: list[SubmitRequest]) -> list[SubmitRequest]:
    """The same traffic with one destination per message: each keeps its number's prefix (so
    its country, operator and route) and gets a running suffix of the same length."""
    counters: dict[str, int] = {}
    out = []
    for request in requests:
        prefix, digits = request.destination[:-4], 4
        n = counters[prefix] = counters.get(prefix, -1) + 1
        if n >= 10 ** digits:
            raise ValueError(f"more than {10 ** digits} messages to {prefix}…")
        out.append(request.model_copy(update={"destination": f"{prefix}{n:0{digits}d}"}))
    return out


def sender_caught_up(settings: Settings, timeout_s: float = 120.0) -> None:
    """Wait until the sender group committed every sms.throttled record: every part it will
    ever submit for this traffic has been submitted (the simulator's count is then final)."""
    topic = topic_name(settings, THROTTLED)
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap,
                         "group.id": f"{settings.app_id}-sender", "enable.auto.commit": False})
    try:
        partitions = [TopicPartition(topic, p) for p in range(settings.partitions)]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            committed = [c.offset for c in consumer.committed(partitions, timeout=10)]
            marks = [consumer.get_watermark_offsets(tp, timeout=10) for tp in partitions]
            if all(high <= low or offset >= high  # an empty partition has nothing to commit
                   for offset, (low, high) in zip(committed, marks, strict=True)):
                return
            time.sleep(0.5)
        raise TimeoutError(f"sender did not commit sms.throttled: {committed} < {marks}")
    finally:
        consumer.close()


def sim_config(path: Path, scenario: str) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    config.update(count_duplicate_submits=True, stats_interval_s=0)
    if scenario == "smsc-throttling":
        profiles = config.setdefault("profiles", {})
        profiles.setdefault(config.get("default_profile", "default"), {})
        for profile in profiles.values():
            profile["throttle_ratio"] = THROTTLE_RATIO
    elif scenario == "receipts-before-resp":
        profiles = config.setdefault("profiles", {})
        profiles.setdefault(config.get("default_profile", "default"), {})
        for profile in profiles.values():
            profile.update(submit_latency_ms=RESP_AFTER_RECEIPT_MS, receipt_delay_ms=0,
                           receipt_jitter=0)
    elif scenario == "duplicate-receipts":
        config.update(duplicate_receipt_ratio=1.0, duplicate_receipt_delay_ms=50)
    return config
