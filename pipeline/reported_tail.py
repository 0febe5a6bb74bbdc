"""Which messages already have their report on ``sms.dlr``: the aggregator's memory across a crash.

The crash window (issue 13): the aggregator sends a message's report, the broker stores it, and
the worker is killed before the done marker reached the ``dlr-parts`` changelog and before the
``sms.dlr.parts`` offset was committed. The next owner of the partition replays the record,
finds no marker and would report the message a second time.

The replay is bounded, and so is the search: on the first record of a ``sms.dlr.parts``
partition after an assignment (offset ``X``, the committed one), :meth:`ReportedTail.scan`

1. reads the partition's message ids from ``X`` to its end (a record's key, or the parts of
   a batch record, pipeline/part_batches.py): the messages that can be reported again
   (*replayable*);
2. reads every ``sms.dlr`` partition from the time of record ``X`` minus
   :data:`CLOCK_MARGIN_S` to its end, and keeps the replayable messages whose report is there.

A report of a replayed record was sent after record ``X`` was stored, so its timestamp is not
older than record ``X``'s (both are the producing workers' clocks: the margin covers their
skew). The aggregator then drops a report of a message in that set and writes its done marker
instead. Only a report really read back from ``sms.dlr`` suppresses another, so nothing can
be lost this way; what this cannot see (a clock skewed beyond the margin, more than
:data:`MAX_IDS` replayable messages, a scan that fails) ends as before, in a duplicate.

Costs nothing per record while nothing replays: the scans run once per partition and
assignment, in a thread, with a consumer of their own that joins no group.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition
from pydantic import ValidationError

from pipeline.part_batches import unpack
from schemas.codec import DecodeError
from schemas.models import DeliveryReport, PartOutcome
from schemas.retrying import decode_blocking
from schemas.specialized import read_string
from smsflow.kafka_clients import client_config
from smsflow.kafka_security import KafkaTarget

log = logging.getLogger(__name__)

#: How much older than the first replayed record a report of it may look (clock skew between
#: the workers that wrote the two).
CLOCK_MARGIN_S = 10.0
#: Replayable messages remembered per partition at most: beyond, a replayed report may repeat.
MAX_IDS = 1_000_000
_TIMEOUT_S = 60.0  # the whole scan; a scan that takes longer is abandoned (duplicates possible)
_SINGLE_OBJECT, _CONFLUENT = b"\xc3\x01", b"\x00"


@dataclass(frozen=True)
class TailScan:
    """What one scan found for one ``sms.dlr.parts`` partition."""

    #: Replayable messages whose report is already on ``sms.dlr``.
    reported: frozenset[str]
    #: The partition's end offset at the scan: records from here on were never processed.
    replay_end: int
    replayable: int
    reports_read: int
    seconds: float


def _first_string(value: bytes) -> str | None:
    """The first field of an Avro value if it is a string, read without decoding the rest;
    None for any other framing or a value that does not start with one."""
    header = 10 if value[:2] == _SINGLE_OBJECT else 5 if value[:1] == _CONFLUENT else 0
    if header:
        try:
            text, end = read_string(value, header)
        except (IndexError, EOFError, UnicodeDecodeError):
            return None  # not what it seemed: the full decode says why
        if end <= len(value):
            return text
    return None


def message_id_of(value: bytes) -> str:
    """The ``message_id`` of a ``DeliveryReport`` value (the schema's first field; tested
    against a full decode); any other framing falls back to the full decode."""
    found = _first_string(value)
    return found if found is not None else decode_blocking(DeliveryReport, value).message_id


def part_message_id(value: bytes) -> str:
    """The ``message_id`` of a ``PartOutcome`` value (the first field of its first field,
    ``sent``); any other framing falls back to the full decode."""
    found = _first_string(value)
    return found if found is not None else decode_blocking(PartOutcome, value).sent.message_id


class ReportedTail:
    """Scans for one worker (see the module docstring); :meth:`scan` blocks: run it in a
    thread."""

    def __init__(self, bootstrap: KafkaTarget, parts_topic: str, dlr_topic: str,
                 group_id: str) -> None:
        self._bootstrap = bootstrap
        #: The worker's own group: required by librdkafka, never joined and nothing committed
        #: (explicit offsets), and a name the worker's Kafka ACLs already allow to describe.
        self._group_id = group_id
        self._parts_topic = parts_topic
        self._dlr_topic = dlr_topic

    def scan(self, partition: int, from_offset: int, from_timestamp_ms: int) -> TailScan:
        started = time.monotonic()
        deadline = started + _TIMEOUT_S
        # A short broker-side fetch wait: the fetch left parked at the end of the parts
        # partition (librdkafka's default wait is 500 ms) delays the metadata request that
        # follows on the same connection (the broker answers a connection's requests in
        # order): 0.53 s per scan with the default, 0.08 s with this (measured on the dev box).
        consumer = Consumer(client_config(
            self._bootstrap,
            **{"group.id": self._group_id, "enable.auto.commit": False,
               "enable.partition.eof": True, "fetch.wait.max.ms": 10}))
        try:
            parts = TopicPartition(self._parts_topic, partition)
            _, replay_end = consumer.get_watermark_offsets(parts, timeout=10)
            replayable: set[str] = set()
            for message in _read(consumer, {partition: (from_offset, replay_end)},
                                 self._parts_topic, deadline):
                replayable.update(_message_ids(message))
                if len(replayable) >= MAX_IDS:
                    log.warning("%s[%d]: over %d replayable messages; the rest may be "
                                "reported twice", self._parts_topic, partition, MAX_IDS)
                    break
            reported, read = set(), 0
            if replayable:
                for message in _read(consumer, self._dlr_ranges(consumer, from_timestamp_ms),
                                     self._dlr_topic, deadline):
                    read += 1
                    value = message.value()
                    if value and (message_id := message_id_of(value)) in replayable:
                        reported.add(message_id)
            return TailScan(frozenset(reported), replay_end, len(replayable), read,
                            time.monotonic() - started)
        finally:
            consumer.close()

    def _dlr_ranges(self, consumer: Consumer, from_timestamp_ms: int) -> dict[int, tuple[int, int]]:
        """``sms.dlr`` partition -> (first offset at or after the time, end offset)."""
        topic = consumer.list_topics(self._dlr_topic, timeout=10).topics[self._dlr_topic]
        since = max(0, from_timestamp_ms - int(CLOCK_MARGIN_S * 1000))
        found = consumer.offsets_for_times(
            [TopicPartition(self._dlr_topic, p, since) for p in sorted(topic.partitions)],
            timeout=10)
        ranges = {}
        for tp in found:
            _, end = consumer.get_watermark_offsets(tp, timeout=10)
            start = tp.offset if tp.offset >= 0 else end  # -1: nothing that recent
            ranges[tp.partition] = (start, end)
        return ranges


def _message_ids(message: Message) -> list[str]:
    """The message ids of a ``sms.dlr.parts`` record: its key, or the ids of a batch's parts
    (keyless). A part that cannot be read is left out: the aggregator dead-letters it."""
    key, value = message.key(), message.value()
    if key:
        return [key.decode() if isinstance(key, bytes) else key]
    if not value or isinstance(value, str):
        return []
    ids = []
    try:
        for part in unpack(value):
            try:
                ids.append(part_message_id(part))
            except (DecodeError, ValidationError):
                continue
    except ValueError:  # a batch cut short: its readable parts are kept
        pass
    return ids


def _read(consumer: Consumer, ranges: dict[int, tuple[int, int]], topic: str,
          deadline: float) -> Iterator[Message]:
    """Every record of ``topic`` in ``ranges`` (partition -> [start, end)); raises
    ``TimeoutError`` past ``deadline``."""
    left = {p: end for p, (start, end) in ranges.items() if start < end}
    if not left:
        return
    consumer.assign([TopicPartition(topic, p, ranges[p][0]) for p in left])
    while left:
        if time.monotonic() > deadline:
            raise TimeoutError(f"reading {topic} {sorted(left)} took over {_TIMEOUT_S:.0f} s")
        for message in consumer.consume(10_000, 0.05):
            error, partition = message.error(), message.partition()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    left.pop(partition, None)  # type: ignore[arg-type]
                    continue
                raise RuntimeError(f"reading {topic}: {error}")
            if partition not in left:
                continue
            offset = message.offset()
            if offset is not None and offset < left[partition]:
                yield message
            if offset is None or offset >= left[partition] - 1:
                left.pop(partition, None)
    consumer.unassign()
