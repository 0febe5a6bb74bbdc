"""Decoding a record without dead-lettering good records during a schema-registry outage.

``RegistryUnavailableError`` says nothing about the record: wait and try again, with backoff.
Every other ``DecodeError`` (and a pydantic ``ValidationError``) is the record's fault and goes
to the caller, which rejects it with its reason code. Two flavours: :func:`decode` for event
loops (the faust agents, the webhooks connector) and :func:`decode_blocking` for threads that
have nothing else to do meanwhile (the sender's consumer thread).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, TypeVar

from schemas.models import AvroModel
from schemas.wire import RegistryUnavailableError

log = logging.getLogger(__name__)

M = TypeVar("M", bound=AvroModel)

FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0


async def decode(model: type[M], data: bytes | None) -> M:
    delay = FIRST_BACKOFF_S
    while True:
        try:
            return model.from_avro(data)
        except RegistryUnavailableError as exc:
            log.warning("schema registry unavailable, retrying in %.1fs: %s", delay, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF_S)


async def decode_fields(model: type[AvroModel], data: bytes | None) -> dict[str, Any]:
    """The record's fields as the Avro codec reads them (typed by the schema, enums as their
    symbols), without building the pydantic model: for records our own stages wrote, where the
    model's validation would only repeat the codec's."""
    delay = FIRST_BACKOFF_S
    while True:
        try:
            return model.codec().decode(data)
        except RegistryUnavailableError as exc:
            log.warning("schema registry unavailable, retrying in %.1fs: %s", delay, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF_S)


def decode_blocking(model: type[M], data: bytes | None) -> M:
    delay = FIRST_BACKOFF_S
    while True:
        try:
            return model.from_avro(data)
        except RegistryUnavailableError as exc:
            log.warning("schema registry unavailable, retrying in %.1fs: %s", delay, exc)
            time.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF_S)
