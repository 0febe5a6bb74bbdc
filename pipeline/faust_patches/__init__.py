"""Every workaround of faust-streaming / aiokafka / mode internals, in one place.

Correctness of the worker depends on these; each module names the upstream behaviour it
answers and lists the upstream code it copies, overrides or reads (``UPSTREAM``, source hashes
checked by a unit test per patch under tests/unit/pipeline/faust_patches/). Nothing outside
this package touches private faust/aiokafka/mode attributes.

* :mod:`.guarded_consumer`: faust issue #596, records skipped or stranded around rebalances
  and table recovery, and commit arithmetic that forgets processed records and passes an
  unprocessed one. Overrides ``Consumer._drain_messages`` (a copy), ``_new_offset``,
  ``_filter_committable_offsets``, ``ack``, ``seek``, ``_commit``; wraps
  ``flow_control.clear``.
* :mod:`.commit_hooks`: what the guarded consumer awaits (barriers) and applies (caps) around
  each commit: our own producer's flush, the scheduled stages' in-order cap.
* :mod:`.stream_hooks`: hearing that faust emptied the stream buffers; releasing a held record
  without acking it.
* :mod:`.fetch_wait`: faust hard-codes aiokafka's ``fetch_max_wait_ms=1500`` (head-of-line
  delay across partitions).
* :mod:`.current_event`: table writes outside the stream (done markers after delivery) need
  faust's private ``_current_event``.
* :mod:`.auth_refusal`: aiokafka logs and retries a refused SASL login for ever; wraps
  ``aiokafka.client.create_conn`` so the refusal ends the worker (smsflow/kafka_refusal.py).
* :mod:`.changelog_writes`: faust writes each table change with its own aiokafka producer, one
  record at a time (~10% of the worker's CPU); ``send_changelog`` is replaced per table. Also
  per table: faust's partition-count check, which crashed a fresh worker when a just-created
  changelog's metadata still showed 0 partitions.
* :mod:`.fixed_waits`: faust's 1 s sleep before the tables start and mode's fixed waits at
  shutdown (``Worker._gather_all``, ``_sentinel_task``), replaced by waits for the event
  through faust's ``TableManager=`` and ``Worker=`` settings.
* :mod:`.lean_sensors`: faust's sensor delegate and monitor keep statistics on every message,
  event and table access (~4.5% of the worker's CPU) that nothing reads; only the stalled-stream
  check's ``stream_inbound_time`` is kept.
* :mod:`.raw_events`: per event, faust decodes our raw-bytes topics through its serializer
  registry and looks two settings up (``conf.Event``, ``conf.producer_threaded``): a schema
  that returns the fetched bytes, and both lookups done once.

Pinned: faust-streaming 0.15.3, aiokafka 0.14.0, mode-streaming 0.7.1 (:data:`PINNED`).
The versions are pinned exactly in pyproject.toml and checked at start-up
(:func:`check_pins`): a worker with other versions refuses to start rather than run patches
written against code it does not have.
"""

from __future__ import annotations

from importlib.metadata import version

from pipeline.faust_patches import (
    auth_refusal,
    changelog_writes,
    current_event,
    fetch_wait,
    fixed_waits,
    guarded_consumer,
    lean_sensors,
    raw_events,
    stream_hooks,
)
from pipeline.faust_patches.upstream import Upstream

__all__ = ["ALL_UPSTREAM", "PATCHES", "PINNED", "check_pins", "installed_versions"]

#: The exact versions every patch was written and fingerprinted against (as in pyproject.toml).
PINNED: dict[str, str] = {
    "faust-streaming": "0.15.3",
    "aiokafka": "0.14.0",
    "mode-streaming": "0.7.1",
}

#: Patch module name -> the upstream code it depends on.
PATCHES: dict[str, tuple[Upstream, ...]] = {
    "guarded_consumer": guarded_consumer.UPSTREAM,
    "stream_hooks": stream_hooks.UPSTREAM,
    "fetch_wait": fetch_wait.UPSTREAM,
    "current_event": current_event.UPSTREAM,
    "changelog_writes": changelog_writes.UPSTREAM,
    "auth_refusal": auth_refusal.UPSTREAM,
    "fixed_waits": fixed_waits.UPSTREAM,
    "lean_sensors": lean_sensors.UPSTREAM,
    "raw_events": raw_events.UPSTREAM,
}
ALL_UPSTREAM: tuple[Upstream, ...] = tuple(u for deps in PATCHES.values() for u in deps)


def installed_versions() -> dict[str, str]:
    return {name: version(name) for name in PINNED}


def check_pins() -> None:
    """Raise ``RuntimeError`` unless the installed versions are exactly :data:`PINNED`."""
    installed = installed_versions()
    wrong = {name: v for name, v in installed.items() if v != PINNED[name]}
    if wrong:
        raise RuntimeError(
            f"pipeline.faust_patches was written for {PINNED}, installed: {installed}; "
            "re-check every patch (see pipeline/faust_patches/upstream.py) before upgrading"
        )
