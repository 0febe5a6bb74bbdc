"""The API key table: every API process's copy of ``sms.api-keys``, and writing to it.

Records are JSON :class:`~api.keys.ApiKeyRecord` values keyed by key id on a compacted,
single-partition topic. A record this version cannot read is logged and left out (its key then
does not authenticate: failing closed), never guessed at.
"""

from __future__ import annotations

import logging

from confluent_kafka import Producer
from pydantic import ValidationError

from api.follower import TopicFollower
from api.keys import ApiKeyRecord, PresentedKey, parse_key, verify
from smsflow.kafka_clients import producer_config
from smsflow.kafka_security import KafkaTarget

log = logging.getLogger(__name__)


class KeyTable:
    def __init__(self, bootstrap: KafkaTarget, topic: str, pepper: bytes) -> None:
        self._pepper = pepper
        self._records: dict[str, ApiKeyRecord] = {}
        self.follower = TopicFollower(bootstrap, topic, self._apply, name="api-keys")

    def _apply(self, key: bytes, value: bytes | None) -> None:
        key_id = key.decode(errors="replace")
        if value is None:
            self._records.pop(key_id, None)
            return
        try:
            self._records[key_id] = ApiKeyRecord.model_validate_json(value)
        except ValidationError as exc:
            self._records.pop(key_id, None)
            log.warning("API key record %s is unreadable and does not authenticate: %s",
                        key_id, exc)

    def authenticate(self, presented_text: str) -> str | None:
        """The tenant id of an active key, or None (unknown, malformed or revoked)."""
        presented: PresentedKey | None = parse_key(presented_text)
        record = self._records.get(presented.key_id) if presented is not None else None
        verified = verify(record, presented, self._pepper)  # HMAC even for unknown ids
        if record is None or not verified:
            return None
        return record.tenant_id

    def records(self) -> list[ApiKeyRecord]:
        return sorted(self._records.values(), key=lambda r: (r.tenant_id, r.created_at))


def write_key_record(
    bootstrap: KafkaTarget, topic: str, record: ApiKeyRecord, timeout_s: float = 30.0
) -> None:
    """Store ``record`` (acks=all) and return once Kafka has it; raises if it did not."""
    producer = Producer(producer_config(bootstrap))
    errors: list[str] = []
    producer.produce(
        topic, key=record.key_id.encode(), value=record.model_dump_json().encode(),
        on_delivery=lambda err, _msg: errors.append(str(err)) if err is not None else None,
    )
    if producer.flush(timeout_s) != 0 or errors:
        raise RuntimeError(f"the key record was not stored: {errors or 'timed out'}")
