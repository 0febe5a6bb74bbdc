"""``deliver_sm`` bodies for mobile-originated (MO) messages the simulator injects.

A subscriber's text to a short code / long number / sender id, as an SMSC would deliver it:
esm_class 0 (not a receipt), GSM/ASCII text in data_coding 0 when it fits Latin-1, UCS-2 (0x08)
otherwise. The simulator queues it like a receipt: round-robin to receiver-capable binds, retried
after a negative ``deliver_sm_resp`` (so an ESME that cannot store it gets it again).
"""

from __future__ import annotations

_TON_INTERNATIONAL, _NPI_ISDN = 1, 1
_TON_UNKNOWN, _NPI_UNKNOWN = 0, 0
_MAX_SHORT_MESSAGE = 254


def _address(addr: str) -> bytes:
    digits = addr.lstrip("+")
    if addr.startswith("+") and digits.isdigit():
        ton, npi = _TON_INTERNATIONAL, _NPI_ISDN
    else:
        ton, npi = _TON_UNKNOWN, _NPI_UNKNOWN
    return bytes((ton, npi)) + digits.encode("latin-1") + b"\x00"


def mo_deliver_sm_body(source: str, destination: str, text: str) -> bytes:
    """The body (after the 16-byte header) of an MO deliver_sm.

    >>> mo_deliver_sm_body("+447700900123", "60001", "STOP")[:16]
    b'\\x00\\x01\\x01447700900123\\x00'
    """
    try:
        short_message, data_coding = text.encode("latin-1"), 0x00
    except UnicodeEncodeError:
        short_message, data_coding = text.encode("utf-16-be"), 0x08
    if len(short_message) > _MAX_SHORT_MESSAGE:
        raise ValueError(f"MO text too long for one deliver_sm ({len(short_message)} bytes)")
    # service_type "", source, destination, esm_class 0 (MO), protocol_id, priority_flag,
    # schedule "", validity "", registered_delivery, replace_if_present, data_coding,
    # sm_default_msg_id, sm_length, short_message.
    return b"".join((
        b"\x00", _address(source), _address(destination),
        b"\x00\x00\x00\x00\x00\x00\x00", bytes((data_coding,)), b"\x00",
        bytes((len(short_message),)), short_message,
    ))
