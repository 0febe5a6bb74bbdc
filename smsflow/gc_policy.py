"""How the long-running processes set CPython's garbage collector.

CPython collects the youngest generation after every 700 net container allocations, and every
tenth of those collections cascades into older ones, up to a full collection that walks every
object alive. A process that builds many short-lived objects per request (the API parses and
validates up to 1,000 messages into models per batch) pays for those walks over a heap that is
mostly start-up state (imports, the routing catalogue's number tables) that never dies.
Measured in docs/performance.md ("Garbage collection"): the API's CPU per batch message
15.1 → 10.3 µs and the sender's per message ~13 % lower with the thresholds below; the worker
(which freezes its start-up heap and allocates less per event) did not move. Reference
counting still frees almost everything at once; the thresholds only decide how often the
collector looks for cycles, so memory grows by at most the cyclic garbage of one longer
interval.
"""

from __future__ import annotations

import gc

#: (gen0, gen1, gen2): collect the young generation after 50,000 net allocations, the middle
#: one every 50 young collections, the old one every 100 middle ones.
DEFAULT_THRESHOLDS = (50_000, 50, 100)
#: CPython's own, for ``SMSFLOW_GC_THRESHOLDS=python``.
PYTHON_THRESHOLDS = (700, 10, 10)


def parse_thresholds(text: str) -> tuple[int, int, int]:
    """``"50000,50,100"``, ``"default"`` or ``"python"`` → three generation thresholds."""
    spelled = text.strip().lower()
    if spelled == "default":
        return DEFAULT_THRESHOLDS
    if spelled == "python":
        return PYTHON_THRESHOLDS
    fields = [field.strip() for field in spelled.split(",")]
    if len(fields) != 3 or not all(field.isdigit() for field in fields):
        raise ValueError(
            f"gc thresholds {text!r}: expected three non-negative integers 'gen0,gen1,gen2' "
            "(e.g. 50000,50,100), 'default' or 'python'"
        )
    gen0, gen1, gen2 = (int(field) for field in fields)
    if gen0 == 0:
        raise ValueError(f"gc thresholds {text!r}: gen0 0 would turn the collector off")
    return gen0, gen1, gen2


def apply_thresholds(text: str) -> None:
    """Set the collector's thresholds as ``SMSFLOW_GC_THRESHOLDS`` spells them."""
    gc.set_threshold(*parse_thresholds(text))


def freeze_start_up_state() -> None:
    """Move everything alive now out of the collector's sight, once the process is loaded.

    Call it once: freezing again later would pin whatever was replaced meanwhile (a config
    snapshot, a routing catalogue) forever.
    """
    gc.freeze()
