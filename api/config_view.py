"""The platform configuration as the API sees it: tenants and the numbering plan, kept live from
``sms.config`` (the topic ``smsflow config apply`` writes and the workers read).

The snapshot is rebuilt after each fetched batch of records, in the follower's thread (building
the numbering plan can take a fraction of a second the first time a calling code is seen), and
swapped in as one value, so a request sees either the old or the new configuration, never a mix.
A batch that does not fold into a valid configuration keeps the previous snapshot, and says so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from api.follower import TopicFollower
from schemas.codec import DecodeError
from schemas.models import ConfigRecord
from smsflow.config.models import PlatformConfig, Tenant
from smsflow.config.store import ConfigError, snapshot_from
from smsflow.domain.numbering import NumberingPlan, build_numbering
from smsflow.domain.route_engine import build_catalogue
from smsflow.kafka_security import KafkaTarget

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ApiConfig:
    tenants: dict[str, Tenant] = field(default_factory=dict)
    numbering: NumberingPlan = field(default_factory=lambda: build_numbering(()))
    version: int = 0


def api_config(config: PlatformConfig, version: int) -> ApiConfig:
    return ApiConfig(
        tenants={tenant.id: tenant for tenant in config.tenants},
        # The router's own catalogue construction: the same operators and country-wide routes.
        numbering=build_catalogue(config).numbering,
        version=version,
    )


class ConfigView:
    def __init__(self, bootstrap: KafkaTarget, topic: str) -> None:
        self.current = ApiConfig()
        self._latest: dict[str, ConfigRecord] = {}
        self._dirty = True
        self._version = 0
        self.follower = TopicFollower(
            bootstrap, topic, self._apply, name="config", after_batch=self._rebuild
        )

    def _apply(self, key: bytes, value: bytes | None) -> None:
        name = key.decode(errors="replace")
        self._dirty = True
        if not value:
            self._latest.pop(name, None)
            return
        try:
            self._latest[name] = ConfigRecord.from_avro(value)
        except DecodeError as exc:
            self._latest.pop(name, None)
            log.warning("config record %s is unreadable and treated as absent: %s", name, exc)

    def _rebuild(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        try:
            config = snapshot_from(self._latest)
        except ConfigError as exc:
            log.warning("configuration on the topic does not fold; keeping the previous: %s", exc)
            return
        self._version += 1
        self.current = api_config(config, self._version)
