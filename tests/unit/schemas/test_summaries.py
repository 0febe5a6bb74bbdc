from __future__ import annotations

from schemas.summaries import (
    SUMMARY_HEADER,
    ReportSummary,
    SentSummary,
    parse_report_summary,
    parse_sent_summary,
    report_summary_header,
    sent_summary_header,
)


def test_sent_summary_round_trips_among_other_headers() -> None:
    headers = [("trace", b"x"),
               sent_summary_header("uk-direct", "gb-ee", "acme", False, 88, 12.25, 3)]
    assert parse_sent_summary(headers) == SentSummary(
        "uk-direct", "gb-ee", "acme", False, 88, 12.25, 3)


def test_report_summary_round_trips() -> None:
    header = report_summary_header("us-direct", "us-tmobile", "shopfast", "UNDELIVERABLE")
    assert parse_report_summary([header]) == ReportSummary(
        "us-direct", "us-tmobile", "shopfast", "UNDELIVERABLE")


def test_absent_or_unreadable_summaries_mean_decode_the_value() -> None:
    assert parse_sent_summary(None) is None
    assert parse_sent_summary([]) is None
    assert parse_sent_summary([(SUMMARY_HEADER, b"too\x1ffew")]) is None
    assert parse_sent_summary([(SUMMARY_HEADER, b"\xff\xfe")]) is None
    not_numbers = "\x1f".join(["r", "o", "t", "1", "x", "1.0", "1"]).encode()
    assert parse_sent_summary([(SUMMARY_HEADER, not_numbers)]) is None
    # A sent summary is not a report summary and vice versa (field counts differ).
    sent = sent_summary_header("r", "o", "t", True, 0, 1.0, 1)
    assert parse_report_summary([sent]) is None
