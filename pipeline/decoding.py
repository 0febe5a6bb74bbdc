"""The agents' record decoding: a record decodes, or it becomes a rejection with its reason.

:func:`decode` waits out a schema-registry outage (see :mod:`schemas.retrying`).
:func:`decode_or_reject` is what every agent does with an input record: the decoded model, or
``None`` once a ``Rejection`` with the reason code and the original bytes was sent to
``sms.rejected`` (a record that does not decode never crashes the stream nor is skipped
silently).
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar

import faust
from aiokafka import ConsumerRecord
from pydantic import ValidationError

from pipeline.outputs import OutputTopic
from pipeline.rejections import reject
from schemas.codec import DecodeError
from schemas.models import AvroModel
from schemas.retrying import decode, decode_fields

__all__ = [
    "INVALID_RECORD", "decode", "decode_fields_or_reject", "decode_or_log", "decode_or_reject",
]

log = logging.getLogger(__name__)

M = TypeVar("M", bound=AvroModel)

#: The reason code of a record that decodes as Avro but does not validate as its contract.
INVALID_RECORD = "INVALID_RECORD"


async def decode_or_reject(
    model: type[M], event: faust.EventT[Any], rejections: OutputTopic, *, stage: str,
    value: bytes | None = None,
) -> M | None:
    """``event``'s value (or ``value``, one of the values its record carries) as ``model``;
    None after sending its rejection (awaited until handed to the producer, as every agent
    output)."""
    data = event.value if value is None else value
    try:
        return await decode(model, data)
    except DecodeError as exc:
        reason_code, detail = exc.reason_code, str(exc)
    except ValidationError as exc:
        reason_code, detail = INVALID_RECORD, str(exc).splitlines()[0]
    await reject(event, rejections, stage=stage, reason_code=reason_code, detail=detail,
                 original=value)
    return None


async def decode_fields_or_reject(
    model: type[AvroModel], event: faust.EventT[Any], rejections: OutputTopic, *, stage: str,
    value: bytes | None = None,
) -> dict[str, Any] | None:
    """``event``'s value (or ``value``, one of the values its record carries) as the fields of
    ``model`` (:func:`schemas.retrying.decode_fields`: no pydantic model, for records our
    stages wrote); None after sending its rejection."""
    try:
        return await decode_fields(model, event.value if value is None else value)
    except DecodeError as exc:
        await reject(event, rejections, stage=stage, reason_code=exc.reason_code,
                     detail=str(exc), original=value)
        return None


async def decode_or_log(model: type[M], message: ConsumerRecord[bytes, bytes], what: str
                        ) -> M | None:
    """A state topic's record (route health, bind reports) as ``model``, or None after an
    error log: a follower of a compacted topic skips what it cannot read, the next report of
    the same key replaces it."""
    try:
        return await decode(model, message.value)
    except (DecodeError, ValueError) as exc:
        log.error("ignoring undecodable %s at %s@%d: %s", what, message.partition,
                  message.offset, exc)
        return None
