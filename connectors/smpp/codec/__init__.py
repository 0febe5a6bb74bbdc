"""The SMPP 3.4 codec: one table of numbers, one set of wire primitives, for every SMPP peer here.

The sender's client (:mod:`connectors.smpp.client`) and the SMSC simulator
(:mod:`connectors.smsc_sim`) both use it:

* :mod:`~connectors.smpp.codec.constants`: command ids, statuses, TLV tags, message states, the
  header struct;
* :mod:`~connectors.smpp.codec.primitives`: errors, C-Octet Strings, TLVs, stream framing
  (:class:`FrameSplitter`);
* :mod:`~connectors.smpp.codec.pdus`: every supported PDU as an object, both directions (what
  the simulator reads and answers);
* :mod:`~connectors.smpp.codec.client_bodies`: the few bodies the client reads and writes per
  message, decoded and encoded without PDU objects (its hot path).

Hot paths use the module-level ``int`` constants and ``HEADER`` struct directly.
"""

from __future__ import annotations

from connectors.smpp.codec.client_bodies import (
    DeliverBody,
    SubmitSmFields,
    encode_submit_sm,
    encode_submit_sm_from_prefix,
    encode_submit_sm_prefix,
    parse_data_sm,
    parse_deliver_sm,
    parse_message_id,
    set_sequence,
)
from connectors.smpp.codec.constants import (
    BIND_RECEIVER,
    BIND_RECEIVER_RESP,
    BIND_TRANSCEIVER,
    BIND_TRANSCEIVER_RESP,
    BIND_TRANSMITTER,
    BIND_TRANSMITTER_RESP,
    DATA_SM,
    DATA_SM_RESP,
    DELIVER_SM,
    DELIVER_SM_RESP,
    ENQUIRE_LINK,
    ENQUIRE_LINK_RESP,
    GENERIC_NACK,
    HEADER,
    HEADER_LEN,
    MAX_PDU_LEN,
    MAX_SMSC_PDU_LEN,
    RESPONSE_BIT,
    SMPP_VERSION_34,
    SUBMIT_SM,
    SUBMIT_SM_RESP,
    UNBIND,
    UNBIND_RESP,
    CommandId,
    MessageState,
    Status,
    Tag,
)
from connectors.smpp.codec.pdus import (
    Bind,
    BindResp,
    Body,
    DeliverSm,
    MessageIdResp,
    Pdu,
    SubmitSm,
    decode_pdu,
    encode_pdu,
    pack_pdu,
)
from connectors.smpp.codec.primitives import (
    FrameError,
    FrameSplitter,
    PduError,
    decode_tlvs,
    encode_tlvs,
    read_cstring,
    tlv_cstring,
    tlv_int,
    tlv_str,
)

__all__ = [
    "BIND_RECEIVER",
    "BIND_RECEIVER_RESP",
    "BIND_TRANSCEIVER",
    "BIND_TRANSCEIVER_RESP",
    "BIND_TRANSMITTER",
    "BIND_TRANSMITTER_RESP",
    "DATA_SM",
    "DATA_SM_RESP",
    "DELIVER_SM",
    "DELIVER_SM_RESP",
    "ENQUIRE_LINK",
    "ENQUIRE_LINK_RESP",
    "GENERIC_NACK",
    "HEADER",
    "HEADER_LEN",
    "MAX_PDU_LEN",
    "MAX_SMSC_PDU_LEN",
    "RESPONSE_BIT",
    "SMPP_VERSION_34",
    "SUBMIT_SM",
    "SUBMIT_SM_RESP",
    "UNBIND",
    "UNBIND_RESP",
    "Bind",
    "BindResp",
    "Body",
    "CommandId",
    "DeliverBody",
    "DeliverSm",
    "FrameError",
    "FrameSplitter",
    "MessageIdResp",
    "MessageState",
    "Pdu",
    "PduError",
    "Status",
    "SubmitSm",
    "SubmitSmFields",
    "Tag",
    "decode_pdu",
    "decode_tlvs",
    "encode_pdu",
    "encode_submit_sm",
    "encode_submit_sm_from_prefix",
    "encode_submit_sm_prefix",
    "encode_tlvs",
    "pack_pdu",
    "parse_data_sm",
    "parse_deliver_sm",
    "parse_message_id",
    "read_cstring",
    "set_sequence",
    "tlv_cstring",
    "tlv_int",
    "tlv_str",
]
