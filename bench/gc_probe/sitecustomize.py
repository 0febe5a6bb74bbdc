"""Garbage-collector probe: how much CPU each of our processes spends in CPython's cycle
collector, and what reference cycles it leaves for the collector to find.

Put this directory first on ``PYTHONPATH`` and Python imports this module at start-up in
every process that inherits the environment (the benchmarks' children do)::

    PYTHONPATH=bench/gc_probe:. GC_PROBE_DIR=/tmp/gc python bench/e2e.py --messages 12000 ...
    cat /tmp/gc/*.txt

Each process writes ``<dir>/<pid>.txt`` when it exits (and every 2 s with
``GC_PROBE_EVERY_S=2``, for processes stopped by a signal): the thread CPU spent in
collections by generation, the count of collections, the objects collected, and how much of
it came after the process froze its start-up heap (``gc.freeze``, i.e. while it served
traffic). With ``GC_PROBE_GARBAGE=<word>`` the processes whose command line holds that word
(``sender``, ``worker``, ``api``) keep what the collector found (``gc.DEBUG_SAVEALL``) and
write its types, most common first: a closure, cell or bound method there, repeated per
message, is a reference cycle on the hot path (docs/performance.md#the-senders-garbage).
``DEBUG_SAVEALL`` keeps that garbage alive: memory grows, so use it on short runs only.
"""

from __future__ import annotations

import atexit
import collections
import gc
import os
import sys
import threading
import time
from typing import Any

_DIR = os.environ.get("GC_PROBE_DIR", "/tmp/gc_probe")
_cpu = {"total": [0.0, 0.0, 0.0], "serving": [0.0, 0.0, 0.0]}
_runs = {"total": [0, 0, 0], "serving": [0, 0, 0]}
_collected = [0, 0, 0]
_started = [0.0]
_watched = os.environ.get("GC_PROBE_GARBAGE", "")
_keeps_garbage = bool(_watched) and any(_watched in arg for arg in sys.argv)


def _on_collection(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _started[0] = time.thread_time()
        return
    spent, generation = time.thread_time() - _started[0], info["generation"]
    spans = ("total", "serving") if gc.get_freeze_count() else ("total",)
    for span in spans:
        _cpu[span][generation] += spent
        _runs[span][generation] += 1
    _collected[generation] += info["collected"]


def _garbage_by_type() -> list[tuple[str, int]]:
    counts: collections.Counter[str] = collections.Counter()
    for found in list(gc.garbage):
        kind = type(found)
        name = kind.__qualname__
        if kind.__name__ == "function":
            name = f"function {found.__qualname__}"
        elif kind.__name__ == "method":
            name = f"method {found.__func__.__qualname__}"
        elif kind.__name__ == "cell":
            try:
                name = f"cell of {type(found.cell_contents).__qualname__}"
            except ValueError:
                name = "cell (empty)"
        counts[name] += 1
    return counts.most_common(40)


def _write() -> None:
    os.makedirs(_DIR, exist_ok=True)
    lines = [
        " ".join(sys.argv[:4]),
        f"collector CPU s by generation: {[round(s, 3) for s in _cpu['total']]} "
        f"(collections {_runs['total']}, objects collected {_collected})",
        f"  of which after gc.freeze: {[round(s, 3) for s in _cpu['serving']]} "
        f"(collections {_runs['serving']})",
    ]
    if _keeps_garbage:
        lines.append(f"cyclic garbage kept: {len(gc.garbage)} objects, by type:")
        lines += [f"  {count:8d}  {name}" for name, count in _garbage_by_type()]
    with open(os.path.join(_DIR, f"{os.getpid()}.txt"), "w", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")


def _write_every(seconds: float) -> None:
    while True:
        time.sleep(seconds)
        _write()


gc.callbacks.append(_on_collection)
if _keeps_garbage:
    gc.set_debug(gc.DEBUG_SAVEALL)
atexit.register(_write)
if every := float(os.environ.get("GC_PROBE_EVERY_S", "0")):
    threading.Thread(target=_write_every, args=(every,), name="gc-probe", daemon=True).start()
