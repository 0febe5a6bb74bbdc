"""What a refused Kafka login looks like, and the run-time rule: a refusal ends the process.

Kafka clients treat a refused connection like any other: librdkafka and aiokafka log it and
retry for ever, so a wrong ``SMSFLOW_KAFKA_SASL_PASSWORD`` looked like a process that was up
but did nothing. Kafka's own rule is that an authentication failure is not retriable. Here:

* :func:`refusal` tells a refusal (librdkafka's ``_AUTHENTICATION``, a TLS handshake the client
  or the broker rejected) from a broker that is merely unreachable or restarting, and says in
  one line which ``SMSFLOW_KAFKA_*`` setting to check.
* Every confluent client built by smsflow/kafka_clients.py with TLS or SASL reports its errors
  to :func:`confluent_error`; the worker's aiokafka connections report SASL refusals to
  :func:`report_refusal` (pipeline/faust_patches/auth_refusal.py).
* Once a process entry point has armed the rule (:func:`arm`, done by
  smsflow/kafka_auth.py's start-up check), the first refusal logs that line and ends the
  process at once with :data:`EXIT_KAFKA_AUTH`: as abrupt as a SIGKILL, and as safe, since
  Kafka holds the records and each process resumes from its committed positions (the SIGKILL
  drills of bench/chaos.py). A graceful stop would need the broker that just refused us.
  Unarmed (tests, tools), a refusal is logged once and the clients go on retrying.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

from confluent_kafka import KafkaError

from smsflow.domain.errors import PermanentError
from smsflow.kafka_security import KafkaSecurity

__all__ = [
    "EXIT_KAFKA_AUTH", "KafkaAuthError", "arm", "confluent_error", "refusal", "report_refusal",
    "sasl_refused",
]

log = logging.getLogger(__name__)

EXIT_KAFKA_AUTH = 78
"""sysexits' EX_CONFIG: the configuration is wrong; restarting as is will not help."""

# What librdkafka says when the broker's TLS alert refuses our certificate (or its absence):
# it reports a transport error, not an authentication one, so the alert text is all there is.
_CERT_REFUSED = ("alert bad certificate", "alert certificate required", "alert unknown ca",
                 "alert certificate unknown", "alert handshake failure")


# librdkafka's text when a SASL handshake ends because the connection failed, not because the
# broker refused: "SASL SCRAM-SHA-256 mechanism handshake failed: Local: Broker transport
# failure: broker's supported mechanisms: (n/a)" (seen once under load in the password-rotation
# test: the process exited 78 with the right password).
_TRANSPORT_FAILURE = "Local: Broker transport failure"


class KafkaAuthError(PermanentError):
    """The broker refused this process's credentials (SASL) or certificate (TLS)."""


def sasl_refused(security: KafkaSecurity, detail: str) -> str:
    return (f"SASL authentication failed ({security.mechanism} as user "
            f"{security.username!r}): check SMSFLOW_KAFKA_SASL_USERNAME and "
            f"SMSFLOW_KAFKA_SASL_PASSWORD (and SMSFLOW_KAFKA_SASL_MECHANISM) (broker: {detail})")


def refusal(security: KafkaSecurity, code: int, text: str) -> str | None:
    """The one-line explanation of a librdkafka error if it is a refusal, else None."""
    if code == KafkaError._AUTHENTICATION:
        if _TRANSPORT_FAILURE in text:
            # The connection dropped during the SASL handshake (librdkafka still files it under
            # _AUTHENTICATION): no verdict on the credentials, the client reconnects.
            return None
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


class _Guard:
    """Whether a refusal ends this process, and whether one was logged already (one line,
    not one per retry)."""

    def __init__(self) -> None:
        self.armed = False
        self.reported = False
        self.lock = threading.Lock()


_guard = _Guard()


def arm() -> None:
    """From now on a refusal ends this process (see the module)."""
    _guard.armed = True


def report_refusal(reason: str) -> None:
    """A client was refused: log once; end the process if armed."""
    with _guard.lock:
        first = not _guard.reported
        _guard.reported = True
    if first:
        log.critical("Kafka refused this process: %s", reason)
    if _guard.armed:
        logging.shutdown()  # the line above reaches its handlers before the exit
        os._exit(EXIT_KAFKA_AUTH)


def confluent_error(security: KafkaSecurity) -> Callable[[KafkaError], None]:
    """An ``error_cb`` for a confluent-kafka client with this security: refusals go to
    :func:`report_refusal`; other errors (a broker restart) are librdkafka's to retry."""

    def on_error(error: KafkaError) -> None:
        reason = refusal(security, error.code(), error.str())
        if reason is not None:
            report_refusal(reason)
        else:
            log.debug("kafka client error: %s", error.str())

    return on_error
