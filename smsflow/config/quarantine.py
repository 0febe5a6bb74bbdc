"""``smsflow tenants quarantine|release TENANT``: quarantine as an operation, not a YAML edit.

Both rewrite the tenant's record on ``sms.config`` with ``quarantined`` set or cleared (the
other tenants' records are left as they are). Every process follows that topic: the API answers
``403 TENANT_QUARANTINED`` within about a second, and the router parks the tenant's messages on
``sms.held`` (:mod:`pipeline.agents.quarantine`) until the release, which sends them on.

``smsflow config apply`` writes the whole file, so a later apply from a ``platform.yaml`` that
does not say ``quarantined: true`` releases the tenant: keep the file in step.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from datetime import UTC, datetime

from smsflow.config.kafka_io import apply_config, read_config
from smsflow.config.models import PlatformConfig
from smsflow.settings import load_settings
from smsflow.topics import CONFIG, topic_name

log = logging.getLogger(__name__)


class UnknownTenant(LookupError):
    pass


def with_quarantine(config: PlatformConfig, tenant_id: str, quarantined: bool) -> PlatformConfig:
    """``config`` with the tenant's ``quarantined`` flag set (pure)."""
    if tenant_id not in {tenant.id for tenant in config.tenants}:
        raise UnknownTenant(tenant_id)
    tenants = tuple(
        tenant.model_copy(update={"quarantined": quarantined}) if tenant.id == tenant_id
        else tenant
        for tenant in config.tenants
    )
    return config.model_copy(update={"tenants": tenants})


def set_quarantine(bootstrap: str, topic: str, tenant_id: str, quarantined: bool) -> bool:
    """Write the flag to ``sms.config``; False when it was already so (nothing written)."""
    config = read_config(bootstrap, topic)
    changed = with_quarantine(config, tenant_id, quarantined)
    if changed == config:
        return False
    apply_config(bootstrap, topic, changed)
    return True


def _run(args: argparse.Namespace, quarantined: bool) -> int:
    settings = load_settings()
    verb = "quarantined" if quarantined else "released"
    try:
        written = set_quarantine(settings.kafka_bootstrap, topic_name(settings, CONFIG),
                                 args.tenant, quarantined)
    except UnknownTenant:
        print(f"error: tenant {args.tenant!r} is not configured (smsflow config show)",
              file=sys.stderr)
        return 2
    if not written:
        print(f"tenant {args.tenant} was already {verb}")
        return 0
    when = datetime.now(UTC).isoformat(timespec="seconds")
    # Who, when and why, on the operator's terminal and in the logs (an audit topic is still
    # to be built: docs/api.md#quarantine).
    log.warning("tenant %s %s by %s at %s: %s", args.tenant, verb, getpass.getuser(), when,
                args.reason or "(no reason given)")
    print(f"tenant {args.tenant} {verb} at {when} by {getpass.getuser()}"
          f"{': ' + args.reason if args.reason else ''}")
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
    quarantine.add_argument("--reason", default="", help="why (logged)")
    quarantine.set_defaults(func=_cmd_quarantine)
    release = sub.add_parser("release", help="accept the tenant again; held messages continue")
    release.add_argument("tenant")
    release.add_argument("--reason", default="", help="why (logged)")
    release.set_defaults(func=_cmd_release)
