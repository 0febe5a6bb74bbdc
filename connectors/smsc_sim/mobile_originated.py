"""``deliver_sm`` bodies for mobile-originated (MO) messages the simulator injects.

A subscriber's text to a short code / long number / sender id, as an SMSC would deliver it:
esm_class 0 (not a receipt), GSM/ASCII text in data_coding 0 when it fits Latin-1, UCS-2 (0x08)
otherwise. The simulator queues it like a receipt: round-robin to receiver-capable binds, retried
after a negative ``deliver_sm_resp`` (so an ESME that cannot store it gets it again). The body is
encoded by the one SMPP codec (``connectors/smpp/codec``), as the client decodes it.
"""

from __future__ import annotations

from connectors.smpp import codec as P

_TON_INTERNATIONAL, _NPI_ISDN = 1, 1
_TON_UNKNOWN, _NPI_UNKNOWN = 0, 0
_DATA_CODING_DEFAULT, _DATA_CODING_UCS2 = 0x00, 0x08


def _address(addr: str) -> tuple[int, int, str]:
    """TON, NPI and digits: ``+`` and digits is international/ISDN, anything else unknown."""
    digits = addr.lstrip("+")
    if addr.startswith("+") and digits.isdigit():
        return _TON_INTERNATIONAL, _NPI_ISDN, digits
    return _TON_UNKNOWN, _NPI_UNKNOWN, digits


def mo_deliver_sm_body(source: str, destination: str, text: str) -> bytes:
    """The body (after the 16-byte header) of an MO deliver_sm; ``PduError`` when the text does
    not fit one short_message (254 octets).

    >>> mo_deliver_sm_body("+447700900123", "60001", "STOP")[:16]
    b'\\x00\\x01\\x01447700900123\\x00'
    """
    try:
        short_message, data_coding = text.encode("latin-1"), _DATA_CODING_DEFAULT
    except UnicodeEncodeError:
        short_message, data_coding = text.encode("utf-16-be"), _DATA_CODING_UCS2
    source_ton, source_npi, source_addr = _address(source)
    dest_ton, dest_npi, destination_addr = _address(destination)
    return P.DeliverSm(
        source_addr_ton=source_ton, source_addr_npi=source_npi, source_addr=source_addr,
        dest_addr_ton=dest_ton, dest_addr_npi=dest_npi, destination_addr=destination_addr,
        esm_class=0x00, data_coding=data_coding, short_message=short_message,
    ).encode()
