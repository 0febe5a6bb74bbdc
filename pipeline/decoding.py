"""Decoding a record inside an agent without dead-lettering good records during a registry
outage: ``RegistryUnavailableError`` says nothing about the record, so wait and try again;
every other ``DecodeError`` is the record's fault and goes to the caller (a rejection)."""

from __future__ import annotations

import asyncio
import logging
from typing import TypeVar

from schemas.models import AvroModel
from schemas.wire import RegistryUnavailableError

log = logging.getLogger(__name__)

M = TypeVar("M", bound=AvroModel)

MAX_BACKOFF_S = 30.0


async def decode(model: type[M], data: bytes | None) -> M:
    delay = 0.5
    while True:
        try:
            return model.from_avro(data)
        except RegistryUnavailableError as exc:
            log.warning("schema registry unavailable, retrying in %.1fs: %s", delay, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF_S)
