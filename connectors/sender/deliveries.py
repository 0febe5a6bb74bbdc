"""What an SMSC delivers to the sender (``deliver_sm`` / ``data_sm``, on a bind's session
thread): receipts to ``sms.dlr.raw`` (in batches: connectors/sender/receipt_batches.py),
mobile-originated messages to ``sms.inbound``, and what cannot be read or placed to
``sms.rejected``.

Each is answered to the SMSC only once Kafka stored the record it became
(:func:`~connectors.sender.deliver_ack.ack_when_stored`): a crash before that leaves it
unanswered, and the SMSC delivers it again (at-least-once; the correlator deduplicates
receipts).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from confluent_kafka import KafkaError, Message

from connectors.sender.deliver_ack import ack_when_stored
from connectors.sender.faults import ReceiptHold
from connectors.sender.inbound import InboundClassifier, dead_letter
from connectors.sender.metrics import SenderMetrics
from connectors.sender.receipt_batches import ReceiptBatcher
from connectors.smpp.client import AckFunction
from connectors.smpp.models import InboundDeliver
from schemas.models import ReceiptEvent, Rejection
from smsflow.config.models import PlatformConfig, Smsc
from smsflow.domain.receipts import IdFormat, ReceiptError
from smsflow.settings import Settings
from smsflow.topics import DLR_RAW, INBOUND, REJECTED, topic_name

STAGE = "sender"

Produce = Callable[[str, str | None, bytes, Callable[[KafkaError | None, Message], None]], None]
"""``SenderService._produce`` (thread-safe): topic, key, value, delivery callback."""


class Deliveries:
    """The sender's handler of what SMSCs deliver (see the module docstring)."""

    def __init__(self, settings: Settings, config: PlatformConfig, smscs: Mapping[str, Smsc],
                 produce: Produce, metrics: SenderMetrics, stats: dict[str, int]) -> None:
        #: The sender's SMSCs by id (the sender adds to it as SMSCs are configured).
        self._smscs = smscs
        self._produce = produce
        self._metrics = metrics
        self._stats = stats
        self._receipts = topic_name(settings, DLR_RAW)
        self._inbound_topic = topic_name(settings, INBOUND)
        self._rejected = topic_name(settings, REJECTED)
        #: Maps an MO's destination to its tenant; replaced when the configuration changes.
        self.classifier = InboundClassifier(config)
        # Resolved once: AvroModel.to_avro looks the registry setting up for every record.
        self._receipt_codec = ReceiptEvent.codec()
        self._receipt_hold = ReceiptHold.from_env()  # test-only; inert unless its env is set
        #: Receipts go to Kafka in batches per partition (the sender tells it the partitions).
        self.receipts = ReceiptBatcher(produce, self._receipts,
                                       delay_s=settings.receipt_batch_ms / 1000)

    def on_deliver(self, inbound: InboundDeliver, ack: AckFunction) -> None:
        """A deliver_sm / data_sm from an SMSC (session thread).  Answered with ``ack`` only once
        Kafka has stored what it produced: ESME_ROK, or ESME_RX_T_APPN when the produce failed,
        so the SMSC delivers it again (at-least-once; the tracker deduplicates receipts)."""
        smsc = self._smscs[inbound.bind_name.rpartition("#")[0]]
        if not inbound.is_receipt:
            self._publish_inbound(inbound, smsc.id, ack)
            return
        now = datetime.now(UTC)
        try:
            receipt = inbound.parse_receipt(id_format=IdFormat(smsc.receipt_id_format))
        except ReceiptError as exc:
            self._metrics.rejected(exc.reason)
            rejection = Rejection(
                reason_code=exc.reason, reason=str(exc), stage=STAGE,
                source_topic=f"smpp:{inbound.bind_name}", source_partition=-1, source_offset=-1,
                original=inbound.short_message, rejected_at=now,
            )
            self._produce(self._rejected, None, rejection.to_avro(self._rejected),
                          ack_when_stored(ack, "rejected receipt", inbound.bind_name))
            return
        # The ReceiptEvent's fields, encoded without building the model (every value is
        # typed by the receipt parser): pydantic's validation cost more than the encoding.
        event = {
            "smsc_id": smsc.id, "smsc_message_id": receipt.smsc_message_id,
            "raw_message_id": receipt.raw_message_id, "state": receipt.state,
            "error_code": receipt.error_code, "done_at": receipt.done_at, "received_at": now,
            "bind": inbound.bind_name,
        }
        self._stats["receipts"] += 1
        if self._receipt_hold.holds(receipt.smsc_message_id):
            return  # a test-only fault: the receipt never stored, never answered
        self.receipts.add(
            f"{smsc.id}:{receipt.smsc_message_id}",
            ReceiptEvent.encode_fields_with(self._receipt_codec, event, self._receipts),
            ack_when_stored(ack, f"receipt {receipt.smsc_message_id}", inbound.bind_name),
        )

    def _publish_inbound(self, inbound: InboundDeliver, smsc_id: str, ack: AckFunction) -> None:
        """An MO message to ``sms.inbound``, or dead-lettered on ``sms.rejected`` when no tenant
        owns its destination; acked to the SMSC only once Kafka stored it."""
        key, message = self.classifier.event(inbound, smsc_id, datetime.now(UTC))
        self._stats["inbound"] += 1
        acked = ack_when_stored(ack, f"MO from {inbound.source_addr}", inbound.bind_name)
        if message.tenant_id is None:
            rejection = dead_letter(message, self._inbound_topic, STAGE)
            self._metrics.rejected(rejection.reason_code)
            self._produce(self._rejected, None, rejection.to_avro(self._rejected), acked)
            return
        self._produce(self._inbound_topic, key, message.to_avro(self._inbound_topic), acked)
