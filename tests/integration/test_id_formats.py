"""Receipt correlation when the SMSC writes ids differently in receipts than in submit_sm_resp.

Every other flow test uses the simulator's default (the same lower-case hex id in submit_sm_resp
and receipts, text and TLV). Here it answers ``submit_sm`` in hex but writes receipts, text
only, in decimal, the case Kannel's ``msg-id-type`` exists for. The SMSC connections say so
(``submit_id_format: hex``, ``receipt_id_format: dec``); both ids must normalise to the same
correlation key, and every message must get exactly one report from its receipt.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml

from schemas.models import DeliveryReport
from smsflow.config.kafka_io import apply_config
from smsflow.config.store import load_yaml
from smsflow.devstack.flowrun import make_traffic, run_flow, warm_up
from smsflow.devstack.harness import (
    isolated_settings,
    prepared_stack,
    read_all,
    read_outcomes,
)
from smsflow.topics import CONFIG, DLR, topic_name
from tests.paths import PLATFORM_CONFIG, SIM_CONFIG

pytestmark = pytest.mark.slow


def test_hex_submit_ids_and_decimal_receipt_ids_correlate(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    sim = yaml.safe_load(SIM_CONFIG.read_text())
    sim.update(message_id_format="hex", receipt_id_format="dec", receipt_format="text")
    sim_config = tmp_path / "dec-sim.yaml"
    sim_config.write_text(yaml.safe_dump(sim))
    settings = isolated_settings(kafka_bootstrap, tmp_path, "dec-ids")

    stack = prepared_stack(settings, platform_config=PLATFORM_CONFIG, sim_config=sim_config)
    config = load_yaml(PLATFORM_CONFIG)
    smscs = tuple(
        smsc.model_copy(update={"port": stack.sim_port, "submit_id_format": "hex",
                                "receipt_id_format": "dec"})
        for smsc in config.smscs
    )
    apply_config(settings.kafka_bootstrap, topic_name(settings, CONFIG),
                 config.model_copy(update={"smscs": smscs}))
    requests = make_traffic(200, seed=11)
    with stack:
        warm_up(settings, timeout_s=120)
        result = run_flow(settings, requests, timeout_s=120)
        stack.check_alive()

    assert result.lost == 0 and result.duplicates == 0, result.summary()
    ids = {r.message_id for r in requests}
    sent = read_outcomes(settings)
    smsc_ids = [s.smsc_message_id for s in sent if s.message_id in ids and s.smsc_message_id]
    # Stored normalised (decimal value of the id), whatever format the SMSC wrote.
    assert smsc_ids and all(i.isdigit() for i in smsc_ids), smsc_ids[:3]
    reports = [DeliveryReport.from_avro(v) for v in read_all(settings, DLR)]
    assert Counter(r.message_id for r in reports if r.message_id in ids) == Counter(
        {message_id: 1 for message_id in ids})
    # Matched receipts, not our own expiry: the receipts' outcomes came through.
    assert not [r for r in reports if r.message_id in ids and r.status.value == "EXPIRED"
                and r.reason and "validity" in r.reason]
