"""Rolling windows of submit and delivery statistics for one key (route, operator or tenant).

Theory of operation
-------------------
A window is ``spec.buckets`` fixed buckets of ``spec.bucket_ms`` each (default 15 x 60 s, a
15-minute window). Time is epoch milliseconds, always passed in. Bucket number ``b`` of a
timestamp is ``ts_ms // bucket_ms``; bucket ``b`` lives in ring slot ``b % buckets``.

The state has a *head*: the newest bucket, ``now_ms // bucket_ms`` of the latest ``now_ms`` it
was stepped with (it never moves back). The window is the buckets ``head - buckets + 1 .. head``.
Moving the head forward zeroes the slots of the buckets that fall out (at most ``buckets`` slots,
whatever the gap), so memory is fixed: ``buckets * stride`` 32-bit counters, where ``stride`` is
5 terminal statuses + 2 submit outcomes + 4 error categories + ``len(latency_bounds_ms) + 1``
latency bins (40 with the defaults: 600 counters, 2.4 KB in memory).

An event is placed by its own timestamp (``ts_ms``), not by ``now_ms``, so events may arrive out
of order. An event older than the window (``b <= head - buckets``) is not counted in the stats;
it increments ``late``. An event newer than the head (a clock ahead of ours) is counted in the
head bucket and increments ``skewed``.

Running totals over the window are kept next to the ring, so :func:`stats` costs ``O(stride)``,
not ``O(buckets * stride)``.

A state is a value: :func:`step` returns a new state and never changes its argument (the ring
is copied, ~1 µs). Serialised with :meth:`WindowState.to_bytes` (22-byte header + a sparse
counter block, see ``_codec``): 23 bytes for an empty window, ~300-900 for a busy one,
at most ``22 + 1 + ceil(counters / 8) + 4 * counters`` (2,498 bytes with the defaults).

Latency percentiles come from a fixed-bucket histogram (upper bounds ``latency_bounds_ms``,
roughly 1.5x apart, plus an overflow bin). :func:`latency_quantile` finds the bin holding the
rank-``ceil(q * n)`` latency and interpolates linearly inside it, so the estimate is always within
the bin that holds the true value; latencies above the last bound are reported as that bound.
"""

from __future__ import annotations

import math
import operator
import struct
import zlib
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import pairwise
from typing import Final

from smsflow.domain.receipts import DeliveryStatus
from smsflow.domain.smpp_status import StatusCategory, classify
from smsflow.domain.tracking._codec import (
    COUNTER_TYPECODE,
    StateFormatError,
    decode_counters,
    encode_counters,
)

__all__ = [
    "DEFAULT_LATENCY_BOUNDS_MS",
    "DEFAULT_WINDOW_SPEC",
    "ERROR_CATEGORIES",
    "NEUTRAL_STATUSES",
    "NO_RESPONSE_STATUS",
    "TERMINAL_STATUSES",
    "ErrorCategory",
    "SubmitEvent",
    "TerminalEvent",
    "WindowEvent",
    "WindowSpec",
    "WindowState",
    "WindowStats",
    "advance",
    "latency_quantile",
    "merge",
    "stats",
    "step",
    "step_many",
    "submit_event",
]


class ErrorCategory(StrEnum):
    """Why a submit failed, as counted in the window."""

    BACKPRESSURE = "BACKPRESSURE"
    TEMPORARY = "TEMPORARY"
    PERMANENT = "PERMANENT"
    CONNECTION_LOST = "CONNECTION_LOST"


#: Counter layout of one bucket, in this order: terminal statuses, accepted, failed, error
#: categories, latency bins. Changing an order changes the wire format (bump ``_VERSION``).
TERMINAL_STATUSES: Final[tuple[DeliveryStatus, ...]] = (
    DeliveryStatus.DELIVERED,
    DeliveryStatus.UNDELIVERABLE,
    DeliveryStatus.EXPIRED,
    DeliveryStatus.REJECTED,
    DeliveryStatus.FAILED,
)
ERROR_CATEGORIES: Final[tuple[ErrorCategory, ...]] = tuple(ErrorCategory)
#: Terminal statuses that say nothing about delivery: not counted at all (neither delivered nor
#: in the delivery rate's denominator, nor ``late``/``skewed``). ACCEPTED: the SMSC took the
#: message and no receipt was requested. The part's submit still counts (``sms.sent``).
NEUTRAL_STATUSES: Final[frozenset[DeliveryStatus]] = frozenset({DeliveryStatus.ACCEPTED})

_TERMINAL_INDEX: Final = {status: i for i, status in enumerate(TERMINAL_STATUSES)}
_ACCEPTED: Final = len(TERMINAL_STATUSES)
_FAILED: Final = _ACCEPTED + 1
_ERROR_INDEX: Final = {cat: _FAILED + 1 + i for i, cat in enumerate(ERROR_CATEGORIES)}
_HIST: Final = _FAILED + 1 + len(ERROR_CATEGORIES)
_DELIVERED: Final = _TERMINAL_INDEX[DeliveryStatus.DELIVERED]

#: ``SubmitOutcome.command_status`` of a part that got no response (connection lost, no bind).
NO_RESPONSE_STATUS: Final = -1

#: Upper bounds (ms, inclusive) of the latency bins; one more bin holds everything above.
DEFAULT_LATENCY_BOUNDS_MS: Final[tuple[float, ...]] = (
    1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100, 150, 200, 300, 500, 700,
    1_000, 1_500, 2_000, 3_000, 5_000, 7_000, 10_000, 15_000, 20_000, 30_000, 60_000,
)

_MAGIC: Final = b"W"
_VERSION: Final = 1
_HEADER: Final = struct.Struct(">cBIqII")  # magic, version, spec fingerprint, head, late, skewed
_NO_HEAD: Final = -(2**63)  # head of a state never stepped
_U32_MAX: Final = 2**32 - 1


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """Shape of a window. Part of the wire format: states only load under the same spec."""

    bucket_ms: int = 60_000
    buckets: int = 15
    latency_bounds_ms: tuple[float, ...] = DEFAULT_LATENCY_BOUNDS_MS
    stride: int = field(init=False, repr=False, compare=False)
    fingerprint: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.bucket_ms <= 0:
            raise ValueError("bucket_ms must be positive")
        if not 1 <= self.buckets <= 1_440:
            raise ValueError("buckets must be within 1..1440")
        bounds = self.latency_bounds_ms
        if not 1 <= len(bounds) <= 200:
            raise ValueError("latency_bounds_ms needs 1..200 bounds")
        if bounds[0] <= 0 or any(b <= a for a, b in pairwise(bounds)):
            raise ValueError("latency_bounds_ms must be positive and strictly increasing")
        # Counters per bucket, and the CRC-32 stored in every serialised state of this spec.
        object.__setattr__(self, "stride", _HIST + len(bounds) + 1)
        packed = struct.pack(f">qI{len(bounds)}d", self.bucket_ms, self.buckets, *bounds)
        object.__setattr__(self, "fingerprint", zlib.crc32(packed))

    @property
    def window_ms(self) -> int:
        return self.bucket_ms * self.buckets

    @property
    def window_s(self) -> int:
        """Window length in whole seconds (``RouteHealth.window_s``)."""
        return self.window_ms // 1000


DEFAULT_WINDOW_SPEC: Final = WindowSpec()


@dataclass(frozen=True, slots=True)
class SubmitEvent:
    """One final submit outcome (a ``SubmitOutcome`` on ``sms.sent``).

    ``latency_ms`` is ``None`` when there was no response to time (connection lost).
    ``error`` is the category of the failure; ``None`` for an accepted part.
    """

    ts_ms: int
    accepted: bool
    latency_ms: float | None = None
    error: ErrorCategory | None = None


@dataclass(frozen=True, slots=True)
class TerminalEvent:
    """One terminal outcome (a ``DeliveryReport`` on ``sms.dlr`` or a ``PartOutcome``)."""

    ts_ms: int
    status: DeliveryStatus


WindowEvent = SubmitEvent | TerminalEvent


def submit_event(
    ts_ms: int, *, accepted: bool, command_status: int, latency_ms: float | None
) -> SubmitEvent:
    """Build a :class:`SubmitEvent` from ``SubmitOutcome`` fields.

    ``command_status == -1`` (no response) counts as ``CONNECTION_LOST`` with no latency;
    other failures take their SMPP category. A ``FAILED`` outcome whose status is ``ESME_ROK``
    cannot come from an SMSC and counts as ``TEMPORARY``.

    >>> submit_event(0, accepted=False, command_status=0x58, latency_ms=12.0).error
    <ErrorCategory.BACKPRESSURE: 'BACKPRESSURE'>
    """
    if accepted:
        return SubmitEvent(ts_ms, True, latency_ms, None)
    if command_status == NO_RESPONSE_STATUS:
        return SubmitEvent(ts_ms, False, None, ErrorCategory.CONNECTION_LOST)
    category = classify(command_status & _U32_MAX)  # Avro int is signed: vendor codes wrap
    error = {
        StatusCategory.BACKPRESSURE: ErrorCategory.BACKPRESSURE,
        StatusCategory.PERMANENT: ErrorCategory.PERMANENT,
    }.get(category, ErrorCategory.TEMPORARY)
    return SubmitEvent(ts_ms, False, latency_ms, error)


class WindowState:
    """Counters of one key's rolling window. Immutable by contract: use :func:`step`."""

    __slots__ = ("_counts", "_head", "_late", "_skewed", "_spec", "_totals")

    def __init__(
        self,
        spec: WindowSpec,
        head: int,
        late: int,
        skewed: int,
        counts: array[int],
        totals: array[int],
    ) -> None:
        # Private constructor: use WindowState.empty() or WindowState.from_bytes().
        self._spec = spec
        self._head = head
        self._late = late
        self._skewed = skewed
        self._counts = counts
        self._totals = totals

    @classmethod
    def empty(cls, spec: WindowSpec = DEFAULT_WINDOW_SPEC) -> WindowState:
        zeros = bytes(4 * spec.buckets * spec.stride)
        return cls(
            spec, _NO_HEAD, 0, 0, array(COUNTER_TYPECODE, zeros),
            array(COUNTER_TYPECODE, bytes(4 * spec.stride)),
        )

    @property
    def spec(self) -> WindowSpec:
        return self._spec

    @property
    def head(self) -> int | None:
        """Newest bucket number, or ``None`` for a state never stepped."""
        return None if self._head == _NO_HEAD else self._head

    @property
    def late(self) -> int:
        """Events dropped because they were older than the window (cumulative)."""
        return self._late

    @property
    def skewed(self) -> int:
        """Events stamped after the head, counted in the head bucket (cumulative)."""
        return self._skewed

    def bucket(self, bucket_no: int) -> tuple[int, ...]:
        """The ``stride`` counters of one bucket (zeros outside the window)."""
        n, stride = self._spec.buckets, self._spec.stride
        if self._head == _NO_HEAD or not self._head - n < bucket_no <= self._head:
            return (0,) * stride
        base = (bucket_no % n) * stride
        return tuple(self._counts[base : base + stride])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WindowState):
            return NotImplemented
        return (
            self._spec == other._spec
            and self._head == other._head
            and self._late == other._late
            and self._skewed == other._skewed
            and self._counts == other._counts
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"WindowState(head={self.head}, late={self._late}, skewed={self._skewed}, "
            f"totals={list(self._totals)})"
        )

    def to_bytes(self) -> bytes:
        """Header + sparse counters (``late``/``skewed`` saturate at 2**32 - 1 on the wire)."""
        header = _HEADER.pack(
            _MAGIC, _VERSION, self._spec.fingerprint, self._head,
            min(self._late, _U32_MAX), min(self._skewed, _U32_MAX),
        )
        return header + encode_counters(self._counts)

    @classmethod
    def from_bytes(cls, data: bytes, spec: WindowSpec = DEFAULT_WINDOW_SPEC) -> WindowState:
        """Load a state; :class:`StateFormatError` if it is not one of ``spec``."""
        if len(data) < _HEADER.size:
            raise StateFormatError("too short for a window state")
        magic, version, fingerprint, head, late, skewed = _HEADER.unpack_from(data)
        if magic != _MAGIC or version != _VERSION:
            raise StateFormatError(f"not a window state v{_VERSION}")
        if fingerprint != spec.fingerprint:
            raise StateFormatError("window state of another spec")
        stride = spec.stride
        counts = decode_counters(memoryview(data)[_HEADER.size :], spec.buckets * stride)
        if head == _NO_HEAD and any(counts):
            raise StateFormatError("counters in a state without a head")
        totals = array(COUNTER_TYPECODE, [sum(counts[j::stride]) for j in range(stride)])
        return cls(spec, head, late, skewed, counts, totals)


def _roll(counts: array[int], totals: array[int], spec: WindowSpec, head: int, target: int) -> int:
    """Move the head to ``target`` in place, zeroing buckets that leave; return the new head."""
    if target <= head:
        return head
    if head == _NO_HEAD:
        return target
    n, stride = spec.buckets, spec.stride
    if target - head >= n:
        counts[:] = array(COUNTER_TYPECODE, bytes(4 * len(counts)))
        totals[:] = array(COUNTER_TYPECODE, bytes(4 * stride))
        return target
    zeros = array(COUNTER_TYPECODE, bytes(4 * stride))
    for bucket_no in range(head + 1, target + 1):
        base = (bucket_no % n) * stride
        leaving = counts[base : base + stride]
        if leaving != zeros:
            totals[:] = array(COUNTER_TYPECODE, map(operator.sub, totals, leaving))
            counts[base : base + stride] = zeros
    return target


def _apply(
    counts: array[int], totals: array[int], spec: WindowSpec, head: int, event: WindowEvent
) -> int:
    """Count ``event`` in place. Returns 0 (counted, or neutral: not counted), 1 (late,
    dropped) or 2 (skewed)."""
    if isinstance(event, TerminalEvent) and event.status in NEUTRAL_STATUSES:
        return 0
    bucket_no = event.ts_ms // spec.bucket_ms
    outcome = 0
    if bucket_no > head:
        bucket_no, outcome = head, 2
    elif bucket_no <= head - spec.buckets:
        return 1
    base = (bucket_no % spec.buckets) * spec.stride
    if isinstance(event, TerminalEvent):
        j = _TERMINAL_INDEX[event.status]
        counts[base + j] += 1
        totals[j] += 1
        return outcome
    j = _ACCEPTED if event.accepted else _FAILED
    counts[base + j] += 1
    totals[j] += 1
    if event.error is not None:
        j = _ERROR_INDEX[event.error]
        counts[base + j] += 1
        totals[j] += 1
    latency = event.latency_ms
    if latency is not None and not math.isnan(latency):
        j = _HIST + bisect_left(spec.latency_bounds_ms, latency)
        counts[base + j] += 1
        totals[j] += 1
    return outcome


def advance(state: WindowState, now_ms: int) -> WindowState:
    """The state with its head moved to ``now_ms`` (old buckets dropped)."""
    target = now_ms // state._spec.bucket_ms
    if target <= state._head:
        return state
    counts, totals = state._counts[:], state._totals[:]
    head = _roll(counts, totals, state._spec, state._head, target)
    return WindowState(state._spec, head, state._late, state._skewed, counts, totals)


def step_many(state: WindowState, events: Iterable[WindowEvent], now_ms: int) -> WindowState:
    """Count ``events`` (any order) as seen at ``now_ms``; one copy for the whole batch."""
    spec = state._spec
    counts, totals = state._counts[:], state._totals[:]
    head = _roll(counts, totals, spec, state._head, now_ms // spec.bucket_ms)
    late, skewed = state._late, state._skewed
    for event in events:
        outcome = _apply(counts, totals, spec, head, event)
        if outcome == 1:
            late += 1
        elif outcome == 2:
            skewed += 1
    return WindowState(spec, head, late, skewed, counts, totals)


def step(state: WindowState, event: WindowEvent, now_ms: int) -> WindowState:
    """Count one event seen at ``now_ms``.

    >>> s = step(WindowState.empty(), TerminalEvent(60_000, DeliveryStatus.DELIVERED), 61_000)
    >>> stats(s, 61_000).delivery_rate
    1.0
    """
    return step_many(state, (event,), now_ms)


def merge(a: WindowState, b: WindowState) -> WindowState:
    """Sum of two windows of the same spec (e.g. per-partition partial windows of one key).

    The result's head is the later of the two; buckets older than its window are dropped
    (aged out, not counted as ``late``: lateness is judged when an event is stepped).
    """
    if a._spec != b._spec:
        raise ValueError("cannot merge windows of different specs")
    if b._head == _NO_HEAD:
        return WindowState(a._spec, a._head, a._late + b._late, a._skewed + b._skewed,
                           a._counts, a._totals)
    if a._head == _NO_HEAD:
        return merge(b, a)
    head = max(a._head, b._head)
    ra, rb = advance(a, head * a._spec.bucket_ms), advance(b, head * b._spec.bucket_ms)
    return WindowState(
        a._spec, head, a._late + b._late, a._skewed + b._skewed,
        array(COUNTER_TYPECODE, map(operator.add, ra._counts, rb._counts)),
        array(COUNTER_TYPECODE, map(operator.add, ra._totals, rb._totals)),
    )


def _rank(q: float, count: int) -> int:
    # The small epsilon keeps 0.95 * 20 (= 19.000000000000004 in binary) at rank 19.
    return min(count, max(1, math.ceil(q * count - 1e-9)))


def latency_quantile(
    histogram: Sequence[int], bounds_ms: Sequence[float], q: float
) -> float | None:
    """Quantile ``q`` (0..1] of a latency histogram; ``None`` when it is empty."""
    if not 0 < q <= 1:
        raise ValueError("q must be in (0, 1]")
    count = sum(histogram)
    if count == 0:
        return None
    rank = _rank(q, count)
    seen = 0
    for i, in_bin in enumerate(histogram):
        if in_bin and seen + in_bin >= rank:
            lower = float(bounds_ms[i - 1]) if i > 0 else 0.0
            if i >= len(bounds_ms):
                return lower
            return lower + (float(bounds_ms[i]) - lower) * (rank - seen) / in_bin
        seen += in_bin
    raise AssertionError("unreachable: rank <= count")  # pragma: no cover


@dataclass(frozen=True, slots=True)
class WindowStats:
    """Aggregates of one window at ``as_of_ms`` (what health scoring and metrics read)."""

    window_s: int
    as_of_ms: int
    terminal: Mapping[DeliveryStatus, int]
    submits_accepted: int
    submits_failed: int
    errors: Mapping[ErrorCategory, int]
    latency_histogram: tuple[int, ...]
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    late: int
    skewed: int

    @property
    def delivered(self) -> int:
        return self.terminal[DeliveryStatus.DELIVERED]

    @property
    def terminal_total(self) -> int:
        return sum(self.terminal.values())

    @property
    def submits(self) -> int:
        return self.submits_accepted + self.submits_failed

    @property
    def latency_count(self) -> int:
        return sum(self.latency_histogram)

    @property
    def delivery_rate(self) -> float | None:
        """Delivered / terminal outcomes; ``None`` without terminal outcomes."""
        total = self.terminal_total
        return self.delivered / total if total else None

    @property
    def error_rate(self) -> float | None:
        """Failed submits / submits; ``None`` without submits."""
        total = self.submits
        return self.submits_failed / total if total else None


def stats(state: WindowState, now_ms: int) -> WindowStats:
    """Aggregates over the window ending at ``now_ms``."""
    state = advance(state, now_ms)
    spec, totals = state._spec, state._totals
    histogram = tuple(totals[_HIST:])
    bounds = spec.latency_bounds_ms
    return WindowStats(
        window_s=spec.window_s,
        as_of_ms=now_ms,
        terminal={status: totals[i] for status, i in _TERMINAL_INDEX.items()},
        submits_accepted=totals[_ACCEPTED],
        submits_failed=totals[_FAILED],
        errors={category: totals[i] for category, i in _ERROR_INDEX.items()},
        latency_histogram=histogram,
        latency_p50_ms=latency_quantile(histogram, bounds, 0.50),
        latency_p95_ms=latency_quantile(histogram, bounds, 0.95),
        late=state._late,
        skewed=state._skewed,
    )
