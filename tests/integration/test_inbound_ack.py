"""An MO message is acknowledged to the SMSC only after Kafka stored it on ``sms.inbound``.

Real broker, real simulator session: the simulator originates ``STOP`` to a tenant's short
code; the first produces fail, so the sender answers ESME_RX_T_APPN and the simulator delivers
it again until one copy is stored, and only that one is acknowledged.
"""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

from connectors.sender.service import SenderService
from schemas.models import InboundKeyword, InboundMessage
from smsflow.config.models import Inbound
from smsflow.config.store import load_yaml
from smsflow.devstack.harness import isolated_settings, read_records
from smsflow.topics import INBOUND, apply_topics, topic_name
from tests.integration.simulators import platform_simulator, pointed_at
from tests.integration.test_receipt_ack import FailingReceipts
from tests.paths import PLATFORM_CONFIG

FAILURES = 2


def test_mo_not_stored_is_not_acknowledged_and_comes_again(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = isolated_settings(kafka_bootstrap, tmp_path, "inboundack", partitions=1)
    apply_topics(settings)
    sim = platform_simulator(seed=5, receipt_retry_ms=50)
    config = pointed_at(load_yaml(PLATFORM_CONFIG), sim.port, binds=1)
    tenants = tuple(
        tenant.model_copy(update={"inbound": Inbound(numbers=("60001",))})
        if tenant.id == "acme-bank" else tenant
        for tenant in config.tenants
    )
    service = SenderService(settings, config.model_copy(update={
                                                                "tenants": tenants}),
                            group_id=f"inboundack-{uuid.uuid4().hex[:8]}")
    service.drain_timeout_s = 1.0
    inbound = topic_name(settings, INBOUND)
    service._producer = FailingReceipts(service._producer, inbound, FAILURES)  # type: ignore[assignment]
    runner = threading.Thread(target=service.run, name="sender-under-test", daemon=True)
    runner.start()
    try:
        # Queued on the account before or after the sender binds: delivered once it has.
        sim.originate("smsc-uk", "+447700900123", "60001", " Stop ")
        stats = sim.wait_for(lambda s: s.receipts_acked >= 1, timeout=60)
        assert stats.receipts_nacked == FAILURES
        assert stats.receipts_acked == 1
        records = read_records(settings, INBOUND)
        assert [key for key, _ in records] == [b"acme-bank"]
        value = records[0][1]
        assert value is not None
        stored = InboundMessage.from_avro(value)
        assert stored.tenant_id == "acme-bank" and stored.keyword is InboundKeyword.OPT_OUT
        assert stored.source == "+447700900123" and stored.destination == "60001"
    finally:
        service.stop()
        runner.join(30)
        sim.stop()
    assert not runner.is_alive()
