"""A route whose SMSC cannot be reached: its traffic fails over to the next eligible route."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from connectors.producer import new_request
from schemas.models import DeliveryReport
from smsflow.devstack.flowrun import run_flow, warm_up
from smsflow.devstack.harness import isolated_settings, prepared_stack, read_all
from smsflow.topics import DLR
from tests.paths import SIM_CONFIG

pytestmark = pytest.mark.slow

CONFIG = Path(__file__).parent / "data" / "failover-platform.yaml"


def test_unreachable_smsc_fails_over_to_next_route(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = isolated_settings(kafka_bootstrap, tmp_path, "failover")
    with prepared_stack(settings, platform_config=CONFIG, sim_config=SIM_CONFIG) as stack:
        warm_up(settings, timeout_s=120)  # a German probe: not affected by the broken route
        uk = [new_request("shopfast", f"+4474012345{n:02d}", f"failover {n}") for n in range(20)]
        result = run_flow(settings, uk, timeout_s=120)
        stack.check_alive()

    assert result.lost == 0
    assert result.statuses["DELIVERED"] + result.statuses["UNDELIVERABLE"] \
        + result.statuses["REJECTED"] == len(uk)
    ids = {r.message_id for r in uk}
    routes = Counter(
        report.route_id for report in map(DeliveryReport.from_avro, read_all(settings, DLR))
        if report.message_id in ids
    )
    assert routes == Counter({"uk-direct": len(uk)}), routes
