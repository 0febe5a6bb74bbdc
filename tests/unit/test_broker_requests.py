"""bench/broker_requests.py: reading the broker's request log (no broker needed)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from bench.broker_requests import LOCAL, log_files, parse_line, summarize


def _produce(at: str, topics: dict[str, list[int]], client: str = "rdkafka") -> str:
    def partitions(indexes: list[int]) -> str:
        return ",".join(f'{{"index":{i},"recordsSizeInBytes":164}}' for i in indexes)

    data = ",".join(f'{{"name":"{name}","partitionData":[{partitions(parts)}]}}'
                    for name, parts in topics.items())
    answers = ",".join(f'{{"name":"{name}","partitionResponses":[{{"index":0}}]}}'
                       for name in topics)
    return (f'[{at}] DEBUG Completed request:{{"isForwarded":false,"requestHeader":'
            f'{{"requestApiKey":0,"requestApiVersion":10,"correlationId":1,"clientId":"{client}",'
            f'"requestApiKeyName":"PRODUCE"}},"request":{{"acks":-1,"topicData":[{data}]}},'
            f'"response":{{"responses":[{answers}]}},"totalTimeMs":1.2}} (kafka.request.logger)')


def _fetch(at: str, client: str) -> str:
    return (f'[{at}] DEBUG Completed request:{{"requestHeader":{{"requestApiKey":1,'
            f'"clientId":"{client}","requestApiKeyName":"FETCH"}},"request":{{}}}} '
            f'(kafka.request.logger)')


def test_a_produce_line_gives_its_topics_and_partitions_from_the_request_only() -> None:
    line = _produce("2026-12-07 03:12:12,878",
                    {"bench-1a.sms.sent": [0, 3], "bench-1a.sms.dlr.raw": [2]})

    request = parse_line(line)

    assert request is not None
    assert (request.api, request.client) == ("PRODUCE", "rdkafka")
    assert request.at == datetime(2026, 12, 7, 3, 12, 12, 878000, tzinfo=LOCAL)
    assert request.produced == (("bench-1a.sms.sent", 2), ("bench-1a.sms.dlr.raw", 1))


def test_other_lines_are_not_requests() -> None:
    assert parse_line("[2026-12-07 03:10:27,090] INFO [QuorumController id=1] ...") is None
    assert parse_line("") is None


def test_summary_counts_the_window_by_api_client_topic_and_partitions() -> None:
    lines = [
        _produce("2026-12-07 03:00:00,500", {"bench-1a.sms.sent": [1]}),  # before the window
        _produce("2026-12-07 03:00:01,000", {"bench-1a.sms.sent": [1]}),
        _produce("2026-12-07 03:00:01,500", {"bench-1a.sms.routed": [0, 1, 2]}),
        _produce("2026-12-07 03:00:02,000",
                 {"smsflow-bench-1a-tenant-quota-changelog": [0]}, client="faust-0.15.3"),
        _fetch("2026-12-07 03:00:02,500", "aiokafka-0.14.0"),
        _fetch("2026-12-07 03:00:03,500", "aiokafka-0.14.0"),  # after it
    ]
    requests = [r for line in lines if (r := parse_line(line)) is not None]

    found = summarize(requests, datetime(2026, 12, 7, 3, 0, 1, tzinfo=LOCAL),
                      datetime(2026, 12, 7, 3, 0, 3, tzinfo=LOCAL)).as_json()

    assert found["seconds"] == 2.0
    assert found["requests_per_s"] == 2.0
    assert found["by_api_per_s"] == {"PRODUCE": 1.5, "FETCH": 0.5}
    assert found["by_client_per_s"] == {"rdkafka PRODUCE": 1.0, "faust-N.N.N PRODUCE": 0.5,
                                        "aiokafka-N.N.N FETCH": 0.5}
    assert found["produce_by_topic_per_s"] == {"sms.sent": 0.5, "sms.routed": 0.5,
                                               "tenant-quota-changelog": 0.5}
    assert found["partitions_per_produce_request"] == {1: 2, 3: 1}


def test_log_files_are_the_rolled_ones_oldest_first_then_the_current(tmp_path: Path) -> None:
    for name in ("server.log", "server.log.1", "server.log.2", "server.log.bak", "kafka.out"):
        (tmp_path / name).write_text("")

    assert [p.name for p in log_files(tmp_path / "server.log")] == [
        "server.log.2", "server.log.1", "server.log"]
