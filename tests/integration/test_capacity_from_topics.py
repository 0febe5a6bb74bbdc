"""`smsflow capacity report --from-topics` counts delivery reports on a real topic.

Reports are produced over three partitions with ``submitted_at`` in three UTC hours; the report
must count messages and parts per hour (peak, tenants, operators) exactly, and leave no consumer
group behind (the reader assigns partitions and commits nothing).
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from schemas.models import DeliveryReport, DeliveryStatus
from smsflow.cli import main
from smsflow.kafka_clients import producer_config
from tests.integration.conftest import TopicFactory

HOUR = datetime(2026, 11, 2, 9, tzinfo=UTC)  # a Monday
#: The report's own consumer group (smsflow/cli/capacity_sources.py: a uuid4 after the prefix),
#: not the app ids of drills named "capacity" that another test session may be running.
REPORT_GROUP = re.compile(r"smsflow-capacity-[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$")
# (hour offset, tenant, operator, parts, how many)
TRAFFIC = (
    (0, "acme", "gb-ee", 1, 30),
    (1, "acme", "gb-ee", 1, 50),
    (1, "globex", "de-tmobile", 3, 20),
    (2, "globex", "de-tmobile", 2, 10),
)


def _report(
    hour_offset: int, tenant: str, operator: str, parts: int, minute: int,
) -> DeliveryReport:
    submitted = HOUR + timedelta(hours=hour_offset, minutes=minute % 60)
    return DeliveryReport(
        message_id=uuid.uuid4().hex, tenant_id=tenant, route_id=f"{operator}-direct",
        smsc_id="smsc-test", operator_id=operator, country="GB", destination="+447700900123",
        parts=parts, status=DeliveryStatus.DELIVERED, error_code=0,
        smsc_message_ids=[uuid.uuid4().hex[:8] for _ in range(parts)],
        submitted_at=submitted, sent_at=submitted, done_at=submitted + timedelta(seconds=2),
    )


def test_report_counts_the_topic(
    kafka_bootstrap: str, topic_factory: TopicFactory, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], tmp_path: Path,
) -> None:
    monkeypatch.setenv("SMSFLOW_KAFKA_BOOTSTRAP", kafka_bootstrap)
    topic = topic_factory(partitions=3)
    producer = Producer(producer_config(kafka_bootstrap))
    for offset, tenant, operator, parts, count in TRAFFIC:
        for index in range(count):
            report = _report(offset, tenant, operator, parts, index)
            producer.produce(topic, key=report.tenant_id.encode(), value=report.to_avro(topic))
    assert producer.flush(30) == 0

    saved = tmp_path / "history.csv"
    assert main(["capacity", "report", "--json", "--from-topics", "--topic", topic,
                 "--save-history", str(saved)]) == 0
    report = json.loads(capsys.readouterr().out)["report"]
    # The saved history gives the same report without Kafka.
    assert main(["capacity", "report", "--json", "--history", str(saved)]) == 0
    assert json.loads(capsys.readouterr().out)["report"] == report

    # Hour 1 is the peak: 50 x 1 + 20 x 3 = 110 parts, 70 messages.
    assert report["peak"]["hour"] == (HOUR + timedelta(hours=1)).isoformat()
    assert (report["peak"]["messages"], report["peak"]["parts"]) == (70, 110)
    assert report["total_messages"] == 110
    assert report["total_parts"] == 30 + 50 + 60 + 20
    # Monday 10:00 UTC is hour-of-week 10.
    assert report["weekly_parts_per_s"][10] == round(110 / 3600, 3)
    assert {t["id"]: t["parts"] for t in report["tenants"]} == {"acme": 80, "globex": 80}
    # Each operator's own busiest hour: both in hour 1 (50 and 20 x 3 parts).
    assert {o["id"]: (o["peak_hour"], o["peak_parts_per_s"]) for o in report["operators"]} == {
        "gb-ee": (report["peak"]["hour"], round(50 / 3600, 3)),
        "de-tmobile": (report["peak"]["hour"], round(60 / 3600, 3)),
    }
    # result()'s own timeout: beside another session's drill this call once hung for minutes.
    groups = AdminClient({"bootstrap.servers": kafka_bootstrap}).list_consumer_groups(
        request_timeout=10).result(timeout=30)
    assert not [g.group_id for g in groups.valid if REPORT_GROUP.match(g.group_id)]


def test_a_missing_topic_is_a_clear_error(
    kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SMSFLOW_KAFKA_BOOTSTRAP", kafka_bootstrap)
    missing = f"no-such-topic-{uuid.uuid4().hex[:8]}"
    assert main(["capacity", "report", "--from-topics", "--topic", missing]) == 2
    assert f"topic {missing} does not exist" in capsys.readouterr().err
