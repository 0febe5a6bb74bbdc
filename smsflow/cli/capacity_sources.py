"""Where ``smsflow capacity`` gets its inputs: the history, known events and the SMSC accounts.

* ``--from-topics``: every delivery report on ``sms.dlr``, counted per hour of ``submitted_at``
  (when the load entered the platform), tenant and operator, with its parts. The consumer assigns
  every partition from the beginning and reads to the high watermark it saw at the start; it
  joins no group and commits nothing, so no real consumer is disturbed.
* ``--history FILE.csv``: ``hour,tenant_id,operator_id,messages,parts`` (hour in ISO 8601 UTC).
* ``--events FILE.csv``: ``name,start,end[,expected_multiplier]``.
* the platform configuration (YAML) for each SMSC's window, binds and its routes' tps.
"""

from __future__ import annotations

import csv
import sys
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from schemas.codec import DecodeError
from schemas.models import DeliveryReport
from schemas.retrying import decode_blocking
from smsflow.config.models import PlatformConfig
from smsflow.domain.capacity import HistoryError, HourlyCount, KnownEvent, floor_hour
from smsflow.domain.capacity.plan import RouteLink, SmscLink
from smsflow.kafka_clients import client_config
from smsflow.kafka_security import KafkaTarget

HISTORY_COLUMNS = ("hour", "tenant_id", "operator_id", "messages", "parts")
EVENT_COLUMNS = ("name", "start", "end")
POLL_TIMEOUT_S = 10.0


def parse_utc(text: str, where: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise HistoryError(f"{where}: {text!r} is not an ISO 8601 time") from exc
    if moment.tzinfo is None:
        raise HistoryError(f"{where}: {text!r} has no time zone (add Z or +00:00)")
    return moment.astimezone(UTC)


def _require_columns(path: Path, found: Iterable[str] | None, needed: tuple[str, ...]) -> None:
    missing = [column for column in needed if column not in (found or ())]
    if missing:
        raise HistoryError(f"{path}: missing column(s) {', '.join(missing)}")


def read_history_csv(path: Path) -> list[HourlyCount]:
    counts: list[HourlyCount] = []
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        _require_columns(path, reader.fieldnames, HISTORY_COLUMNS)
        for line, row in enumerate(reader, start=2):
            where = f"{path}:{line}"
            try:
                messages, parts = int(row["messages"]), int(row["parts"])
            except ValueError as exc:
                raise HistoryError(f"{where}: messages and parts must be integers") from exc
            try:
                counts.append(HourlyCount(
                    parse_utc(row["hour"], where), row["tenant_id"], row["operator_id"],
                    messages, parts,
                ))
            except HistoryError as exc:
                raise HistoryError(f"{where}: {exc}") from exc
    return counts


def write_history_csv(path: Path, counts: Iterable[HourlyCount]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HISTORY_COLUMNS)
        for count in counts:
            writer.writerow((count.hour.isoformat(), count.tenant_id, count.operator_id,
                             count.messages, count.parts))


def read_events_csv(path: Path) -> list[KnownEvent]:
    events: list[KnownEvent] = []
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        _require_columns(path, reader.fieldnames, EVENT_COLUMNS)
        for line, row in enumerate(reader, start=2):
            where = f"{path}:{line}"
            multiplier_text = (row.get("expected_multiplier") or "").strip()
            try:
                multiplier = float(multiplier_text) if multiplier_text else None
            except ValueError as exc:
                raise HistoryError(f"{where}: expected_multiplier must be a number") from exc
            events.append(KnownEvent(
                row["name"].strip(), parse_utc(row["start"], where),
                parse_utc(row["end"], where), multiplier,
            ))
    return events


def smsc_links(config: PlatformConfig) -> list[SmscLink]:
    """Each SMSC account with its enabled routes (a disabled route carries nothing)."""
    return [
        SmscLink(
            smsc.id, smsc.window, smsc.binds,
            tuple(
                RouteLink(route.id, route.operators, route.tps)
                for route in config.routes if route.smsc == smsc.id and route.enabled
            ),
        )
        for smsc in config.smscs
    ]


def _count(report: DeliveryReport, into: dict[tuple[datetime, str, str], list[int]]) -> None:
    hour = floor_hour(report.submitted_at.astimezone(UTC))
    cell = into.setdefault((hour, report.tenant_id, report.operator_id), [0, 0])
    cell[0] += 1
    cell[1] += report.parts


def read_history_from_topic(bootstrap: KafkaTarget, topic: str) -> list[HourlyCount]:
    """Hourly counts of every delivery report on ``topic`` up to its end when the read began."""
    consumer = Consumer({
        **client_config(bootstrap),
        # Required by the client; never joined (assign) and never committed.
        "group.id": f"smsflow-capacity-{uuid.uuid4()}",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
    })
    cells: dict[tuple[datetime, str, str], list[int]] = {}
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is None or metadata.error is not None or not metadata.partitions:
            raise HistoryError(f"topic {topic} does not exist on {bootstrap}")
        ends: dict[int, int] = {}
        for partition in metadata.partitions:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=10,
            )
            if high > low:
                ends[partition] = high
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        while ends:
            message = consumer.poll(POLL_TIMEOUT_S)
            if message is None:
                raise HistoryError(f"no record from {topic} in {POLL_TIMEOUT_S:g} s")
            partition = message.partition() or 0
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    ends.pop(partition, None)
                    continue
                raise HistoryError(f"reading {topic}: {error}")
            offset = message.offset() or 0
            if partition in ends:
                try:
                    _count(decode_blocking(DeliveryReport, message.value()), cells)
                except DecodeError as exc:
                    print(f"capacity: skipping undecodable record {topic}/{partition}@{offset}: "
                          f"{exc}", file=sys.stderr)
                if offset + 1 >= ends[partition]:
                    ends.pop(partition)
    finally:
        consumer.close()
    return [
        HourlyCount(hour, tenant, operator, messages, parts)
        for (hour, tenant, operator), (messages, parts) in sorted(cells.items())
    ]
