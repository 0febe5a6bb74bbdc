"""``smsflow routes explain``: which route a message would take, and why.

    smsflow routes explain --to +447401234567 --tenant acme-bank --type otp
    smsflow routes explain --to +4915112345678 --tenant shopfast --from-topic
    smsflow routes explain --to ... --tenant ... --health what-if.yaml   # route → state/score

Runs the same pure engine as the router (:mod:`smsflow.domain.route_engine`) on the
configuration from a YAML file (default ``config/platform.yaml``) or from the live ``sms.config``
topic. Health comes from ``--health`` (a YAML/JSON mapping ``route id → {state, score,
latency_ms}``); without it every route is at its configured baseline. Exit status: 0 routed,
1 rejected, 2 the configuration or health file could not be used.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import yaml

from smsflow.config.models import MessageType, PlatformConfig, Tier
from smsflow.config.store import ConfigError, load_yaml
from smsflow.domain.numbering import Destination, NumberRejection, describe_number
from smsflow.domain.reasons import describe
from smsflow.domain.route_engine import (
    Decision,
    Explanation,
    HealthReport,
    RouteChoice,
    RouteRequest,
    build_catalogue,
    build_snapshot,
    explain,
)
from smsflow.domain.route_state import RouteState
from smsflow.kafka_security import kafka_connection

DEFAULT_CONFIG = Path("config/platform.yaml")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("routes", help="inspect routing decisions")
    sub = parser.add_subparsers(dest="routes_command", required=True)
    p = sub.add_parser(
        "explain", help="print the route a message would take, its fallbacks and why"
    )
    p.add_argument("--to", required=True, dest="destination", help="destination, e.g. +4479...")
    p.add_argument("--tenant", required=True, help="tenant id")
    p.add_argument(
        "--type", dest="message_type", type=str.lower, default="transactional",
        choices=[m.label for m in MessageType], help="message type (default transactional)",
    )
    p.add_argument("--parts", type=int, default=1, help="message parts (default 1)")
    p.add_argument("--tier", choices=[t.value for t in Tier], help="override the tenant's tier")
    source = p.add_mutually_exclusive_group()
    source.add_argument(
        "--config", type=Path, default=None, help=f"YAML configuration (default {DEFAULT_CONFIG})"
    )
    source.add_argument(
        "--from-topic", action="store_true", help="read the live configuration from sms.config"
    )
    p.add_argument(
        "--health", type=Path, help="YAML/JSON: route id → {state, score, latency_ms} (what-if)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_explain)


def _load_config(args: argparse.Namespace) -> PlatformConfig:
    if args.from_topic:
        from smsflow.config.kafka_io import read_config
        from smsflow.settings import load_settings
        from smsflow.topics import CONFIG, topic_name

        settings = load_settings()
        return read_config(kafka_connection(settings), topic_name(settings, CONFIG))
    return load_yaml(args.config or DEFAULT_CONFIG)


def load_health(path: Path) -> dict[str, HealthReport]:
    """``route id → {state, score, latency_ms}``; raises ConfigError naming what is wrong."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of route id → health")
    reports = {}
    for route_id, entry in raw.items():
        entry = entry if isinstance(entry, dict) else {"state": entry}
        try:
            latency = entry.get("latency_ms")
            reports[str(route_id)] = HealthReport(
                state=RouteState(str(entry.get("state", "HEALTHY")).upper()),
                score=float(entry.get("score", 1.0)),
                latency_ms=float(latency) if latency is not None else None,
            )
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{path}: route {route_id}: {exc}") from exc
    return reports


def _cmd_explain(args: argparse.Namespace) -> int:
    try:
        config = _load_config(args)
        health = load_health(args.health) if args.health else {}
    except ConfigError as exc:
        print(exc)
        return 2
    now = time.time()
    snapshot = build_snapshot(build_catalogue(config), health, now)
    request = RouteRequest(
        tenant_id=args.tenant,
        destination=args.destination,
        message_type=MessageType(args.message_type),
        parts=args.parts,
        tier=Tier(args.tier) if args.tier else None,
    )
    explanation = explain(snapshot, request, now)
    if args.json:
        print(json.dumps(to_json(explanation), indent=2))
    else:
        print(render(explanation))
    return 0 if isinstance(explanation.outcome, Decision) else 1


def _choice_json(choice: RouteChoice) -> dict[str, Any]:
    t = choice.terms
    return {
        "route": choice.route_id,
        "smsc": choice.smsc_id,
        "state": choice.state.value,
        "penalty": choice.penalty,
        "cost_per_part": choice.cost_per_part,
        "score": t.score,
        "latency_ms": t.latency_ms,
        "distance_km": t.distance_km,
        "bind_class": t.bind_class.value,
        "health_source": t.health_source.value,
        "terms": {
            "cost": round(t.cost, 4), "quality": round(t.quality, 4),
            "latency": round(t.latency, 4), "geography": round(t.geography, 4),
            "bind": round(t.bind, 4), "incumbency": round(t.incumbency, 4),
        },
    }


def to_json(explanation: Explanation) -> dict[str, Any]:
    outcome = explanation.outcome
    destination = explanation.destination
    result: dict[str, Any] = {
        "tenant": explanation.request.tenant_id,
        "tier": explanation.tier.value if explanation.tier else None,
        "message_type": MessageType(explanation.request.message_type).label,
        "parts": explanation.request.parts,
    }
    if isinstance(destination, Destination):
        result["destination"] = {
            "e164": destination.e164, "country": destination.country,
            "number_type": destination.number_type.value,
            "operator": destination.operator_id,
            "operator_source": destination.operator_source.value,
        }
    if isinstance(outcome, Decision):
        result.update(
            outcome="ROUTED", route=outcome.route_id, smsc=outcome.smsc_id,
            cost=round(outcome.cost, 6),
            choices=[_choice_json(c) for c in outcome.choices],
        )
    else:
        result.update(outcome="REJECTED", reason_code=outcome.reason_code, detail=outcome.detail)
    result["excluded"] = {e.route_id: e.reason for e in explanation.excluded}
    return result


def render(explanation: Explanation) -> str:
    """The explanation as text for people."""
    request, outcome, destination = (
        explanation.request, explanation.outcome, explanation.destination,
    )
    message_type = MessageType(request.message_type).label
    lines = []
    if isinstance(destination, Destination):
        lines.append(
            f"Destination  {destination.e164} → {destination.operator_id or 'unresolved operator'}"
            f" ({destination.country}, {destination.number_type.value.lower()}, operator by "
            f"{destination.operator_source.value})"
        )
    else:
        lines.append(f"Destination  {request.destination}")
    lines.append(f"             phonenumbers: {describe_number(request.destination)}")
    tier = explanation.tier.value if explanation.tier else "?"
    lines.append(
        f"Tenant       {request.tenant_id}, tier {tier}; {message_type}, {request.parts} part(s)"
    )
    profile = explanation.profile
    if profile is not None:
        lines.append(
            f"Weights      cost {profile.cost:g} · quality {profile.quality:g} · latency "
            f"{profile.latency:g} · geography {profile.geography:g}/1000 km · bind "
            f"{profile.bind:g}   (penalty: lower wins; healthy before degraded)"
        )
    lines.append("")
    if isinstance(outcome, Decision):
        lines.append(
            f"ROUTED via {outcome.route_id} ({outcome.smsc_id}): {outcome.route.cost_per_part:g} "
            f"per part, {outcome.cost:g} for {outcome.parts} part(s)"
        )
        lines.append("")
        lines.append(
            f"  #  {'route':<20} {'smsc':<16} {'state':<9} {'penalty':>8} {'Δ':>6} "
            f"{'cost/part':>9} {'score':>5} {'latency':>8} {'distance':>9}  binds"
        )
        base = outcome.route.penalty
        for index, choice in enumerate(outcome.choices, start=1):
            t = choice.terms
            distance = "?" if t.distance_km is None else f"{t.distance_km:.0f} km"
            state = choice.state.value.lower()
            lines.append(
                f"  {index:<2} {choice.route_id:<20} {choice.smsc_id:<16} {state:<9} "
                f"{choice.penalty:>8.2f} {choice.penalty - base:>+6.2f} "
                f"{choice.cost_per_part:>9g} {t.score:>5.2f} {t.latency_ms:>5.0f} ms "
                f"{distance:>9}  {t.bind_class.value}"
                + (f" ({t.health_source.value})" if t.health_source.value != "report" else "")
            )
        t = outcome.route.terms
        lines.append(
            f"  chosen route's terms: cost {t.cost:+.2f}, quality {t.quality:+.2f}, latency "
            f"{t.latency:+.2f}, geography {t.geography:+.2f}, bind {t.bind:+.2f}"
            + (f", incumbency {t.incumbency:+.2f}" if t.incumbency else "")
        )
    else:
        lines.append(f"REJECTED {outcome.reason_code}: {outcome.detail}")
        lines.append(f"  ({describe(outcome.reason_code)})")
        if isinstance(destination, NumberRejection):
            return "\n".join(lines)
    if explanation.excluded:
        lines.append("")
        lines.append("Not candidates")
        lines += [f"  {e.route_id:<20} {e.reason}" for e in explanation.excluded]
    return "\n".join(lines)
