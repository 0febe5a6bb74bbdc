"""Load generator for bench/api.py, run as its own process (so the server's CPU is not ours).

    python bench/api_load.py --url http://127.0.0.1:8080 --key smsf_... --mode single \
        --clients 64 --duration 10 [--rate 2000] [--batch 1000]

Closed loop (no ``--rate``): ``--clients`` coroutines, each posting as soon as its previous
answer came, over one keep-alive aiohttp connection pool of that size. Open loop (``--rate``):
requests start on a fixed schedule whatever the answers, so a slow server shows up as latency
instead of as a lower offered rate (no coordinated omission); at most ``--clients`` are in
flight, and a request that could not start on time counts its wait in its latency. Prints one
JSON line: requests, accepted messages, errors by status, latencies (ms) and elapsed seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from typing import Any

import aiohttp


def _message(n: int) -> dict[str, Any]:
    return {"destination": f"+447700900{n % 1000:03d}", "source": "ACME",
            "body": f"Your code is {n % 1000000:06d}"}


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {args.key}", "Content-Type": "application/json"}
    if args.mode == "single":
        path = "/v1/messages"
        bodies = [json.dumps(_message(n)).encode() for n in range(1000)]
        per_request = 1
    else:
        path = "/v1/messages/batch"
        batch = [_message(n) for n in range(args.batch)]
        bodies = [json.dumps({"messages": batch}).encode()]
        per_request = args.batch
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    connector = aiohttp.TCPConnector(limit=args.clients, force_close=False)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(args.url, connector=connector, timeout=timeout,
                                     headers=headers) as session:

        async def one(n: int, scheduled: float) -> None:
            try:
                async with session.post(path, data=bodies[n % len(bodies)]) as response:
                    await response.read()
                    statuses[response.status] += 1
            except (aiohttp.ClientError, TimeoutError):
                statuses[0] += 1
            latencies.append(time.perf_counter() - scheduled)

        started = time.perf_counter()
        end = started + args.duration
        if args.rate is None:
            counter = iter(range(10**12))

            async def client() -> None:
                while time.perf_counter() < end:
                    await one(next(counter), time.perf_counter())

            await asyncio.gather(*(client() for _ in range(args.clients)))
        else:
            in_flight = asyncio.Semaphore(args.clients)
            tasks: set[asyncio.Task[None]] = set()
            interval = 1.0 / args.rate
            n = 0
            while True:
                scheduled = started + n * interval
                if scheduled >= end:
                    break
                delay = scheduled - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                await in_flight.acquire()

                async def bounded(n: int = n, scheduled: float = scheduled) -> None:
                    try:
                        await one(n, scheduled)
                    finally:
                        in_flight.release()

                task = asyncio.create_task(bounded())
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                n += 1
            await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - started
    return {
        "requests": sum(statuses.values()),
        "accepted_messages": statuses[202] * per_request,
        "errors": sum(c for s, c in statuses.items() if s != 202),
        "statuses": {str(s): c for s, c in sorted(statuses.items())},
        "latencies_ms": [round(x * 1000, 3) for x in latencies],
        "elapsed_s": elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--mode", choices=("single", "batch"), default="single")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=None, help="open loop: requests/s")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(_run(args))))


if __name__ == "__main__":
    main()
