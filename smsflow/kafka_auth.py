"""Credentials the broker refuses stop the process, with one line naming the setting to fix.

Kafka clients treat a refused connection like any other: librdkafka and aiokafka log it and
retry for ever, so a wrong ``SMSFLOW_KAFKA_SASL_PASSWORD`` looked like a process that was up
but did nothing. Kafka's own rule is that an authentication failure is not retriable; here:

* **At start-up** every long-running process (worker, sender, API, webhooks connector) calls
  :func:`checked_connection` before it builds a client: a confluent-kafka ``AdminClient`` asks
  for metadata, and librdkafka's ``error_cb`` tells a refusal (``_AUTHENTICATION``, a TLS handshake
  the client or the broker rejected) from a broker that is merely unreachable. A refusal raises
  :class:`KafkaAuthError`; the process logs it and exits with :data:`EXIT_KAFKA_AUTH`. An
  unreachable broker is not a verdict: the process starts and waits for it, as before.
* **At run time** (the password rotated on the broker, then a reconnect): every confluent client
  built by smsflow/kafka_clients.py reports errors to :func:`confluent_error`, and the worker's
  aiokafka connections to :func:`report_refusal` (pipeline/faust_patches/auth_refusal.py). Once
  a process has called :func:`check_at_startup` (``armed``), the first refusal logs the same
  line and ends the process at once with :data:`EXIT_KAFKA_AUTH`: no record is lost by that,
  Kafka holds them and each process restarts from its committed positions, exactly as after
  the SIGKILLs of the chaos drills. Unarmed (tests, tools), a refusal is only logged.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from smsflow.domain.errors import PermanentError
from smsflow.kafka_security import (
    KafkaConnection,
    KafkaSecurity,
    confluent_security,
    kafka_connection,
)
from smsflow.settings import Settings

__all__ = [
    "EXIT_KAFKA_AUTH", "KafkaAuthError", "arm", "check_at_startup", "checked_connection",
    "confluent_error", "refusal",
    "report_refusal", "sasl_refused", "verify_credentials",
]

log = logging.getLogger(__name__)

EXIT_KAFKA_AUTH = 78
"""sysexits' EX_CONFIG: the configuration is wrong, restarting as is will not help."""

STARTUP_CHECK_S = 20.0
"""How long the start-up check waits for a verdict (a refusal comes within a second)."""

# What librdkafka says when the broker's TLS alert refuses our certificate (or its absence):
# it reports a transport error, not an authentication one, so the alert text is all there is.
_CERT_REFUSED = ("alert bad certificate", "alert certificate required", "alert unknown ca",
                 "alert certificate unknown", "alert handshake failure")


class KafkaAuthError(PermanentError):
    """The broker refused this process's credentials (SASL) or certificate (TLS)."""


def refusal(security: KafkaSecurity, code: int, text: str) -> str | None:
    """The one-line explanation of a librdkafka error if it is a refusal, else None."""
    if code == KafkaError._AUTHENTICATION:
        return sasl_refused(security, text)
    if code == KafkaError._SSL:
        return (f"the TLS handshake with the broker failed: check SMSFLOW_KAFKA_SSL_CA_FILE "
                f"(the CA that signed the broker's certificate) and "
                f"SMSFLOW_KAFKA_SECURITY_PROTOCOL (librdkafka: {text})")
    if code == KafkaError._TRANSPORT and any(alert in text for alert in _CERT_REFUSED):
        return (f"the broker refused this client's TLS certificate: check "
                f"SMSFLOW_KAFKA_SSL_CERT_FILE and SMSFLOW_KAFKA_SSL_KEY_FILE (a certificate "
                f"signed by a CA the broker trusts) (librdkafka: {text})")
    return None


def sasl_refused(security: KafkaSecurity, detail: str) -> str:
    return (f"SASL authentication failed ({security.mechanism} as user "
            f"{security.username!r}): check SMSFLOW_KAFKA_SASL_USERNAME and "
            f"SMSFLOW_KAFKA_SASL_PASSWORD (and SMSFLOW_KAFKA_SASL_MECHANISM) (broker: {detail})")


def verify_credentials(conn: KafkaConnection, timeout_s: float = STARTUP_CHECK_S) -> bool:
    """Raise :class:`KafkaAuthError` if the broker refuses ``conn``'s credentials; True once a
    metadata request succeeded, False if no verdict came within ``timeout_s`` (unreachable)."""
    errors: list[KafkaError] = []
    config: dict[str, Any] = {
        "bootstrap.servers": conn.bootstrap, **confluent_security(conn.security),
        "error_cb": errors.append,
        # The refusal is raised below; librdkafka's own FAIL lines would only repeat it.
        "log_level": 0,
    }
    admin = AdminClient(config)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            admin.list_topics(timeout=min(1.0, max(0.1, deadline - time.monotonic())))
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


class _Guard:
    """Whether a refusal ends this process (armed by :func:`check_at_startup`), and whether
    one was reported already (one log line, not one per retry)."""

    def __init__(self) -> None:
        self.armed = False
        self.reported = False
        self.lock = threading.Lock()


_guard = _Guard()


def arm() -> None:
    """From now on a refusal at run time ends this process (see the module)."""
    _guard.armed = True


def check_at_startup(conn: KafkaConnection, timeout_s: float = STARTUP_CHECK_S) -> None:
    """For a process entry point, before it builds a client: a refusal is logged and ends the
    process (``SystemExit`` with :data:`EXIT_KAFKA_AUTH`). Arms the run-time rule either way."""
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


def report_refusal(reason: str) -> None:
    """A client was refused at run time: log once; end the process if armed."""
    with _guard.lock:
        first = not _guard.reported
        _guard.reported = True
    if first:
        log.critical("Kafka refused this process: %s", reason)
    if _guard.armed:
        logging.shutdown()  # the line above reaches its handlers before the exit
        os._exit(EXIT_KAFKA_AUTH)


def confluent_error(security: KafkaSecurity) -> Any:
    """An ``error_cb`` for a confluent-kafka client with this security: refusals go to
    :func:`report_refusal`, other errors (a broker restart) are librdkafka's to retry."""

    def on_error(error: KafkaError) -> None:
        reason = refusal(security, error.code(), error.str())
        if reason is not None:
            report_refusal(reason)
        else:
            log.debug("kafka client error: %s", error.str())

    return on_error
