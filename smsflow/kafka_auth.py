"""Wrong Kafka credentials stop a process at start-up, with one line naming the setting.

Every long-running process (worker, sender, API, webhooks connector) calls
:func:`checked_connection` before it builds a client: a confluent-kafka ``AdminClient`` asks for
metadata, and librdkafka's ``error_cb`` tells a refusal from a broker that is merely
unreachable (smsflow/kafka_refusal.py). A refusal is logged and the process exits with
``EXIT_KAFKA_AUTH`` (78) within seconds. An unreachable broker is no verdict: after
:data:`STARTUP_CHECK_S` the process starts and waits for it, as before. Either way the check
arms the run-time rule: a later refusal (a password rotated on the broker, then a reconnect)
ends the process too.
"""

from __future__ import annotations

import logging
import time

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from smsflow.kafka_clients import client_config
from smsflow.kafka_refusal import EXIT_KAFKA_AUTH, KafkaAuthError, arm, refusal
from smsflow.kafka_security import KafkaConnection, kafka_connection
from smsflow.settings import Settings

__all__ = ["STARTUP_CHECK_S", "check_at_startup", "checked_connection", "verify_credentials"]

log = logging.getLogger(__name__)

STARTUP_CHECK_S = 20.0
"""How long the start-up check waits for a verdict (a refusal comes within a second)."""


def verify_credentials(conn: KafkaConnection, timeout_s: float = STARTUP_CHECK_S) -> bool:
    """Raise :class:`KafkaAuthError` if the broker refuses ``conn``'s credentials; True once a
    metadata request succeeded, False if no verdict came within ``timeout_s`` (unreachable)."""
    errors: list[KafkaError] = []
    admin = AdminClient(client_config(
        conn, error_cb=errors.append,
        # The refusal is raised below; librdkafka's own FAIL lines would only repeat it.
        log_level=0,
    ))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            admin.list_topics(timeout=min(0.5, max(0.1, deadline - time.monotonic())))
            return True
        except KafkaException:
            admin.poll(0)  # serves error_cb
        for error in errors:
            reason = refusal(conn.security, error.code(), error.str())
            if reason is not None:
                raise KafkaAuthError(f"Kafka refused this process at {conn.bootstrap}: {reason}")
    last = errors[-1].str() if errors else "no answer"
    log.warning("could not reach Kafka at %s within %.0f s to check the credentials (%s); "
                "starting anyway", conn.bootstrap, timeout_s, last)
    return False


def check_at_startup(conn: KafkaConnection, timeout_s: float = STARTUP_CHECK_S) -> None:
    """For a process entry point, before it builds a client: a refusal is logged and ends the
    process (``SystemExit`` with ``EXIT_KAFKA_AUTH``). Arms the run-time rule either way."""
    arm()
    if conn.security.protocol == "PLAINTEXT":
        return  # nothing to refuse
    try:
        verify_credentials(conn, timeout_s)
    except KafkaAuthError as exc:
        log.critical("%s", exc)
        raise SystemExit(EXIT_KAFKA_AUTH) from None


def checked_connection(settings: Settings) -> KafkaConnection:
    """The process's Kafka connection, after :func:`check_at_startup`."""
    conn = kafka_connection(settings)
    check_at_startup(conn)
    return conn
