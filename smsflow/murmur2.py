"""Kafka's default partitioner (murmur2 of the key), compiled with mypyc.

The Java client, aiokafka, faust and our librdkafka producers (``murmur2_random``) put a keyed
record on ``(murmur2(key) & 0x7FFFFFFF) % partitions``. The correlator needs the same answer to
batch completed parts per partition (pipeline/part_batches.py), once per part, and the sender
to batch receipts the same way (connectors/sender/receipt_batches.py); aiokafka's
pure-Python ``murmur2`` was ~1 % of the worker there. Same algorithm as
``org.apache.kafka.common.utils.Utils.murmur2``, 32-bit arithmetic by masking
(in mypyc's 64-bit machine integers, ``i64``: a product of two 32-bit values never overflows them);
tests/unit/test_murmur2.py checks it against aiokafka's on keys of every length
remainder.
"""

from __future__ import annotations

from mypy_extensions import i64

__all__ = ["murmur2", "partition_of"]

_SEED: i64 = 0x9747B28C
_M: i64 = 0x5BD1E995
_MASK: i64 = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """The unsigned 32-bit murmur2 hash of ``data``, as Kafka computes it."""
    length: i64 = len(data)
    h: i64 = (_SEED ^ length) & _MASK
    end: i64 = length - length % 4
    i: i64 = 0
    k: i64
    while i < end:
        k = data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24)
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
        i += 4
    extra: i64 = length - end
    if extra >= 3:
        h ^= data[end + 2] << 16
    if extra >= 2:
        h ^= data[end + 1] << 8
    if extra >= 1:
        h ^= data[end]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives ``key`` among ``partitions``."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions
