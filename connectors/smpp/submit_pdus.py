"""Encoding one message's submit_sm PDUs for the client, with SMPP's field limits checked.

Pure: the bind's defaults come from its :class:`~connectors.smpp.models.SmppClientConfig`,
per-message fields from :class:`SubmitOptions`; the bytes come from the shared codec
(:mod:`connectors.smpp.codec`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from smsflow.domain.encoding import SegmentPlan

from .codec import (
    encode_submit_sm_from_prefix,
    encode_submit_sm_prefix,
)
from .models import (
    SmppClientConfig,
)

# C-string fields of submit_sm: maximum length including the NUL terminator.
_SUBMIT_CSTRING_MAX: Final = {
    "service_type": 6,
    "source_addr": 21,
    "destination_addr": 21,
    "schedule_delivery_time": 17,
    "validity_period": 17,
}
_MAX_SHORT_MESSAGE: Final = 254


@dataclass(frozen=True, slots=True)
class SubmitOptions:
    """Per-message submit_sm fields (``None`` TON/NPI: the config's defaults)."""

    registered_delivery: int = 1
    source_addr_ton: int | None = None
    source_addr_npi: int | None = None
    dest_addr_ton: int | None = None
    dest_addr_npi: int | None = None
    service_type: str = ""
    protocol_id: int = 0
    priority_flag: int = 0
    schedule_delivery_time: str = ""
    validity_period: str = ""



def _check_cstring(name: str, value: str) -> None:
    try:
        encoded = value.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(f"{name} must be latin-1 text") from None
    if len(encoded) >= _SUBMIT_CSTRING_MAX[name]:
        raise ValueError(f"{name} longer than {_SUBMIT_CSTRING_MAX[name] - 1} characters")
    if "\x00" in value:
        raise ValueError(f"{name} contains NUL")


def _check_octet(name: str, value: int) -> None:
    if not 0 <= value <= 0xFF:
        raise ValueError(f"{name} must fit in one octet, got {value}")



def build_submit_pdus(
    cfg: SmppClientConfig,
    plan: SegmentPlan,
    source_addr: str,
    destination_addr: str,
    options: SubmitOptions,
) -> list[bytearray]:
    """The submit_sm PDUs of one message (sequence numbers 0: set at send time), checked
against SMPP's field limits; ``ValueError`` names the field that does not fit. Written out
field by field (no dict or dataclass per message): it runs for every message the sender
submits."""
    source_ton = (cfg.default_source_addr_ton if options.source_addr_ton is None
                  else options.source_addr_ton)
    source_npi = (cfg.default_source_addr_npi if options.source_addr_npi is None
                  else options.source_addr_npi)
    dest_ton = cfg.default_dest_addr_ton if options.dest_addr_ton is None else options.dest_addr_ton
    dest_npi = cfg.default_dest_addr_npi if options.dest_addr_npi is None else options.dest_addr_npi
    _check_cstring("service_type", options.service_type)
    _check_cstring("source_addr", source_addr)
    _check_cstring("destination_addr", destination_addr)
    _check_cstring("schedule_delivery_time", options.schedule_delivery_time)
    _check_cstring("validity_period", options.validity_period)
    for name, value in (
        ("source_addr_ton", source_ton),
        ("source_addr_npi", source_npi),
        ("dest_addr_ton", dest_ton),
        ("dest_addr_npi", dest_npi),
        ("esm_class", plan.esm_class),
        ("protocol_id", options.protocol_id),
        ("priority_flag", options.priority_flag),
        ("registered_delivery", options.registered_delivery),
        ("data_coding", plan.data_coding),
    ):
        _check_octet(name, value)
    if not destination_addr:
        raise ValueError("destination_addr is empty")
    head = encode_submit_sm_prefix(
        options.service_type, source_ton, source_npi, source_addr, dest_ton, dest_npi,
        destination_addr, plan.esm_class, options.protocol_id, options.priority_flag,
        options.schedule_delivery_time, options.validity_period, options.registered_delivery,
        plan.data_coding,
    )
    pdus = []
    for payload in plan.payloads:
        if len(payload) > _MAX_SHORT_MESSAGE:
            raise ValueError(f"part of {len(payload)} octets > {_MAX_SHORT_MESSAGE}")
        pdus.append(encode_submit_sm_from_prefix(head, payload))
    return pdus


def source_ton_npi(source: str) -> tuple[int, int]:
    """TON/NPI of a sender id: international number, short code, or alphanumeric."""
    digits = source.removeprefix("+")
    if digits.isdigit():
        return (1, 1) if len(digits) > 8 else (3, 0)
    return (5, 0)
