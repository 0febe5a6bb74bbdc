"""The answer to an SMSC's ``deliver_sm`` (receipt or MO), given once Kafka has stored it.

ESME_ROK when the record it became is stored; ESME_RX_T_APPN when the produce failed, so the SMSC
delivers it again (at-least-once; the tracker deduplicates receipts). Acking before the store
would lose a message on a crash in between.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from confluent_kafka import KafkaError, Message

from connectors.smpp.client import AckFunction
from smsflow.domain.smpp_status import ESME_ROK, ESME_RX_T_APPN

log = logging.getLogger(__name__)


def ack_when_stored(
    ack: AckFunction, what: str, bind: str
) -> Callable[[KafkaError | None, Message], None]:
    """A producer delivery callback that answers the SMSC with ``ack`` once Kafka decided."""

    def on_delivery(error: KafkaError | None, _msg: Message) -> None:
        if error is None:
            ack(ESME_ROK)
        else:
            log.error("%s from %s not stored; asking the SMSC to resend it: %s", what, bind, error)
            ack(ESME_RX_T_APPN)

    return on_delivery
