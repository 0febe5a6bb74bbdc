"""Summarise a py-spy raw profile (``bench/e2e.py --profile worker-0``): where the time goes.

    python bench/profile_summary.py bench/results/profile-worker-0.txt [--top 40] [--layers]

Prints the functions with the most samples of their own, then the most inclusive ones (a
function counted once per stack it appears in), as shares of all samples. ``--layers`` first
splits the own time by layer (:data:`LAYERS`): the stream framework, the event loop, our
adapters, codecs and models, the pure domain; that split is what says whether a cheaper
framework alone could reach a target (docs/performance.md).
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path


def _frame(text: str) -> str:
    """``func (path:line)`` -> ``func (path)``: lines of one function count together."""
    name, _, where = text.partition(" (")
    return f"{name} ({where.split(':')[0]})" if where else name


#: (layer, path prefixes), first match wins; a path is as py-spy prints it (relative to
#: site-packages or the repository, or the standard library's file name).
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("stream framework (faust, mode, aiokafka, our patches of them)",
     ("faust/", "mode/", "aiokafka/", "kafka/", "pipeline/faust_patches/")),
    ("event loop and threads (asyncio, selectors, threading, queue)",
     ("asyncio/", "selectors.py", "threading.py", "queue.py", "concurrent/", "_weakrefset.py")),
    ("librdkafka client (confluent_kafka)", ("confluent_kafka/",)),
    ("codecs and models (Avro, pydantic, json)",
     ("schemas/", "pydantic/", "pydantic_core/", "<avro ", "json/", "fastavro/")),
    ("pure domain (smsflow/domain)", ("smsflow/domain/",)),
    ("our adapters (pipeline, connectors, smsflow, api)",
     ("pipeline/", "connectors/", "smsflow/", "api/")),
)
OTHER = "other (standard library, metrics, start-up)"


def _path(frame: str) -> str:
    """The file of a py-spy frame ``func (path:line)``; ``<string>`` etc. as they are."""
    _, _, where = frame.partition(" (")
    return where.rsplit(":", 1)[0] if where else frame


def _pseudo(path: str) -> bool:
    """Generated code (dataclass ``__init__``, ``<frozen abc>``): counted with its caller."""
    return path.startswith("<") and not path.startswith("<avro ")


def layer_of(frames: list[str]) -> str:
    """The layer of a sample's own time: its leaf frame's file, or for generated code the
    nearest caller with a real file."""
    for frame in reversed(frames):
        path = _path(frame)
        if _pseudo(path):
            continue
        for layer, prefixes in LAYERS:
            if path.startswith(prefixes):
                return layer
        return OTHER
    return OTHER


def by_layer(path: Path) -> tuple[int, Counter[str]]:
    """Samples in all, and own samples per layer (:data:`LAYERS`)."""
    total, layers = 0, Counter[str]()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        total += int(count)
        layers[layer_of(stack.split(";"))] += int(count)
    return total, layers


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
    parser.add_argument("--layers", action="store_true", help="own time split by layer first")
    args = parser.parse_args()
    total, own, inclusive = summarise(args.profile)
    print(f"{total} samples")
    if args.layers:
        print("-- own time by layer")
        for layer, samples in by_layer(args.profile)[1].most_common():
            print(f"{samples / total:6.1%}  {layer}")
    print("-- own time")
    for frame, samples in own.most_common(args.top):
        print(f"{samples / total:6.1%}  {frame}")
    print("-- inclusive")
    for frame, samples in inclusive.most_common(args.top):
        print(f"{samples / total:6.1%}  {frame}")


if __name__ == "__main__":
    main()
