"""Throughput benchmark of the SMSC simulator.

Starts the simulator in a subprocess (``smsflow smsc-sim``; it ends with this run, even a
killed one), then drives it with a pipelined asyncio SMPP client built on
``connectors.smpp.codec``: each bind keeps ``window`` submit_sm in flight. Two phases, each
with a fresh simulator:

1. receipts off (registered_delivery=0): submit_sm/s;
2. receipts on (registered_delivery=1, every message gets a receipt after ``--receipt-delay-ms``,
   acknowledged by the client with deliver_sm_resp): submit_sm/s and receipts/s.

    python bench/smsc_sim.py --messages 100000 --json
    python bench/smsc_sim.py --messages 100000 --json --output bench/results/smsc_sim.json
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from connectors.smpp import codec as P  # noqa: E402
from smsflow.devstack.lifeline import tied_env  # noqa: E402

SYSTEM_ID = "bench"
PASSWORD = "bench"


def sim_config(receipt_delay_ms: float) -> dict[str, Any]:
    return {
        "seed": 1,
        "stats_interval_s": 0,
        "receipt_window": 1000,
        "accounts": [{"system_id": SYSTEM_ID, "password": PASSWORD}],
        "profiles": {
            "default": {"receipt_delay_ms": receipt_delay_ms, "delivery_ratio": 0.9},
            "uk": {"prefixes": ["44"], "receipt_delay_ms": receipt_delay_ms},
        },
    }


class SimProcess:
    """The simulator in a child process, on an ephemeral port."""

    def __init__(self, config: dict[str, Any]) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="smsc-sim-bench-")
        path = Path(self._dir.name) / "sim.yaml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "smsflow.cli", "smsc-sim", "--config", str(path), "--port",
             "0", "--log-level", "WARNING"],
            cwd=ROOT, env=tied_env(os.environ),
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        m = re.search(r"listening on (\S+):(\d+)", line)
        if not m:
            self.stop()
            raise RuntimeError(f"simulator did not start: {line!r}")
        self.port = int(m.group(2))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._dir.cleanup()


class BenchClient(asyncio.Protocol):
    """One transceiver bind that keeps ``window`` submit_sm in flight until ``total`` are sent."""

    def __init__(self, total: int, window: int, receipts: bool, bind_id: int) -> None:
        self.total = total
        self.window = window
        self.splitter = P.FrameSplitter()
        self.sent = 0
        self.resps = 0
        self.errors = 0
        self.receipts = 0
        self.expect_receipts = total if receipts else 0
        self.transport: asyncio.Transport | None = None
        self.bound: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.resps_done: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.receipts_done: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        # Pre-encoded submit_sm body; only the header (sequence number) changes per message.
        self.body = P.SubmitSm(
            source_addr="SMSFLOW",
            source_addr_ton=5,
            dest_addr_ton=1,
            dest_addr_npi=1,
            destination_addr=f"4477009{bind_id:02d}123",
            registered_delivery=1 if receipts else 0,
            short_message=b"Your verification code is 123456. Do not share it.",
        ).encode()
        self.submit_len = 16 + len(self.body)
        self.seq = 1
        if self.expect_receipts == 0:
            self.receipts_done.set_result(0.0)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(
            P.Pdu(P.CommandId.BIND_TRANSCEIVER, 0, 1, P.Bind(SYSTEM_ID, PASSWORD)).encode()
        )

    def connection_lost(self, exc: Exception | None) -> None:
        for fut in (self.bound, self.resps_done, self.receipts_done):
            if not fut.done():
                fut.set_exception(ConnectionError(f"connection lost: {exc}"))

    def start(self) -> None:
        self._send(min(self.window, self.total))

    def _send(self, n: int) -> None:
        if n <= 0 or self.transport is None:
            return
        pack = P.HEADER.pack
        body = self.body
        length = self.submit_len
        seq = self.seq
        chunks = []
        for s in range(seq + 1, seq + 1 + n):
            chunks.append(pack(length, P.SUBMIT_SM, 0, s))
            chunks.append(body)
        self.seq = seq + n
        self.sent += n
        self.transport.write(b"".join(chunks))

    def data_received(self, data: bytes) -> None:
        unpack = P.HEADER.unpack_from
        pack = P.HEADER.pack
        resps = 0
        acks: list[bytes] = []
        for frame in self.splitter.feed(data):
            _, cid, status, seq = unpack(frame)
            if cid == P.SUBMIT_SM_RESP:
                resps += 1
                if status:
                    self.errors += 1
            elif cid == P.DELIVER_SM:
                self.receipts += 1
                acks.append(pack(17, P.DELIVER_SM_RESP, 0, seq) + b"\x00")
            elif cid == P.BIND_TRANSCEIVER_RESP:
                if status:
                    self.bound.set_exception(RuntimeError(f"bind failed 0x{status:x}"))
                else:
                    self.bound.set_result(None)
            elif cid == P.ENQUIRE_LINK:
                acks.append(pack(16, P.ENQUIRE_LINK_RESP, 0, seq))
        loop_time = asyncio.get_running_loop().time
        if acks and self.transport is not None:
            self.transport.write(b"".join(acks))
        if resps:
            self.resps += resps
            self._send(min(resps, self.total - self.sent))
            if self.resps >= self.total and not self.resps_done.done():
                self.resps_done.set_result(loop_time())
        if (
            self.expect_receipts
            and self.receipts >= self.expect_receipts
            and not self.receipts_done.done()
        ):
            self.receipts_done.set_result(loop_time())


def _same(client: BenchClient) -> BenchClient:
    return client


async def run_phase(port: int, messages: int, window: int, binds: int,
                    receipts: bool) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    per_bind = [messages // binds + (1 if i < messages % binds else 0) for i in range(binds)]
    clients: list[BenchClient] = []
    for i, n in enumerate(per_bind):
        client = BenchClient(n, window, receipts, i)
        await loop.create_connection(functools.partial(_same, client), "127.0.0.1", port)
        clients.append(client)
    await asyncio.gather(*(c.bound for c in clients))
    t0 = loop.time()
    for c in clients:
        c.start()
    resp_times = await asyncio.wait_for(asyncio.gather(*(c.resps_done for c in clients)), 600)
    rcpt_times = await asyncio.wait_for(
        asyncio.gather(*(c.receipts_done for c in clients)), 600
    )
    t_submit = max(resp_times) - t0
    result: dict[str, Any] = {
        "submit_seconds": round(t_submit, 3),
        "submits_per_s": round(messages / t_submit),
        "submit_errors": sum(c.errors for c in clients),
    }
    if receipts:
        t_rcpt = max(rcpt_times) - t0
        result["receipt_seconds"] = round(t_rcpt, 3)
        result["receipts_per_s"] = round(messages / t_rcpt)
        result["receipts"] = sum(c.receipts for c in clients)
    for c in clients:
        if c.transport is not None:
            c.transport.write(P.pack_pdu(P.UNBIND, 0x7FFFFFFF))
            c.transport.close()
    return result


def run(messages: int, window: int, binds: int, receipt_delay_ms: float) -> dict[str, Any]:
    phases: dict[str, dict[str, Any]] = {}
    for name, receipts in (("no_receipts", False), ("with_receipts", True)):
        sim = SimProcess(sim_config(receipt_delay_ms))
        try:
            phases[name] = asyncio.run(run_phase(sim.port, messages, window, binds, receipts))
        finally:
            sim.stop()
    return {
        "messages": messages,
        "submits_per_s_no_receipts": phases["no_receipts"]["submits_per_s"],
        "submits_per_s_with_receipts": phases["with_receipts"]["submits_per_s"],
        "receipts_per_s": phases["with_receipts"]["receipts_per_s"],
        "window_per_bind": window,
        "binds": binds,
        "receipt_delay_ms": receipt_delay_ms,
        "phases": phases,
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "platform": platform.platform(),
            "machine": platform.machine(),
        },
        "setup": "simulator in a child process, pipelined asyncio client (this process), "
        "loopback TCP; client acks every receipt",
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--window", type=int, default=250, help="in-flight submits per bind")
    parser.add_argument("--binds", type=int, default=2)
    parser.add_argument("--receipt-delay-ms", type=float, default=10.0)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--output", type=Path, help="also write the JSON result here")
    args = parser.parse_args(argv)
    result = run(args.messages, args.window, args.binds, args.receipt_delay_ms)
    text = json.dumps(result, indent=2)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n", encoding="utf-8")
    if args.json:
        print(text)
    else:
        print(
            f"{args.messages} messages, {args.binds} binds x window {args.window}: "
            f"{result['submits_per_s_no_receipts']} submit/s without receipts, "
            f"{result['submits_per_s_with_receipts']} submit/s and "
            f"{result['receipts_per_s']} receipts/s with receipts"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
