"""A part's ``sms.dlr.parts`` record, spliced from the ``sms.sent`` record it completes.

``PartOutcome`` is ``{sent: SubmitOutcome, status, error_code, reason, done_at}``, and in Avro
binary a nested record is just its fields' bytes one after the other. So the body of a part's
outcome is the body of the ``sms.sent`` record as it was read (and validated, when the
correlator first decoded it) followed by the four fields of how it ended. Splicing saves the
correlator decoding the stored submit outcome again when its receipt completes it, building
the nested model and encoding it all again: about a fifth of its cost per part.

Only a ``sms.sent`` record in the current contract's single-object framing is spliced; with a
schema registry or any other framing :func:`part_value` answers ``None`` and the caller takes
the model path (tests/unit/pipeline/test_part_value.py checks both give the same bytes).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from schemas.codec import AvroCodec
from schemas.models import DeliveryStatus, PartOutcome, SubmitOutcome
from schemas.registry import contracts
from schemas.specialized import read_string, writer

_PART_SCHEMA = contracts()["PartOutcome"].schema_json
# Everything after ``sent``: self-contained (the DeliveryStatus enum is defined in ``status``).
_write_end = writer({
    "type": "record", "name": "PartOutcomeEnd", "namespace": "io.smsflow",
    "fields": _PART_SCHEMA["fields"][1:],
})


@dataclass(frozen=True, slots=True)
class PartEnd:
    """How a part ended: the fields of its ``PartOutcome`` after ``sent``."""

    status: DeliveryStatus
    error_code: int | None
    reason: str | None
    done_at: datetime

    def outcome(self, sent: SubmitOutcome) -> PartOutcome:
        return PartOutcome(sent=sent, status=self.status, error_code=self.error_code,
                           reason=self.reason, done_at=self.done_at)


def part_value(sent_value: bytes, end: PartEnd) -> tuple[str, bytes] | None:
    """``(message_id, PartOutcome value)`` of the part whose ``sms.sent`` value is
    ``sent_value``, or ``None`` when that value cannot be spliced (see the module)."""
    sent_codec, part_codec = SubmitOutcome.codec(), PartOutcome.codec()
    if (_write_end is None or not isinstance(sent_codec, AvroCodec)
            or not isinstance(part_codec, AvroCodec)
            or not sent_value.startswith(sent_codec.header)):
        return None
    header = len(sent_codec.header)
    out = bytearray(part_codec.header)
    out += memoryview(sent_value)[header:]
    _write_end(out, {"status": end.status, "error_code": end.error_code, "reason": end.reason,
                     "done_at": end.done_at})
    message_id, _ = read_string(sent_value, header)  # the first field of SubmitOutcome
    return message_id, bytes(out)
