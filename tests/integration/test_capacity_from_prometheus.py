"""``smsflow capacity --prometheus``: the same plan from a real Prometheus as from the CSV.

The 8-week history of tests/unit/cli/test_capacity_plan.py is written as the worker's counters
(``smsflow_routed_messages_total`` / ``_parts_total`` per tenant and operator, a sample every
15 minutes, the hour's traffic spread evenly), backfilled with ``promtool tsdb
create-blocks-from openmetrics`` into a fresh TSDB, and served by Debian's ``prometheus``
server. The report and plan read through its HTTP API must equal those from the CSV.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from smsflow.cli import main
from smsflow.cli.capacity_sources import write_history_csv
from smsflow.devstack.harness import free_port
from smsflow.devstack.stack import ManagedProcess, wait_for_port
from smsflow.domain.capacity import HourlyCount
from tests.unit.cli.test_capacity_plan import NOW, _events_csv, _history, _platform_yaml

QUARTERS = 4  # samples per hour
FAMILIES = (("messages", "smsflow_routed_messages"), ("parts", "smsflow_routed_parts"))
WEEK_S = 7 * 24 * 3600


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: `apt-get install -y prometheus` (.ci/run does)")
    return path


def _series_lines(history: Iterable[HourlyCount], field: str, family: str) -> Iterator[str]:
    by_series: dict[tuple[str, str], list[HourlyCount]] = {}
    for count in history:
        by_series.setdefault((count.tenant_id, count.operator_id), []).append(count)
    yield f"# TYPE {family} counter"
    for (tenant, operator), counts in sorted(by_series.items()):
        labels = f'{{tenant="{tenant}",operator="{operator}"}}'
        total = 0.0
        yield f"{family}_total{labels} 0 {counts[0].hour.timestamp():.0f}"
        for count in sorted(counts, key=lambda c: c.hour):
            step = getattr(count, field) / QUARTERS
            for quarter in range(1, QUARTERS + 1):
                total += step
                stamp = count.hour + timedelta(minutes=60 * quarter // QUARTERS)
                yield f"{family}_total{labels} {total} {stamp.timestamp():.0f}"


def _write_weekly_chunks(history: list[HourlyCount], directory: Path) -> list[Path]:
    """Both counter families as OpenMetrics files of one week each (``# EOF``-terminated).

    promtool 2.42 (Debian's) writes one TSDB block per 2 h: 673 for the 8 weeks, ~35 s of CPU
    in one process, and it has no flag for larger blocks. Weekly files converted in parallel
    use every core and pass less input per block. A week is a whole number of 2 h blocks from
    the epoch, so the files' blocks never overlap."""
    directory.mkdir()
    weeks: dict[int, list[tuple[str, str]]] = {}
    for field, family in FAMILIES:
        for line in _series_lines(history, field, family):
            if not line.startswith("#"):
                stamp = int(line.rsplit(" ", 1)[1])
                weeks.setdefault(stamp // WEEK_S, []).append((family, line))
    chunks: list[Path] = []
    for week, lines in sorted(weeks.items()):
        chunk = directory / f"week-{week}.om"
        with chunk.open("w") as out:
            for _, family in FAMILIES:
                out.write(f"# TYPE {family} counter\n")
                out.writelines(line + "\n" for of, line in lines if of == family)
            out.write("# EOF\n")
        chunks.append(chunk)
    return chunks


@pytest.fixture(scope="module")
def prometheus_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp_path = tmp_path_factory.mktemp("prometheus")
    data = tmp_path / "tsdb"
    promtool = _tool("promtool")

    def backfill(chunk: Path) -> None:
        subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", str(chunk),
                        str(data)], check=True, capture_output=True, timeout=300)

    chunks = _write_weekly_chunks(_history(), tmp_path / "history")
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        list(pool.map(backfill, chunks))  # list(): raise the first failure
    config = tmp_path / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1h\nscrape_configs: []\n")
    port = free_port()
    server = ManagedProcess("prometheus", [
        _tool("prometheus"), f"--config.file={config}", f"--storage.tsdb.path={data}",
        "--storage.tsdb.retention.time=10y", f"--web.listen-address=127.0.0.1:{port}",
    ], tmp_path / "prometheus.log")
    server.start(dict(os.environ))
    try:
        wait_for_port("127.0.0.1", port, 60)
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url)
        yield url
    finally:
        server.stop()


def _wait_ready(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError("prometheus never became ready")


def _run_json(args: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert main(args) == 0, capsys.readouterr().err
    document: dict[str, Any] = json.loads(capsys.readouterr().out)
    return document


def test_the_plan_from_prometheus_equals_the_plan_from_the_csv(
    prometheus_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--events", str(_events_csv(tmp_path / "events.csv")),
              "--config", str(_platform_yaml(tmp_path / "platform.yaml")), "--now", NOW,
              "--partitions", "4", "--json"]
    csv = tmp_path / "history.csv"
    write_history_csv(csv, _history())
    expected = _run_json(["capacity", "plan", "--history", str(csv), *common], capsys)

    saved = tmp_path / "from-prometheus.csv"
    got = _run_json(["capacity", "plan", "--prometheus", prometheus_url, "--days", "56",
                     "--save-history", str(saved), *common], capsys)
    assert got == expected
    assert sorted(saved.read_text().splitlines()) == sorted(csv.read_text().splitlines()), \
        "hour by hour, the same counts"


def test_no_series_in_range_is_a_clear_error(
    prometheus_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["capacity", "report", "--prometheus", prometheus_url, "--days", "7",
                 "--now", "2025-01-01T00:00:00+00:00"]) == 2
    assert "no smsflow_routed_messages_total in that range" in capsys.readouterr().err


def test_an_unreachable_server_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["capacity", "report", "--prometheus", url]) == 2
    assert f"cannot query Prometheus at {url}" in capsys.readouterr().err
