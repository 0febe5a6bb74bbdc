"""``smsflow smsc-sim``: run the SMSC simulator in the foreground until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from typing import Any

from .config import load_config
from .server import SmscSimulator

log = logging.getLogger("smsflow.smsc_sim")


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "smsc-sim",
        help="run the SMPP 3.4 SMSC simulator",
        description="Run the SMPP 3.4 SMSC simulator until SIGINT/SIGTERM.",
    )
    parser.add_argument(
        "--config",
        default=None,
        help="YAML config (default: one account smsflow/smsflow, everything delivered)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=2775, help="listen port (default 2775)")
    parser.add_argument(
        "--stats-interval",
        type=float,
        default=None,
        help="seconds between stats lines (default: config stats_interval_s; 0 = off)",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = load_config(args.config)
    except (OSError, ValueError) as exc:
        log.error("cannot load config %s: %s", args.config, exc)
        return 2
    interval = config.stats_interval_s if args.stats_interval is None else args.stats_interval
    try:
        asyncio.run(_serve(config, args.host, args.port, interval))
    except OSError as exc:
        log.error("cannot listen on %s:%s: %s", args.host, args.port, exc)
        return 1
    return 0


async def _serve(config: Any, host: str, port: int, interval: float) -> None:
    sim = SmscSimulator(config, host=host, port=port)
    await sim.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    print(f"smsc-sim listening on {host}:{sim.port}", flush=True)
    try:
        last = sim.stats.copy()
        last_t = loop.time()
        while not stop.is_set():
            if interval > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), interval)
                now = loop.time()
                st = sim.stats.copy()
                dt = max(now - last_t, 1e-9)
                log.info(
                    "sessions=%d submits=%d (%.0f/s) throttled=%d receipts not_requested=%d "
                    "sent=%d acked=%d pending=%d binds=%d bind_failures=%d",
                    st.sessions,
                    st.submits,
                    (st.submits - last.submits) / dt,
                    st.throttled,
                    st.receipts_not_requested,
                    st.receipts_sent,
                    st.receipts_acked,
                    st.receipts_pending,
                    st.binds,
                    st.bind_failures,
                )
                last, last_t = st, now
            else:
                await stop.wait()
    finally:
        await sim.stop()
