"""The sender keeps its configuration when reading ``sms.config`` fails, instead of stopping.

A record names an SMSC the sender has no connection for, so the sender reads the configuration
again (``SenderService._refresh_config``). Here the topic holds a record that does not validate
(as while ``config apply`` is half written or another version wrote it): the sender goes on,
counts the failure, and rejects that record ``UNKNOWN_SMSC`` with the read's error in its
reason. Once the configuration is valid again and adds the SMSC, the next record to it is
submitted. Real broker, real SMPP simulator.
"""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka import Producer

import connectors.sender.config_refresh as config_refresh
from connectors.producer import new_request
from connectors.sender.service import SenderService
from schemas.models import (
    ConfigKind,
    ConfigRecord,
    Rejection,
    RoutedMessage,
    SubmitOutcome,
    SubmitStatus,
    TextEncoding,
)
from smsflow.config.kafka_io import apply_config
from smsflow.config.store import config_key, load_yaml
from smsflow.devstack.harness import isolated_settings, read_messages, read_outcomes
from smsflow.settings import Settings
from smsflow.topics import CONFIG, REJECTED, THROTTLED, apply_topics, topic_name
from tests.integration.simulators import platform_simulator, pointed_at
from tests.integration.waiting import wait_until
from tests.paths import PLATFORM_CONFIG

NEW_SMSC = "smsc-new"


def _routed_to_new_smsc(text: str) -> RoutedMessage:
    now = datetime.now(UTC)
    return RoutedMessage(
        request=new_request("acme-bank", "+447401300001", text, now=now),
        destination="+447401300001", route_id="uk-direct", smsc_id=NEW_SMSC,
        operator_id="op", country="GB", encoding=TextEncoding.GSM7, parts=1, routed_at=now)


def _produce(settings: Settings, topic: str, key: str, value: bytes) -> None:
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap})
    producer.produce(topic, key=key.encode(), value=value)
    assert producer.flush(10) == 0


def _rejections(settings: Settings, message_id: str) -> list[Rejection]:
    found = [Rejection.from_avro(m.value()) for m in read_messages(settings, REJECTED)]
    return [r for r in found if r.message_id == message_id]


def _outcomes(settings: Settings, message_id: str) -> list[SubmitOutcome]:
    return [o for o in read_outcomes(settings) if o.message_id == message_id]


def test_an_unreadable_configuration_is_survived_and_a_later_valid_one_is_used(
    kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Read again on every unknown SMSC instead of at most every 5 s: the test needs two reads.
    monkeypatch.setattr(config_refresh, "CONFIG_REFRESH_MIN_S", 0.0)
    settings = isolated_settings(kafka_bootstrap, tmp_path, "sender-config-read", partitions=1)
    apply_topics(settings)
    config_topic, throttled = topic_name(settings, CONFIG), topic_name(settings, THROTTLED)
    sim = platform_simulator(
        seed=7, profiles={"default": {"submit_latency_ms": 2, "receipt_delay_ms": 10}})
    config = pointed_at(load_yaml(PLATFORM_CONFIG), sim.port)
    # An SMSC record missing every required field: the fold refuses the whole topic.
    broken = ConfigRecord(kind=ConfigKind.SMSC, id=NEW_SMSC, document=f'{{"id": "{NEW_SMSC}"}}',
                          updated_at=datetime.now(UTC))
    key = config_key(ConfigKind.SMSC, NEW_SMSC)
    _produce(settings, config_topic, key, broken.to_avro(config_topic))

    service = SenderService(settings, config,
                            group_id=f"sender-config-read-{uuid.uuid4().hex[:8]}")
    service.drain_timeout_s = 1.0
    runner = threading.Thread(target=service.run, name="sender-under-test", daemon=True)
    runner.start()
    try:
        first = _routed_to_new_smsc("while the configuration is broken")
        _produce(settings, throttled, "uk-direct", first.to_avro(throttled))
        wait_until(lambda: bool(_rejections(settings, first.request.message_id)),
                   timeout_s=60, what="the record for the unknown SMSC rejected")
        assert runner.is_alive(), "the sender stopped on an unreadable configuration"
        assert service.stats["config_read_failures"] >= 1
        (rejection,) = _rejections(settings, first.request.message_id)
        assert rejection.reason_code == "UNKNOWN_SMSC"
        assert "configuration could not be read" in rejection.reason
        assert f"invalid config record {key!r}" in rejection.reason

        # The operator fixes the configuration and adds the SMSC for real.
        new_smsc = next(s for s in config.smscs if s.id == "smsc-uk").model_copy(
            update={"id": NEW_SMSC})
        fixed = config.model_copy(update={"smscs": (*config.smscs, new_smsc)})
        apply_config(settings.kafka_bootstrap, config_topic, fixed)
        failures = service.stats["config_read_failures"]
        second = _routed_to_new_smsc("once the configuration is valid")
        _produce(settings, throttled, "uk-direct", second.to_avro(throttled))
        wait_until(lambda: bool(_outcomes(settings, second.request.message_id)),
                   timeout_s=60, what="the record for the new SMSC submitted")
        (outcome,) = _outcomes(settings, second.request.message_id)
        assert (outcome.smsc_id, outcome.outcome) == (NEW_SMSC, SubmitStatus.ACCEPTED)
        assert service.stats["config_read_failures"] == failures
        assert not _rejections(settings, second.request.message_id)
        assert runner.is_alive()
    finally:
        service.stop()
        runner.join(30)
        sim.stop()
