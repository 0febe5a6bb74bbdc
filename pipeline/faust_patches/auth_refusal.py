"""A SASL refusal of any aiokafka connection of the worker reaches smsflow/kafka_refusal.py.

Answers: aiokafka 0.14.0 (pinned) catches every ``KafkaError`` of a new connection, including
``SaslAuthenticationFailed`` (Kafka error 58, not retriable), logs it and tries again for ever
(``AIOKafkaClient.bootstrap`` and ``_get_conn``). faust's consumer and producers and the
worker's topic followers all connect through ``aiokafka.client.create_conn``; :func:`install`
wraps that name so a refusal is handed to :func:`smsflow.kafka_refusal.report_refusal` (which
ends an armed process with one clear line) before aiokafka sees the error as before.
tests/unit/pipeline/faust_patches/test_upstream.py fails when the code in :data:`UPSTREAM`
changes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiokafka.client
from aiokafka.errors import SaslAuthenticationFailed

from pipeline.faust_patches.upstream import Upstream
from smsflow.kafka_refusal import sasl_refused
from smsflow.kafka_security import KafkaSecurity

__all__ = ["UPSTREAM", "install"]

UPSTREAM: tuple[Upstream, ...] = (
    Upstream("aiokafka.client:AIOKafkaClient.bootstrap", "198943b004e55849",
             "bootstrap connections made with the module's create_conn; errors logged, retried"),
    Upstream("aiokafka.client:AIOKafkaClient._get_conn", "68ce5d8391719d33",
             "broker connections made with the module's create_conn; errors logged, retried"),
    Upstream("aiokafka.conn:create_conn", "673276cbddb4dc7c",
             "awaits the connection, SASL handshake included, and raises its error"),
    Upstream("aiokafka.conn:AIOKafkaConnection._do_sasl_handshake", "d4f7b5acbbecc07b",
             "a refused SaslAuthenticate raises Errors.for_code(58): SaslAuthenticationFailed"),
)

Report = Callable[[str], None]


def install(security: KafkaSecurity, report: Report) -> None:
    """Wrap ``aiokafka.client.create_conn`` (once per process; a later call changes only what
    is reported and where)."""
    original = getattr(aiokafka.client.create_conn, "__wrapped_by_smsflow__",
                       aiokafka.client.create_conn)

    async def create_conn(*args: Any, **kwargs: Any) -> Any:
        try:
            return await original(*args, **kwargs)
        except SaslAuthenticationFailed as exc:
            report(sasl_refused(security, str(exc)))
            raise

    create_conn.__wrapped_by_smsflow__ = original  # type: ignore[attr-defined]
    aiokafka.client.create_conn = create_conn
