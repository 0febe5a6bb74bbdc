"""The machine's CPU use over time while a command runs: is a benchmark CPU-bound, or waiting?

    python bench/cpu_timeline.py -- python bench/e2e.py --messages 20000 --scenario scratch

Samples /proc/stat every ``--every-s`` (0.25 s) and prints, after the command ends, one
``seconds cores-busy`` pair per sample (cores busy = cores x the share of non-idle time), then
the command's own output. A run whose middle sits at the machine's core count is CPU-bound:
only less CPU per message raises its rate; dips mean some stage waits (docs/performance.md).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time


def _busy_and_total() -> tuple[int, int]:
    with open("/proc/stat", encoding="ascii") as stat:
        ticks = [int(x) for x in stat.readline().split()[1:]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    return sum(ticks) - idle, sum(ticks)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every-s", type=float, default=0.25)
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ...")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    cores = os.cpu_count() or 1
    samples: list[tuple[float, float]] = []
    with tempfile.TemporaryFile("w+") as output:
        started = time.monotonic()
        run = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
        busy, total = _busy_and_total()
        while run.poll() is None:
            time.sleep(args.every_s)
            now_busy, now_total = _busy_and_total()
            share = (now_busy - busy) / max(1, now_total - total)
            samples.append((time.monotonic() - started, cores * share))
            busy, total = now_busy, now_total
        for at, used in samples:
            print(f"{at:.2f} {used:.2f}")
        output.seek(0)
        sys.stdout.write(output.read())
    return run.returncode


if __name__ == "__main__":
    sys.exit(main())
