"""Summarise a py-spy raw profile (``bench/e2e.py --profile worker-0``): where the time goes.

    python bench/profile_summary.py bench/results/profile-worker-0.txt [--top 40]

Prints the functions with the most samples of their own, then the most inclusive ones (a
function counted once per stack it appears in), as shares of all samples.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path


def _frame(text: str) -> str:
    """``func (path:line)`` -> ``func (path)``: lines of one function count together."""
    name, _, where = text.partition(" (")
    return f"{name} ({where.split(':')[0]})" if where else name


def summarise(path: Path) -> tuple[int, Counter[str], Counter[str]]:
    total, own, inclusive = 0, Counter[str](), Counter[str]()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        frames = stack.split(";")
        total += samples
        own[_frame(frames[-1])] += samples
        for frame in {_frame(f) for f in frames}:
            inclusive[frame] += samples
    return total, own, inclusive


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    total, own, inclusive = summarise(args.profile)
    print(f"{total} samples")
    print("-- own time")
    for frame, samples in own.most_common(args.top):
        print(f"{samples / total:6.1%}  {frame}")
    print("-- inclusive")
    for frame, samples in inclusive.most_common(args.top):
        print(f"{samples / total:6.1%}  {frame}")


if __name__ == "__main__":
    main()
