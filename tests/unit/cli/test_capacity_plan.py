"""`smsflow capacity plan --json` on a generated 8-week history, checked against hand arithmetic.

The history: 8 weeks from Monday 2026-10-05 00:00 UTC. Every hour's messages are
18,000 x k(hour of day) x w(weekday) x tenant share x operator share, with
k = DAILY_SHAPE (20 at 12:00), w = 4 on Mon-Fri, 2 on Sat, 1 on Sun, tenants acme 3/4 (1 part
per message) and globex 1/4 (2 parts), operators gb-ee 3/5 and de-tmobile 2/5. Black Friday
(Fri 2026-11-27) carries 4x every hour. The expected numbers below are worked out by hand in the
comments, not by the code under test.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from smsflow.cli import main
from smsflow.cli.capacity_sources import write_history_csv
from smsflow.domain.capacity import HourlyCount

START = datetime(2026, 10, 5, tzinfo=UTC)  # a Monday
WEEKS = 8
DAILY_SHAPE = (1, 1, 1, 1, 1, 1, 1, 4, 10, 14, 17, 19, 20, 19, 18, 16, 14, 12, 10, 8, 6, 4, 2, 1)
WEEKDAY_WEIGHT = (4, 4, 4, 4, 4, 2, 1)
TENANTS = (("acme", 3, 4, 1), ("globex", 1, 4, 2))  # id, share numerator/denominator, parts
OPERATORS = (("gb-ee", 3, 5), ("de-tmobile", 2, 5))
BLACK_FRIDAY = datetime(2026, 11, 27, tzinfo=UTC)
NOW = "2026-11-30T00:00:00+00:00"


def _history() -> list[HourlyCount]:
    counts = []
    for offset in range(WEEKS * 7 * 24):
        hour = START + timedelta(hours=offset)
        total = 18_000 * DAILY_SHAPE[hour.hour] * WEEKDAY_WEIGHT[hour.weekday()]
        if BLACK_FRIDAY <= hour < BLACK_FRIDAY + timedelta(days=1):
            total *= 4
        for tenant, t_num, t_den, parts in TENANTS:
            for operator, o_num, o_den in OPERATORS:
                messages = total * t_num * o_num // (t_den * o_den)
                counts.append(HourlyCount(hour, tenant, operator, messages, messages * parts))
    return counts


def _platform_yaml(path: Path) -> Path:
    config = {
        "operators": [
            {"id": "gb-ee", "name": "EE", "country": "GB", "mcc_mnc": "23430",
             "prefixes": ["+44"]},
            {"id": "de-tmobile", "name": "T-Mobile", "country": "DE",
             "mcc_mnc": "26201", "prefixes": ["+49"]},
        ],
        "smscs": [
            {"id": "smsc-uk", "host": "127.0.0.1", "port": 2775, "system_id": "uk",
             "password": "env:SMSC_PASSWORD", "region": "eu", "binds": 2, "window": 32},
            {"id": "smsc-de", "host": "127.0.0.1", "port": 2776, "system_id": "de",
             "password": "env:SMSC_PASSWORD", "region": "eu", "binds": 1, "window": 64},
        ],
        "routes": [
            {"id": "uk-direct", "smsc": "smsc-uk", "operators": ["gb-ee"], "tps": 500,
             "cost": 0.03},
            {"id": "de-direct", "smsc": "smsc-de", "operators": ["de-tmobile"], "tps": 1000,
             "cost": 0.05},
        ],
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _events_csv(path: Path) -> Path:
    path.write_text(
        "name,start,end,expected_multiplier\n"
        "black-friday,2026-11-27T00:00:00Z,2026-11-28T00:00:00Z,\n"
        "black-friday,2027-11-26T00:00:00Z,2027-11-27T00:00:00Z,\n"
        "launch,2027-03-01T00:00:00Z,2027-03-02T00:00:00Z,1.5\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def inputs(tmp_path: Path) -> list[str]:
    history = tmp_path / "history.csv"
    write_history_csv(history, _history())
    return [
        "--history", str(history), "--events", str(_events_csv(tmp_path / "events.csv")),
        "--config", str(_platform_yaml(tmp_path / "platform.yaml")), "--now", NOW,
        "--partitions", "4",
    ]


def _run_json(args: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert main(args) == 0
    document: dict[str, Any] = json.loads(capsys.readouterr().out)
    return document


def test_plan_matches_the_hand_computation(
    inputs: list[str], capsys: pytest.CaptureFixture[str],
) -> None:
    document = _run_json(["capacity", "plan", "--json", *inputs], capsys)
    report, plan = document["report"], document["plan"]

    # Everyday peak: a weekday 12:00 = 18,000 x 20 x 4 = 1,440,000 messages -> 400 msg/s.
    # Parts: 3/4 x 1 + 1/4 x 2 = 1.25 per message -> 1,800,000 parts -> 500 parts/s.
    # The first such hour is Monday 2026-10-05 12:00.
    assert report["peak"]["hour"] == "2026-10-05T12:00:00+00:00"
    assert report["peak"]["messages"] == 1_440_000
    assert report["peak"]["msgs_per_s"] == 400.0
    assert report["peak"]["parts_per_s"] == 500.0
    # Weekly pattern: Mon 12:00 500 parts/s, Sat 12:00 half, Sun 12:00 a quarter.
    assert report["weekly_parts_per_s"][12] == 500.0
    assert report["weekly_parts_per_s"][5 * 24 + 12] == 250.0
    assert report["weekly_parts_per_s"][6 * 24 + 12] == 125.0
    # Daily 12:00 over 55 non-event days: (39 x 500 + 8 x 250 + 8 x 125) / 55 = 409.091.
    assert report["daily_parts_per_s"][12] == pytest.approx(22_500 / 55, abs=1e-3)
    # Black Friday 12:00: 4 x 500 = 2,000 parts/s, uplift 4.
    [black_friday] = report["events"]
    assert black_friday["peak_parts_per_s"] == 2000.0
    assert black_friday["uplift"] == 4.0
    assert [t["id"] for t in report["tenants"]] == ["acme", "globex"]
    # acme: 3/4 of messages at 1 part = 0.75 / 1.25 = 60 % of parts.
    assert report["tenants"][0]["share"] == 0.6
    # gb-ee: 3/5 of everything; its everyday peak 3/5 x 500 = 300 parts/s (Black Friday left
    # out), its Saturday 12:00 3/5 x 250 = 150.
    gb_ee = report["operators"][0]
    assert (gb_ee["id"], gb_ee["parts"], gb_ee["share"]) == (
        "gb-ee", report["total_parts"] * 3 // 5, 0.6)
    assert (gb_ee["peak_hour"], gb_ee["peak_parts_per_s"]) == ("2026-10-05T12:00:00+00:00", 300.0)
    assert gb_ee["weekly_parts_per_s"][5 * 24 + 12] == 150.0

    # Plan: 2 x peak x 1.25 = 1,000 msg/s and 1,250 parts/s.
    assert plan["planned_msgs_per_s"] == 1000.0
    assert plan["planned_parts_per_s"] == 1250.0
    # Workers ceil(1000 / 1000) = 1; senders ceil(1250 / 4407) = 1; API ceil(1000 / 3000) = 1.
    assert plan["worker_replicas"]["value"] == 1
    assert plan["sender_replicas"]["value"] == 1
    assert plan["api_replicas"]["value"] == 1
    # Partitions: max(4, 2 x max(1, 1)) = 4, as today.
    assert plan["flow_topic_partitions"] == {**plan["flow_topic_partitions"],
                                             "value": 4, "current": 4}
    # smsc-uk carries gb-ee (60 %): 750 parts/s; a bind does 32 / 0.5 s = 64 parts/s;
    # ceil(750 / 64) = 12 binds, and 750 > the route's 500 tps.
    uk = plan["smscs"]["smsc-uk"]
    assert (uk["planned_parts_per_s"], uk["per_bind_parts_per_s"]) == (750.0, 64.0)
    assert (uk["binds"]["value"], uk["binds"]["current"]) == (12, 2)
    assert any("exceeds the routes' tps 500" in note for note in uk["notes"])
    # smsc-de: 40 % = 500 parts/s; 64 / 0.5 = 128 per bind; ceil(500 / 128) = 4; within 1000 tps.
    de = plan["smscs"]["smsc-de"]
    assert (de["planned_parts_per_s"], de["binds"]["value"], de["notes"]) == (500.0, 4, [])

    # Upcoming events, in date order; the past Black Friday is history, not a plan.
    launch, next_black_friday = plan["events"]
    # launch: given 1.5x -> 500 x 1.5 x 1.25 = 937.5 parts/s < 1,250: covered by the plan;
    # workers ceil(400 x 1.5 x 1.25 / 1000) = ceil(750 / 1000) = 1.
    assert (launch["name"], launch["multiplier"], launch["multiplier_source"]) == (
        "launch", 1.5, "given")
    assert launch["exceeds_plan"] is False
    assert launch["worker_replicas"]["value"] == 1
    assert launch["provision_by"] == "2027-02-15T00:00:00+00:00"
    # Black Friday 2027: observed 4x -> 2,000 msg/s and 2,500 parts/s with 25 % headroom;
    # workers ceil(2000 / 1000) = 2, senders ceil(2500 / 4407) = 1, API ceil(2000 / 3000) = 1,
    # partitions max(4, 2 x 2) = 4; provision by 14 days before: 2027-11-12.
    assert next_black_friday["multiplier"] == 4.0
    assert next_black_friday["multiplier_source"] == "observed 2026-11-27"
    assert next_black_friday["exceeds_plan"] is True
    assert next_black_friday["provision_by"] == "2027-11-12T00:00:00+00:00"
    assert [next_black_friday[name]["value"] for name in (
        "worker_replicas", "sender_replicas", "api_replicas", "flow_topic_partitions",
    )] == [2, 1, 1, 4]


def test_every_figure_shows_its_arithmetic(
    inputs: list[str], capsys: pytest.CaptureFixture[str],
) -> None:
    plan = _run_json(["capacity", "plan", "--json", *inputs], capsys)["plan"]
    assert plan["worker_replicas"]["arithmetic"] == (
        "ceil(1000.0 msg/s / 1000 msg/s per process) = 1")
    assert plan["smscs"]["smsc-de"]["binds"]["arithmetic"].endswith("ceil(500.0 / 128) = 4")


def test_headroom_and_growth_are_parameters(
    inputs: list[str], capsys: pytest.CaptureFixture[str],
) -> None:
    plan = _run_json(
        ["capacity", "plan", "--json", *inputs, "--headroom", "0.3", "--growth", "3",
         "--worker-msgs-per-s", "300"], capsys,
    )["plan"]
    # 400 x 3 x 1.3 = 1,560 msg/s -> workers ceil(1560 / 300) = 6 -> partitions max(4, 12).
    assert plan["planned_msgs_per_s"] == 1560.0
    assert plan["worker_replicas"]["value"] == 6
    assert plan["flow_topic_partitions"]["value"] == 12


def test_the_png_is_drawn(
    inputs: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    png = tmp_path / "weekly.png"
    assert main(["capacity", "plan", *inputs, "--png", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 10_000
    assert "worker_replicas" in capsys.readouterr().out


def test_a_bad_history_is_refused_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    history = tmp_path / "history.csv"
    history.write_text(
        "hour,tenant_id,operator_id,messages,parts\n2026-10-05T12:00:00,acme,gb-ee,10,10\n",
        encoding="utf-8",
    )
    assert main(["capacity", "report", "--history", str(history)]) == 2
    assert f"{history}:2" in capsys.readouterr().err
