"""``smsflow tenants key create|list|revoke``: API keys as an operation.

``create`` prints the key once; only its HMAC reaches Kafka. ``revoke`` takes effect on every
API process within about a second (each follows ``sms.api-keys``).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from typing import Any

from api.follower import TopicFollower, wait_caught_up
from api.key_table import write_key_record
from api.keys import ApiKeyRecord, new_key, revoked
from api.settings import PepperMissing, load_api_settings, resolve_pepper
from smsflow.config import quarantine as quarantine_cli
from smsflow.config.audit import record_audit
from smsflow.config.kafka_io import read_config
from smsflow.config.store import UnknownTenant
from smsflow.kafka_security import KafkaTarget, kafka_connection
from smsflow.settings import Settings, load_settings
from smsflow.topics import API_KEYS, AUDIT, CONFIG, topic_name

_READ_TIMEOUT_S = 30.0


def read_key_records(bootstrap: KafkaTarget, topic: str) -> dict[str, ApiKeyRecord]:
    """Every key record on the topic (latest per key id), read once."""
    records: dict[str, ApiKeyRecord] = {}

    def apply(key: bytes, value: bytes | None) -> None:
        if value is None:
            records.pop(key.decode(), None)
        else:
            records[key.decode()] = ApiKeyRecord.model_validate_json(value)

    follower = TopicFollower(bootstrap, topic, apply, name="keys-cli")
    follower.start()
    try:
        if not wait_caught_up([follower], _READ_TIMEOUT_S):
            raise TimeoutError(f"could not read {topic} within {_READ_TIMEOUT_S:.0f}s")
    finally:
        follower.stop()
    return records


def _when(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


def create_key(settings: Settings, pepper: bytes, tenant_id: str, label: str = ""
               ) -> tuple[str, ApiKeyRecord]:
    """A new key for a configured tenant, its HMAC stored on ``sms.api-keys``; the key (shown
    once) and its record. ``smsflow tenants key create`` and ``smsflow demo`` both use it."""
    config = read_config(kafka_connection(settings), topic_name(settings, CONFIG))
    if tenant_id not in {tenant.id for tenant in config.tenants}:
        raise UnknownTenant(tenant_id)
    key, record = new_key(tenant_id, pepper, now=time.time(), label=label)
    write_key_record(kafka_connection(settings), topic_name(settings, API_KEYS), record)
    record_audit(kafka_connection(settings), topic_name(settings, AUDIT), "API_KEY_CREATED",
                 tenant_id, reason=label, detail=f"key {record.key_id}")
    return key, record


def _cmd_create(args: argparse.Namespace) -> int:
    settings = load_settings()
    try:
        pepper = resolve_pepper(load_api_settings())
    except PepperMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        key, record = create_key(settings, pepper, args.tenant, args.label)
    except UnknownTenant:
        print(f"error: tenant {args.tenant!r} is not configured (smsflow config show)",
              file=sys.stderr)
        return 2
    if args.quiet:
        print(key)
        return 0
    print(f"key id:  {record.key_id}")
    print(f"tenant:  {record.tenant_id}")
    print(f"api key: {key}")
    print("Store the key now: it is shown only once and cannot be recovered.")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    settings = load_settings()
    records = read_key_records(kafka_connection(settings), topic_name(settings, API_KEYS))
    shown = sorted(
        (r for r in records.values() if args.tenant in (None, r.tenant_id)),
        key=lambda r: (r.tenant_id, r.created_at),
    )
    print(f"{'KEY ID':<17} {'TENANT':<20} {'STATE':<8} {'CREATED':<26} {'REVOKED':<26} LABEL")
    for r in shown:
        state = "active" if r.active else "revoked"
        print(f"{r.key_id:<17} {r.tenant_id:<20} {state:<8} {_when(r.created_at):<26} "
              f"{_when(r.revoked_at):<26} {r.label}")
    return 0


def _cmd_revoke(args: argparse.Namespace) -> int:
    settings = load_settings()
    topic = topic_name(settings, API_KEYS)
    record = read_key_records(kafka_connection(settings), topic).get(args.key_id)
    if record is None or record.tenant_id != args.tenant:
        print(f"error: tenant {args.tenant!r} has no key {args.key_id!r}", file=sys.stderr)
        return 2
    if not record.active:
        print(f"key {args.key_id} was already revoked at {_when(record.revoked_at)}")
        return 0
    write_key_record(
        kafka_connection(settings), topic, revoked(record, now=time.time(), reason=args.reason)
    )
    print(f"revoked key {args.key_id} of {args.tenant}")
    record_audit(kafka_connection(settings), topic_name(settings, AUDIT), "API_KEY_REVOKED",
                 args.tenant, reason=args.reason, detail=f"key {args.key_id}")
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("tenants", help="tenant operations (API keys, quarantine)")
    sub = parser.add_subparsers(dest="tenants_command", required=True)
    keys = sub.add_parser("key", help="create, list and revoke API keys")
    key_sub = keys.add_subparsers(dest="key_command", required=True)
    create = key_sub.add_parser("create", help="create a key and print it (once)")
    create.add_argument("tenant")
    create.add_argument("--label", default="", help="a note, e.g. which client uses it")
    create.add_argument("--quiet", action="store_true", help="print only the key")
    create.set_defaults(func=_cmd_create)
    listing = key_sub.add_parser("list", help="list keys (never the secrets)")
    listing.add_argument("tenant", nargs="?", default=None)
    listing.set_defaults(func=_cmd_list)
    revoke = key_sub.add_parser("revoke", help="revoke a key on every API process")
    revoke.add_argument("tenant")
    revoke.add_argument("key_id")
    revoke.add_argument("--reason", default="", help="why (kept on the record)")
    revoke.set_defaults(func=_cmd_revoke)
    quarantine_cli.register(sub)
