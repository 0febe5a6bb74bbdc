"""``smsflow dlr tail|export``: read the delivery reports analysts consume, without writing code.

``tail`` follows ``sms.dlr`` (optionally one tenant) and prints one line per report;
``export`` writes every report currently on the topic to CSV or Parquet and stops.
Both read with their own throw-away consumer group and never commit, so they cannot disturb
any real consumer.
"""

from __future__ import annotations

import argparse
import csv
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError

from schemas.codec import DecodeError
from schemas.models import DeliveryReport
from schemas.retrying import decode_blocking
from smsflow.kafka_clients import client_config
from smsflow.kafka_security import KafkaTarget, kafka_connection
from smsflow.settings import load_settings
from smsflow.topics import DLR, topic_name

COLUMNS: tuple[str, ...] = tuple(DeliveryReport.model_fields)


def _consumer(bootstrap: KafkaTarget, *, from_beginning: bool) -> Consumer:
    return Consumer({
        **client_config(bootstrap),
        "group.id": f"smsflow-dlr-cli-{uuid.uuid4()}",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest" if from_beginning else "latest",
        "enable.partition.eof": True,
    })


def read_reports(
    bootstrap: KafkaTarget, topic: str, *, follow: bool, from_beginning: bool,
    tenant: str | None = None,
    idle_timeout_s: float = 10.0,
) -> Iterator[DeliveryReport]:
    """Reports in partition order. Without ``follow``, stop once every partition hit its end."""
    consumer = _consumer(bootstrap, from_beginning=from_beginning)
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.subscribe([topic])
    at_end: set[int] = set()
    try:
        while follow or len(at_end) < len(partitions):
            message = consumer.poll(1.0 if follow else idle_timeout_s)
            if message is None:
                if follow:
                    continue
                raise TimeoutError(f"no record or end-of-partition from {topic}")
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    at_end.add(message.partition() or 0)
                    continue
                raise RuntimeError(f"reading {topic}: {error}")
            try:
                report = decode_blocking(DeliveryReport, message.value())
            except DecodeError as exc:
                print(f"skipping undecodable record at {topic}/{message.partition()}@"
                      f"{message.offset()}: {exc}", file=sys.stderr)
                continue
            if tenant is None or report.tenant_id == tenant:
                yield report
    finally:
        consumer.close()


def _row(report: DeliveryReport) -> dict[str, Any]:
    row = report.model_dump(mode="python")
    row["smsc_message_ids"] = ";".join(report.smsc_message_ids)
    for key, value in row.items():
        if isinstance(value, datetime):
            row[key] = value.isoformat()
        elif hasattr(value, "value"):
            row[key] = value.value
    return row


def _line(report: DeliveryReport) -> str:
    return (
        f"{report.done_at.isoformat(timespec='milliseconds')} {report.tenant_id:<14} "
        f"{report.message_id} {report.status.value:<13} {report.destination:<16} "
        f"{report.route_id}/{report.operator_id} parts={report.parts}"
        + (f" err={report.error_code}" if report.error_code is not None else "")
    )


def _cmd_tail(args: argparse.Namespace) -> int:
    settings = load_settings()
    try:
        for report in read_reports(
            kafka_connection(settings), topic_name(settings, DLR), follow=not args.no_follow,
            from_beginning=args.from_beginning, tenant=args.tenant,
        ):
            print(_line(report), flush=True)
    except KeyboardInterrupt:
        pass
    return 0


def export(reports: Iterator[DeliveryReport], out: Path, fmt: str) -> int:
    rows = [_row(report) for report in reports]
    if fmt == "csv":
        with out.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
    else:
        import pyarrow as pa  # optional dependency: pip install 'smsflow[analytics]'
        import pyarrow.parquet as pq

        table = pa.Table.from_pylist(rows) if rows else pa.table({c: [] for c in COLUMNS})
        pq.write_table(table, out)
    return len(rows)


def _cmd_export(args: argparse.Namespace) -> int:
    settings = load_settings()
    reports = read_reports(
        kafka_connection(settings), topic_name(settings, DLR), follow=False, from_beginning=True,
        tenant=args.tenant,
    )
    count = export(reports, args.output, args.format)
    print(f"wrote {count} delivery reports to {args.output}")
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("dlr", help="read delivery reports (sms.dlr)")
    sub = parser.add_subparsers(dest="dlr_command", required=True)
    tail = sub.add_parser("tail", help="print delivery reports as they arrive")
    tail.add_argument("--tenant", help="only this tenant's reports")
    tail.add_argument("--from-beginning", action="store_true", help="start at the oldest report")
    tail.add_argument("--no-follow", action="store_true", help="stop at the end of the topic")
    tail.set_defaults(func=_cmd_tail)
    exp = sub.add_parser("export", help="write all reports on the topic to a file")
    exp.add_argument("--format", choices=("csv", "parquet"), default="csv")
    exp.add_argument("--tenant", help="only this tenant's reports")
    exp.add_argument("--output", "-o", type=Path, required=True)
    exp.set_defaults(func=_cmd_export)


__all__ = ["COLUMNS", "export", "read_reports", "register"]
