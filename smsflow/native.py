"""The hot pure modules compiled to C with mypyc, and whether this process runs them compiled.

Installing the project (``make install``, ``pip install .``, the Dockerfile's wheel) compiles
:data:`NATIVE_MODULES` with mypyc (``setup.py``): the same source, type-checked by ``make
lint``, run as C extensions: Avro encodes and decodes 40-60 % cheaper, rate-limit decisions
about half (docs/performance.md#compiled-hot-modules). Without a C
compiler, or with ``SMSFLOW_PURE_PYTHON=1`` at install time, they stay plain Python: slower,
with the same behaviour.

An editable install puts each extension next to its source, and Python imports the extension
first: a source edited after the last build is *not* what runs until the next ``make
install``. :func:`stale` finds those (the worker and the sender warn at start; a unit test
fails), so an edit can never silently not take effect.

This file is read by ``setup.py`` on its own (no package import), so it imports nothing of
ours.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

#: Source files compiled by mypyc, relative to the repository root. Chosen from the worker's
#: and the sender's profiles (docs/performance.md#compiled-hot-modules): the Avro readers'
#: and writers' primitives, the rate-limit scheduler, delivery tracking, receipt parsing,
#: text encoding, the SMPP body codec, and four worker adapters (scheduled stages, output
#: producer, part values, codec registry). Only modules whose tests pass compiled: mypyc trusts
#: mypy's types at run time, and two differences were found.
#: ``smsflow/domain/smpp_status.py`` is left out because mypyc accepts ``True`` where the source
#: refuses a bool for an int (tests/unit/domain/test_smpp_status.py). And mypy keeps an
#: attribute narrowed across an ``await`` or a call that changes it, so mypyc's check of the
#: narrowed type raises ``TypeError`` where Python runs on: ``pipeline/outputs.py`` compiled
#: failed in ``flush`` on ``self._failure`` set while it awaited, until ``flush`` tested it
#: only after the wait. An adapter joins the list only after a look for that pattern (an
#: attribute tested against None, then read again after an await or a call) and with every
#: test passing compiled; modules with closures that faust inspects (the agents) stay Python.
NATIVE_MODULES: tuple[str, ...] = (
    "schemas/specialized.py",
    # The hot contracts' readers and writers, generated ahead of time (schemas/codegen.py).
    "schemas/generated/submit_request.py",
    "schemas/generated/routed_message.py",
    "schemas/generated/submit_outcome.py",
    "schemas/generated/receipt_event.py",
    "schemas/generated/part_outcome.py",
    "schemas/generated/delivery_report.py",
    "smsflow/domain/receipts.py",
    "smsflow/domain/encoding.py",
    "smsflow/domain/validation.py",
    "smsflow/domain/delivery.py",
    "smsflow/domain/limits/scheduler.py",
    "smsflow/domain/limits/scheduler_values.py",
    "smsflow/domain/limits/lanes.py",
    "smsflow/domain/limits/buckets.py",
    "smsflow/domain/limits/quota.py",
    "smsflow/domain/limits/aimd.py",
    "smsflow/domain/tracking/expiry.py",
    "smsflow/domain/tracking/timers.py",
    "smsflow/domain/tracking/windows.py",
    "smsflow/domain/tracking/_codec.py",
    "connectors/smpp/codec/primitives.py",
    "connectors/smpp/codec/client_bodies.py",
    "connectors/smpp/codec/pdus.py",
    # The worker's adapters on the hot path: the scheduled stages' tickets and acks, the output
    # producer's hand-over, the sender's part values, the parts' partitioner, the run-time codec
    # registry.
    "pipeline/scheduling.py",
    "pipeline/outputs.py",
    "pipeline/part_value.py",
    "smsflow/murmur2.py",
    "schemas/codec.py",
)


def module_name(source: str) -> str:
    """``smsflow/domain/receipts.py`` -> ``smsflow.domain.receipts``."""
    return source.removesuffix(".py").replace("/", ".")


@dataclass(frozen=True)
class NativeStatus:
    """Which of :data:`NATIVE_MODULES` this process imported compiled, and which stale."""

    compiled: tuple[str, ...]
    pure: tuple[str, ...]
    stale: tuple[str, ...]

    def summary(self) -> str:
        text = f"{len(self.compiled)} of {len(NATIVE_MODULES)} hot modules compiled (mypyc)"
        if self.pure:
            text += "; pure Python: " + ", ".join(self.pure)
        return text


def is_compiled(module_file: str | None) -> bool:
    """Whether a module was loaded from a C extension rather than its source."""
    return module_file is not None and module_file.endswith(tuple(EXTENSION_SUFFIXES))


def stale(module_file: str | None) -> bool:
    """A compiled module whose source was changed after it was built: the extension still
    runs the old code."""
    if module_file is None or not is_compiled(module_file):
        return False
    built = Path(module_file)
    source = built.with_name(built.name.split(".", 1)[0] + ".py")
    return source.exists() and source.stat().st_mtime > built.stat().st_mtime


def status() -> NativeStatus:
    """Import every native module and report how each one runs."""
    compiled: list[str] = []
    pure: list[str] = []
    outdated: list[str] = []
    for source in NATIVE_MODULES:
        name = module_name(source)
        loaded = importlib.import_module(name).__file__
        (compiled if is_compiled(loaded) else pure).append(name)
        if stale(loaded):
            outdated.append(name)
    return NativeStatus(tuple(compiled), tuple(pure), tuple(outdated))


def log_status(log: logging.Logger) -> NativeStatus:
    """One line at a process's start: INFO when every hot module runs compiled, WARNING when
    some run as plain Python (slower) or are stale (their edited source is not what runs)."""
    found = status()
    if found.stale:
        log.warning("%s; STALE, built before their source changed (run `make install`): %s",
                    found.summary(), ", ".join(found.stale))
    elif found.pure:
        log.warning("%s (installed without a C compiler or with SMSFLOW_PURE_PYTHON=1)",
                    found.summary())
    else:
        log.info("%s", found.summary())
    return found
