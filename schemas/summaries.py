"""Summary headers: the few fields downstream counters need, beside the Avro value.

Every worker reads all of ``sms.sent`` for the throttle's AIMD, and the tracking fan-out reads
``sms.sent`` and ``sms.dlr`` for the rolling windows; each needs a handful of fields of a record
whose Avro value is 30-40 µs to decode and validate. The producer of the record (the sender for
``sms.sent``, the aggregator for ``sms.dlr``) also writes those fields in one header,
``smsflow-summary``, as text fields separated by ``\\x1f``; readers use it when present and fall
back to decoding the value when it is absent (records from older versions, other producers) or
unreadable. The header is a cache of the value, not a contract: the value stays the truth.

>>> header = sent_summary_header("uk-direct", "gb-ee", "acme", True, 0, 4.5, 1)
>>> summary = parse_sent_summary([header])
>>> summary.route_id, summary.accepted, summary.latency_ms, summary.attempts
('uk-direct', True, 4.5, 1)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "SUMMARY_HEADER",
    "ReportSummary",
    "SentSummary",
    "parse_report_summary",
    "parse_sent_summary",
    "report_summary_header",
    "sent_summary_header",
]

SUMMARY_HEADER = "smsflow-summary"
_SEP = "\x1f"

Header = tuple[str, bytes]


@dataclass(frozen=True, slots=True)
class SentSummary:
    """What a ``SubmitOutcome`` tells the windows and the AIMD."""

    route_id: str
    operator_id: str
    tenant_id: str
    accepted: bool
    command_status: int
    latency_ms: float
    attempts: int


@dataclass(frozen=True, slots=True)
class ReportSummary:
    """What a ``DeliveryReport`` tells the windows."""

    route_id: str
    operator_id: str
    tenant_id: str
    status: str


def sent_summary_header(route_id: str, operator_id: str, tenant_id: str, accepted: bool,
                        command_status: int, latency_ms: float, attempts: int) -> Header:
    fields = (route_id, operator_id, tenant_id, "1" if accepted else "0", str(command_status),
              repr(float(latency_ms)), str(attempts))
    return SUMMARY_HEADER, _SEP.join(fields).encode()


def report_summary_header(route_id: str, operator_id: str, tenant_id: str,
                          status: str) -> Header:
    return SUMMARY_HEADER, _SEP.join((route_id, operator_id, tenant_id, status)).encode()


def _fields(headers: Iterable[tuple[str, bytes | str | None]] | None, count: int,
            ) -> list[str] | None:
    for name, value in headers or ():
        if name == SUMMARY_HEADER and isinstance(value, bytes | bytearray):
            try:
                fields = bytes(value).decode().split(_SEP)
            except UnicodeDecodeError:
                return None
            return fields if len(fields) == count else None
    return None


def parse_sent_summary(headers: Iterable[tuple[str, bytes | str | None]] | None,
                       ) -> SentSummary | None:
    """The summary of a ``sms.sent`` record, or None (absent or unreadable: decode the value)."""
    fields = _fields(headers, 7)
    if fields is None:
        return None
    route_id, operator_id, tenant_id, accepted, status, latency, attempts = fields
    try:
        return SentSummary(route_id, operator_id, tenant_id, accepted == "1", int(status),
                           float(latency), int(attempts))
    except ValueError:
        return None


def parse_report_summary(headers: Iterable[tuple[str, bytes | str | None]] | None,
                         ) -> ReportSummary | None:
    """The summary of a ``sms.dlr`` record, or None (absent or unreadable: decode the value)."""
    fields = _fields(headers, 4)
    if fields is None:
        return None
    return ReportSummary(*fields)
