"""Kafka's murmur2 partitioner, compiled (smsflow/murmur2.py), against aiokafka's reference
implementation of the Java client's."""

from __future__ import annotations

from aiokafka.partitioner import murmur2 as reference_murmur2
from hypothesis import given
from hypothesis import strategies as st

from smsflow.murmur2 import murmur2, partition_of


@given(st.binary(max_size=64))
def test_the_hash_is_kafkas(data: bytes) -> None:
    assert murmur2(data) == reference_murmur2(data)


def test_every_length_remainder_and_high_bytes() -> None:
    """The tail of 1-3 bytes has its own code path; bytes >= 0x80 test that nothing is signed."""
    for length in range(12):
        data = bytes((0x80 + 37 * i) % 256 for i in range(length))
        assert murmur2(data) == reference_murmur2(data)


def test_known_java_values() -> None:
    """Values of org.apache.kafka.common.utils.Utils.murmur2 (signed in Java) for these keys,
    from the Java client's own test (UtilsTest.testMurmur2)."""
    cases = {b"21": -973932308, b"foobar": -790332482, b"a-little-bit-long-string": -985981536,
             b"a-little-bit-longer-string": -1486304829,
             b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971, b"abc": 479470107}
    for key, java in cases.items():
        assert murmur2(key) == java & 0xFFFFFFFF


@given(st.binary(max_size=40), st.integers(min_value=1, max_value=64))
def test_the_partition_is_in_range_and_positive(key: bytes, partitions: int) -> None:
    partition = partition_of(key, partitions)
    assert partition == (reference_murmur2(key) & 0x7FFFFFFF) % partitions
    assert 0 <= partition < partitions
