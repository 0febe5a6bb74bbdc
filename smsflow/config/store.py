"""Moving the configuration between YAML, the compacted ``sms.config`` topic and snapshots.

Each object is one record keyed ``<kind>/<id>``; removing an object from the YAML writes a
tombstone, so the topic always converges to exactly the file's content. Readers replay the topic
from the beginning and fold records into a :class:`PlatformConfig` (last write wins per key).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path

import yaml
from pydantic import BaseModel, ValidationError

from schemas.models import ConfigKind, ConfigRecord
from smsflow.config.models import Operator, PlatformConfig, RateLimits, Route, Smsc, Tenant
from smsflow.config.secrets import REVEAL
from smsflow.domain.errors import PermanentError

_KIND_FIELDS: dict[ConfigKind, tuple[str, type[BaseModel]]] = {
    ConfigKind.TENANT: ("tenants", Tenant),
    ConfigKind.OPERATOR: ("operators", Operator),
    ConfigKind.SMSC: ("smscs", Smsc),
    ConfigKind.ROUTE: ("routes", Route),
}


#: Platform-wide settings objects: one record each, with this id.
SINGLETON_ID = "platform"


class UnknownTenant(PermanentError, LookupError):
    """A tenant id the configuration does not have (the operator commands say so and exit 2)."""


class ConfigError(PermanentError, ValueError):
    """Configuration that cannot be used, with a message naming what is wrong."""


def load_yaml(path: Path) -> PlatformConfig:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    try:
        return PlatformConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: invalid configuration\n{exc}") from exc


def config_key(kind: ConfigKind, object_id: str) -> str:
    return f"{kind.value.lower()}/{object_id}"


def to_records(config: PlatformConfig, now: datetime) -> dict[str, ConfigRecord]:
    """One record per object, keyed as on the topic."""
    records: dict[str, ConfigRecord] = {}
    for kind, (field_name, _) in _KIND_FIELDS.items():
        for item in getattr(config, field_name):
            records[config_key(kind, item.id)] = ConfigRecord(
                kind=kind, id=item.id, document=item.model_dump_json(context={REVEAL: True}),
                updated_at=now,
            )
    records[config_key(ConfigKind.LIMITS, SINGLETON_ID)] = ConfigRecord(
        kind=ConfigKind.LIMITS, id=SINGLETON_ID, document=config.limits.model_dump_json(),
        updated_at=now,
    )
    return records


def fold(records: Iterable[tuple[str, ConfigRecord | None]]) -> PlatformConfig:
    """Build a snapshot from topic records in offset order; ``None`` is a tombstone."""
    latest: dict[str, ConfigRecord] = {}
    for key, record in records:
        if record is None:
            latest.pop(key, None)
        else:
            latest[key] = record
    return snapshot_from(latest)


def snapshot_from(latest: Mapping[str, ConfigRecord]) -> PlatformConfig:
    grouped: dict[str, list[object]] = {field_name: [] for field_name, _ in _KIND_FIELDS.values()}
    limits = RateLimits()
    for key, record in latest.items():
        # A record another writer (or another version) put on the topic may not validate here:
        # the watcher keeps its previous snapshot and says which record, instead of crashing.
        try:
            if record.kind is ConfigKind.LIMITS:
                limits = RateLimits.model_validate_json(record.document)
                continue
            field_name, model = _KIND_FIELDS[record.kind]
            grouped[field_name].append(model.model_validate(json.loads(record.document)))
        except (ValidationError, ValueError) as exc:
            raise ConfigError(f"invalid config record {key!r}: {exc}") from exc
    for items in grouped.values():
        items.sort(key=lambda item: item.id)  # type: ignore[attr-defined]
    # A snapshot assembled from the topic can transiently reference an object whose record is
    # not yet applied; validation errors surface as ConfigError to the watcher, which keeps the
    # previous snapshot.
    try:
        return PlatformConfig.model_validate({**grouped, "limits": limits})
    except ValidationError as exc:
        raise ConfigError(f"inconsistent configuration on the topic: {exc}") from exc


def now_utc() -> datetime:
    return datetime.now(UTC)
