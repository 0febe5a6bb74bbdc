"""Avro codec micro-benchmark: fastavro's schemaless reader/writer against the generated ones
(schemas/specialized.py), per contract of the hot path, on records shaped like the pipeline's.

``python bench/codec.py --json``: CPU µs per encode and per decode of the body, best of
``--repeats`` rounds of ``--records`` calls (best of, because the machine is shared: the
minimum is the least disturbed). Prints one JSON object last on stdout with ``--json`` and
writes ``bench/results/codec.json`` with the commit, the machine and the load average.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import fastavro  # noqa: E402

from bench.e2e import git_commit, machine, publish  # noqa: E402
from schemas import specialized  # noqa: E402
from schemas.models import (  # noqa: E402
    AvroModel,
    DeliveryReport,
    DeliveryStatus,
    PartOutcome,
    ReceiptEvent,
    ReceiptState,
    RoutedMessage,
    SubmitOutcome,
    SubmitRequest,
    SubmitStatus,
    TextEncoding,
)
from schemas.registry import contracts  # noqa: E402


def samples() -> list[AvroModel]:
    """One record per hot-path contract, with the pipeline's usual field sizes."""
    now = datetime(2026, 12, 5, 21, 30, 15, 123_000, tzinfo=UTC)
    request = SubmitRequest(
        message_id="0193a7c2-8f4e-7b1a-9c3d-5e6f7a8b9c0d", tenant_id="acme-retail",
        source="ACME", destination="+447700900123",
        body="Your verification code is 482913. It expires in 10 minutes.", submitted_at=now,
        client_ref="order-88123",
    )
    routed = RoutedMessage(
        request=request, destination="+447700900123", route_id="uk-vodafone-primary",
        smsc_id="smsc-vodafone-1", operator_id="vodafone-uk", country="GB",
        encoding=TextEncoding.GSM7, parts=1, routed_at=now, throttled_at=now,
    )
    sent = SubmitOutcome(
        message_id=request.message_id, tenant_id=request.tenant_id, client_ref="order-88123",
        route_id=routed.route_id, smsc_id=routed.smsc_id, operator_id=routed.operator_id,
        country="GB", destination=routed.destination, part_index=1, part_count=1,
        outcome=SubmitStatus.ACCEPTED, smsc_message_id="6f1c2a9e", command_status=0,
        status_name="ESME_ROK", attempts=1, latency_ms=3.4, submitted_at=now, sent_at=now,
        expires_at=now,
    )
    receipt = ReceiptEvent(
        smsc_id=routed.smsc_id, smsc_message_id="6f1c2a9e", raw_message_id="6f1c2a9e",
        state=ReceiptState.DELIVERED, error_code=0, done_at=now, received_at=now,
        bind="smsc-vodafone-1#0",
    )
    part = PartOutcome(sent=sent, status=DeliveryStatus.DELIVERED, done_at=now)
    report = DeliveryReport(
        message_id=request.message_id, tenant_id=request.tenant_id, client_ref="order-88123",
        route_id=routed.route_id, smsc_id=routed.smsc_id, operator_id=routed.operator_id,
        country="GB", destination=routed.destination, parts=1,
        status=DeliveryStatus.DELIVERED, smsc_message_ids=["6f1c2a9e"], submitted_at=now,
        sent_at=now, done_at=now,
    )
    return [request, routed, sent, receipt, part, report]


def best_us(call: Callable[[], object], records: int, repeats: int) -> float:
    """CPU µs per call, best of ``repeats`` rounds."""
    best = float("inf")
    for _ in range(repeats):
        started = time.process_time()
        for _ in range(records):
            call()
        best = min(best, time.process_time() - started)
    return round(best / records * 1e6, 2)


def measure(model: AvroModel, records: int, repeats: int) -> dict[str, Any]:
    contract = contracts()[type(model).avro_name]
    record = model.model_dump(mode="python")
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, contract.parsed, record)
    body = buffer.getvalue()
    read = specialized.reader(contract.schema_json)
    write = specialized.writer(contract.schema_json)
    if read is None or write is None:
        raise SystemExit(f"{contract.name}: no generated codec")

    def fastavro_encode() -> bytes:
        out = io.BytesIO()
        fastavro.schemaless_writer(out, contract.parsed, record)
        return out.getvalue()

    def generated_encode() -> bytes:
        out = bytearray()
        write(out, record)
        return bytes(out)

    def fastavro_decode() -> object:
        return fastavro.schemaless_reader(io.BytesIO(body), contract.parsed, None)

    def generated_decode() -> object:
        return read(body, 0)

    if generated_encode() != body or read(body, 0)[0] != fastavro_decode():
        raise SystemExit(f"{contract.name}: generated codec disagrees with fastavro")
    return {
        "body_bytes": len(body),
        "fastavro_encode_us": best_us(fastavro_encode, records, repeats),
        "generated_encode_us": best_us(generated_encode, records, repeats),
        "fastavro_decode_us": best_us(fastavro_decode, records, repeats),
        "generated_decode_us": best_us(generated_decode, records, repeats),
    }


def run(records: int, repeats: int) -> dict[str, Any]:
    load_at_start = os.getloadavg()[0]
    rows = {type(model).avro_name: measure(model, records, repeats) for model in samples()}
    totals = {
        column: round(sum(row[column] for row in rows.values()), 2)
        for column in ("fastavro_encode_us", "generated_encode_us",
                       "fastavro_decode_us", "generated_decode_us")
    }
    return {
        "contracts": rows,
        "sum_over_contracts": totals,
        "records": records,
        "repeats": repeats,
        "commit": git_commit(),
        "machine": machine(load_at_start),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "codec.json")
    args = parser.parse_args(argv)
    result = run(args.records, args.repeats)
    lines = [
        f"{name:16} {row['body_bytes']:4} B  encode {row['fastavro_encode_us']:6} -> "
        f"{row['generated_encode_us']:6} µs   decode {row['fastavro_decode_us']:6} -> "
        f"{row['generated_decode_us']:6} µs"
        for name, row in result["contracts"].items()
    ]
    publish(result, args.out, as_json=args.json, lines=lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
