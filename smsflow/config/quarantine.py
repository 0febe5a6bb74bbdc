"""``smsflow tenants quarantine|release TENANT``: quarantine as an operation, not a YAML edit.

Both rewrite the tenant's record on ``sms.config`` with ``quarantined`` set or cleared (the
other tenants' records are left as they are). Every process follows that topic: the API answers
``403 TENANT_QUARANTINED`` within about a second, and the router parks the tenant's messages on
``sms.held`` (:mod:`pipeline.agents.quarantine`) until the release, which sends them on.

``release --reject-held`` also sets the tenant's ``reject_held_before`` to now: what was held
until then is dead-lettered with ``TENANT_QUARANTINED`` instead of sent on. Each command writes an
audit event (who, when, why) to ``sms.audit`` (:mod:`smsflow.config.audit`).

``smsflow config apply`` writes the whole file, so a later apply from a ``platform.yaml`` that
does not say ``quarantined: true`` releases the tenant: keep the file in step.
"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import UTC, datetime

from smsflow.config.audit import actor, audit_trail, record_audit
from smsflow.config.kafka_io import apply_config, read_config
from smsflow.config.models import PlatformConfig
from smsflow.config.store import UnknownTenant
from smsflow.kafka_security import KafkaTarget, kafka_connection
from smsflow.settings import load_settings
from smsflow.topics import AUDIT, CONFIG, topic_name

log = logging.getLogger(__name__)


def with_quarantine(config: PlatformConfig, tenant_id: str, quarantined: bool,
                    reject_held_before: datetime | None = None) -> PlatformConfig:
    """``config`` with the tenant's ``quarantined`` flag set, and its ``reject_held_before``
    when given (pure)."""
    if tenant_id not in {tenant.id for tenant in config.tenants}:
        raise UnknownTenant(tenant_id)
    update: dict[str, object] = {"quarantined": quarantined}
    if reject_held_before is not None:
        update["reject_held_before"] = reject_held_before
    tenants = tuple(
        tenant.model_copy(update=update) if tenant.id == tenant_id else tenant
        for tenant in config.tenants
    )
    return config.model_copy(update={"tenants": tenants})


def set_quarantine(bootstrap: KafkaTarget, topic: str, tenant_id: str, quarantined: bool,
                   reject_held_before: datetime | None = None) -> bool:
    """Write the flag to ``sms.config``; False when it was already so (nothing written)."""
    config = read_config(bootstrap, topic)
    changed = with_quarantine(config, tenant_id, quarantined, reject_held_before)
    if changed == config:
        return False
    apply_config(bootstrap, topic, changed)
    return True


def _run(args: argparse.Namespace, quarantined: bool) -> int:
    settings = load_settings()
    verb = "quarantined" if quarantined else "released"
    now = datetime.now(UTC)
    reject_held = not quarantined and args.reject_held
    try:
        written = set_quarantine(kafka_connection(settings), topic_name(settings, CONFIG),
                                 args.tenant, quarantined, now if reject_held else None)
    except UnknownTenant:
        print(f"error: tenant {args.tenant!r} is not configured (smsflow config show)",
              file=sys.stderr)
        return 2
    if not written:
        print(f"tenant {args.tenant} was already {verb}")
        return 0
    detail = "held messages rejected (TENANT_QUARANTINED)" if reject_held else ""
    when = now.isoformat(timespec="seconds")
    log.warning("tenant %s %s by %s at %s: %s", args.tenant, verb, actor(), when,
                args.reason or "(no reason given)")
    print(f"tenant {args.tenant} {verb} at {when} by {actor()}"
          f"{': ' + args.reason if args.reason else ''}{' - ' + detail if detail else ''}")
    record_audit(kafka_connection(settings), topic_name(settings, AUDIT),
                 "TENANT_QUARANTINED" if quarantined else "TENANT_RELEASED", args.tenant,
                 reason=args.reason, detail=detail, at=now)
    return 0


def _cmd_audit(args: argparse.Namespace) -> int:
    settings = load_settings()
    events = audit_trail(kafka_connection(settings), topic_name(settings, AUDIT), args.tenant)
    for event in events:
        print(f"{event.at.isoformat(timespec='seconds')}  {event.action:<19} {event.actor:<16} "
              f"{event.reason or '-'}{'  [' + event.detail + ']' if event.detail else ''}")
    if not events:
        print(f"no audit events for {args.tenant}")
    return 0


def _cmd_quarantine(args: argparse.Namespace) -> int:
    return _run(args, True)


def _cmd_release(args: argparse.Namespace) -> int:
    return _run(args, False)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``quarantine`` and ``release`` to the ``tenants`` command."""
    quarantine = sub.add_parser(
        "quarantine", help="refuse the tenant's API requests and hold its messages"
    )
    quarantine.add_argument("tenant")
    quarantine.add_argument("--reason", default="", help="why (logged and audited)")
    quarantine.set_defaults(func=_cmd_quarantine)
    release = sub.add_parser("release", help="accept the tenant again; held messages continue")
    release.add_argument("tenant")
    release.add_argument("--reason", default="", help="why (logged and audited)")
    release.add_argument(
        "--reject-held", action="store_true",
        help="reject the messages held during the quarantine (TENANT_QUARANTINED on "
             "sms.rejected) instead of sending them on")
    release.set_defaults(func=_cmd_release)
    audit = sub.add_parser("audit", help="the tenant's audit trail (sms.audit), oldest first")
    audit.add_argument("tenant")
    audit.set_defaults(func=_cmd_audit)
