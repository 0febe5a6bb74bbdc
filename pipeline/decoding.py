"""The agents' record decoding: a record decodes, or it becomes a rejection with its reason.

:func:`decode` waits out a schema-registry outage (see :mod:`schemas.retrying`).
:func:`decode_or_reject` is what every agent does with an input record: the decoded model, or
``None`` once a ``Rejection`` with the reason code and the original bytes was sent to
``sms.rejected`` (a record that does not decode never crashes the stream nor is skipped
silently).
"""

from __future__ import annotations

from typing import Any, TypeVar

import faust
from pydantic import ValidationError

from pipeline.outputs import OutputTopic
from pipeline.rejections import reject
from schemas.codec import DecodeError
from schemas.models import AvroModel
from schemas.retrying import decode

__all__ = ["INVALID_RECORD", "decode", "decode_or_reject"]

M = TypeVar("M", bound=AvroModel)

#: The reason code of a record that decodes as Avro but does not validate as its contract.
INVALID_RECORD = "INVALID_RECORD"


async def decode_or_reject(
    model: type[M], event: faust.EventT[Any], rejections: OutputTopic, *, stage: str
) -> M | None:
    """``event``'s value as ``model``; None after sending its rejection (awaited until handed
    to the producer, as every agent output)."""
    try:
        return await decode(model, event.value)
    except DecodeError as exc:
        reason_code, detail = exc.reason_code, str(exc)
    except ValidationError as exc:
        reason_code, detail = INVALID_RECORD, str(exc).splitlines()[0]
    await reject(event, rejections, stage=stage, reason_code=reason_code, detail=detail)
    return None
