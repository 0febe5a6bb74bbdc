"""SMPP 3.4 ``command_status`` codes and what smsflow does about each of them.

One explicit table maps every code defined by SMPP 3.4 (section 5.1.3) to its
symbolic name and to a :class:`StatusCategory` that drives retry behaviour:

* ``OK`` - the PDU was accepted.
* ``BACKPRESSURE`` - the SMSC is asking us to slow down (``ESME_RTHROTTLED``,
  ``ESME_RMSGQFUL``). Not a failure of the message: resend it later, at a lower
  rate, and do not count the attempt against the message's retry budget.
* ``TEMPORARY`` - a transient failure on the SMSC side; retry with backoff,
  counting the attempt against the retry budget.
* ``PERMANENT`` - the message itself (or the request) is wrong and resending
  the same thing will fail the same way: end the message.

Codes that are not in the table (reserved ranges, vendor specific
``0x0400-0x04FF`` codes, ...) are classified ``TEMPORARY`` *with a bounded
retry count* (:data:`UNKNOWN_STATUS_MAX_RETRIES`): an SMSC vendor code is far
more often a transient routing/system condition than a verdict on the
message, but since we cannot know, we refuse to retry it forever.

Pure module: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import Final

__all__ = [
    "ESME_RINVBNDSTS",
    "ESME_RMSGQFUL",
    "ESME_ROK",
    "ESME_RSUBMITFAIL",
    "ESME_RSYSERR",
    "ESME_RTHROTTLED",
    "ESME_RX_T_APPN",
    "SMPP_STATUS_TABLE",
    "UNKNOWN_STATUS_MAX_RETRIES",
    "StatusCategory",
    "StatusInfo",
    "classify",
    "is_known_status",
    "status_info",
    "status_name",
]


class StatusCategory(Enum):
    """What the sender should do about a ``command_status``."""

    OK = "ok"
    BACKPRESSURE = "backpressure"
    TEMPORARY = "temporary"
    PERMANENT = "permanent"


_OK = StatusCategory.OK
_BP = StatusCategory.BACKPRESSURE
_TMP = StatusCategory.TEMPORARY
_PRM = StatusCategory.PERMANENT

#: Maximum number of retries a caller should grant a message whose last
#: failure was a status code that is not in :data:`SMPP_STATUS_TABLE`.
UNKNOWN_STATUS_MAX_RETRIES: Final = 3

ESME_ROK: Final = 0x00000000
ESME_RINVBNDSTS: Final = 0x00000004
ESME_RSYSERR: Final = 0x00000008
ESME_RMSGQFUL: Final = 0x00000014
ESME_RSUBMITFAIL: Final = 0x00000045
ESME_RTHROTTLED: Final = 0x00000058
ESME_RX_T_APPN: Final = 0x00000064

# code -> (name, category, description).  The single source of truth.
_TABLE: Final[dict[int, tuple[str, StatusCategory, str]]] = {
    0x00000000: ("ESME_ROK", _OK, "No error"),
    0x00000001: ("ESME_RINVMSGLEN", _PRM, "Message length is invalid"),
    0x00000002: ("ESME_RINVCMDLEN", _PRM, "Command length is invalid"),
    0x00000003: ("ESME_RINVCMDID", _PRM, "Invalid command ID"),
    0x00000004: ("ESME_RINVBNDSTS", _TMP, "Incorrect bind status for given command"),
    0x00000005: ("ESME_RALYBND", _TMP, "ESME already in bound state"),
    0x00000006: ("ESME_RINVPRTFLG", _PRM, "Invalid priority flag"),
    0x00000007: ("ESME_RINVREGDLVFLG", _PRM, "Invalid registered delivery flag"),
    0x00000008: ("ESME_RSYSERR", _TMP, "System error"),
    0x0000000A: ("ESME_RINVSRCADR", _PRM, "Invalid source address"),
    0x0000000B: ("ESME_RINVDSTADR", _PRM, "Invalid destination address"),
    0x0000000C: ("ESME_RINVMSGID", _PRM, "Message ID is invalid"),
    0x0000000D: ("ESME_RBINDFAIL", _TMP, "Bind failed"),
    0x0000000E: ("ESME_RINVPASWD", _PRM, "Invalid password"),
    0x0000000F: ("ESME_RINVSYSID", _PRM, "Invalid system ID"),
    0x00000011: ("ESME_RCANCELFAIL", _PRM, "cancel_sm failed"),
    0x00000013: ("ESME_RREPLACEFAIL", _PRM, "replace_sm failed"),
    0x00000014: ("ESME_RMSGQFUL", _BP, "Message queue full"),
    0x00000015: ("ESME_RINVSERTYP", _PRM, "Invalid service type"),
    0x00000033: ("ESME_RINVNUMDESTS", _PRM, "Invalid number of destinations"),
    0x00000034: ("ESME_RINVDLNAME", _PRM, "Invalid distribution list name"),
    0x00000040: ("ESME_RINVDESTFLAG", _PRM, "Destination flag is invalid (submit_multi)"),
    0x00000042: ("ESME_RINVSUBREP", _PRM, "Invalid 'submit with replace' request"),
    0x00000043: ("ESME_RINVESMCLASS", _PRM, "Invalid esm_class field data"),
    0x00000044: ("ESME_RCNTSUBDL", _PRM, "Cannot submit to distribution list"),
    0x00000045: ("ESME_RSUBMITFAIL", _TMP, "submit_sm or submit_multi failed"),
    0x00000048: ("ESME_RINVSRCTON", _PRM, "Invalid source address TON"),
    0x00000049: ("ESME_RINVSRCNPI", _PRM, "Invalid source address NPI"),
    0x00000050: ("ESME_RINVDSTTON", _PRM, "Invalid destination address TON"),
    0x00000051: ("ESME_RINVDSTNPI", _PRM, "Invalid destination address NPI"),
    0x00000053: ("ESME_RINVSYSTYP", _PRM, "Invalid system_type field"),
    0x00000054: ("ESME_RINVREPFLAG", _PRM, "Invalid replace_if_present flag"),
    0x00000055: ("ESME_RINVNUMMSGS", _PRM, "Invalid number of messages"),
    0x00000058: ("ESME_RTHROTTLED", _BP, "Throttling error (ESME has exceeded allowed limits)"),
    0x00000061: ("ESME_RINVSCHED", _PRM, "Invalid scheduled delivery time"),
    0x00000062: ("ESME_RINVEXPIRY", _PRM, "Invalid message validity period (expiry time)"),
    0x00000063: ("ESME_RINVDFTMSGID", _PRM, "Predefined message invalid or not found"),
    0x00000064: ("ESME_RX_T_APPN", _TMP, "ESME receiver temporary app error code"),
    0x00000065: ("ESME_RX_P_APPN", _PRM, "ESME receiver permanent app error code"),
    0x00000066: ("ESME_RX_R_APPN", _PRM, "ESME receiver reject message error code"),
    0x00000067: ("ESME_RQUERYFAIL", _TMP, "query_sm request failed"),
    0x000000C0: ("ESME_RINVOPTPARSTREAM", _PRM, "Error in the optional part of the PDU body"),
    0x000000C1: ("ESME_ROPTPARNOTALLWD", _PRM, "Optional parameter not allowed"),
    0x000000C2: ("ESME_RINVPARLEN", _PRM, "Invalid parameter length"),
    0x000000C3: ("ESME_RMISSINGOPTPARAM", _PRM, "Expected optional parameter missing"),
    0x000000C4: ("ESME_RINVOPTPARAMVAL", _PRM, "Invalid optional parameter value"),
    0x000000FE: ("ESME_RDELIVERYFAILURE", _TMP, "Delivery failure (data_sm_resp)"),
    0x000000FF: ("ESME_RUNKNOWNERR", _TMP, "Unknown error"),
}

#: Read-only view of the table: ``code -> (name, category, description)``.
SMPP_STATUS_TABLE: Final[Mapping[int, tuple[str, StatusCategory, str]]] = MappingProxyType(_TABLE)

_MAX_STATUS: Final = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class StatusInfo:
    """Everything smsflow knows about one ``command_status`` value."""

    code: int
    name: str
    category: StatusCategory
    description: str
    known: bool

    @property
    def max_retries(self) -> int | None:
        """Retry cap imposed by the status itself.

        ``None`` means "use the caller's normal retry policy" (known codes);
        unknown codes are capped at :data:`UNKNOWN_STATUS_MAX_RETRIES`;
        ``OK`` and ``PERMANENT`` codes allow no retry at all.
        """
        if self.category in (StatusCategory.OK, StatusCategory.PERMANENT):
            return 0
        if not self.known:
            return UNKNOWN_STATUS_MAX_RETRIES
        return None


def _check(status: int) -> int:
    if isinstance(status, bool) or not isinstance(status, int):
        raise TypeError(f"command_status must be an int, got {type(status).__name__}")
    if not 0 <= status <= _MAX_STATUS:
        raise ValueError(f"command_status out of uint32 range: {status}")
    return status


def is_known_status(status: int) -> bool:
    """True when ``status`` is one of the SMPP 3.4 codes in the table."""
    return _check(status) in _TABLE


def classify(status: int) -> StatusCategory:
    """Category of a ``command_status``; unknown codes are ``TEMPORARY``."""
    entry = _TABLE.get(_check(status))
    return entry[1] if entry is not None else StatusCategory.TEMPORARY


def status_name(status: int) -> str:
    """Symbolic name (``ESME_RTHROTTLED``) or ``UNKNOWN_0x00000401`` for unknown codes."""
    entry = _TABLE.get(_check(status))
    return entry[0] if entry is not None else f"UNKNOWN_0x{status:08X}"


def status_info(status: int) -> StatusInfo:
    """Full :class:`StatusInfo` for a ``command_status``."""
    entry = _TABLE.get(_check(status))
    if entry is None:
        return StatusInfo(
            code=status,
            name=f"UNKNOWN_0x{status:08X}",
            category=StatusCategory.TEMPORARY,
            description="Not an SMPP 3.4 status (reserved or vendor specific)",
            known=False,
        )
    name, category, description = entry
    return StatusInfo(
        code=status, name=name, category=category, description=description, known=True
    )
