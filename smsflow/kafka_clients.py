"""Settings every confluent-kafka producer of ours shares.

``murmur2_random`` is the partitioner of the Java client, aiokafka and faust. librdkafka's
default (``consistent_random``, CRC32) puts the same key on a different partition, which would
split one tenant (or one route, or one receipt and its submit outcome) across partitions as
soon as two kinds of producer write the same topic.
"""

from __future__ import annotations

from typing import Any


def producer_config(bootstrap: str, **overrides: Any) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "partitioner": "murmur2_random",
        **overrides,
    }
