"""``smsflow capacity report|plan``: volume patterns and the sizing for growth over the peak.

``report`` shows the patterns (weekly/daily profile, peak, events, tenants and operators);
``plan`` adds partitions, replicas, SMPP binds and what to pre-provision before known events.
Both print a table, or JSON with ``--json``; ``--png`` also draws the weekly pattern.
The arithmetic lives in :mod:`smsflow.domain.capacity`; this module reads and renders.
Sources: ``sms.dlr`` (default), a CSV, or a Prometheus server (capacity_prometheus).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from smsflow.cli.capacity_plot import PlotUnavailableError, write_png
from smsflow.cli.capacity_prometheus import read_history_from_prometheus
from smsflow.cli.capacity_sources import (
    parse_utc,
    read_events_csv,
    read_history_csv,
    read_history_from_topic,
    smsc_links,
    write_history_csv,
)
from smsflow.config.store import ConfigError, load_yaml
from smsflow.domain.capacity import (
    DEFAULT_PROCESS_CAPACITY,
    CapacityPlan,
    HistoryError,
    PlannedFigure,
    PlanTarget,
    ProcessCapacity,
    VolumePatterns,
    analyse,
    plan_capacity,
)
from smsflow.domain.capacity.patterns import SECONDS_PER_HOUR, WEEKDAYS, Share
from smsflow.kafka_security import kafka_connection
from smsflow.settings import load_settings
from smsflow.topics import DLR, topic_name

DEFAULT_CONFIG = Path("config/platform.yaml")


def _rate(parts_per_hour: float) -> float:
    return round(parts_per_hour / SECONDS_PER_HOUR, 3)


def patterns_json(patterns: VolumePatterns) -> dict[str, Any]:
    peak = patterns.peak
    return {
        "first_hour": patterns.first_hour.isoformat(),
        "last_hour": patterns.last_hour.isoformat(),
        "weeks": round(patterns.weeks, 2),
        "total_messages": patterns.total_messages,
        "total_parts": patterns.total_parts,
        "peak": {
            "hour": peak.hour.isoformat(), "messages": peak.messages, "parts": peak.parts,
            "msgs_per_s": round(peak.msgs_per_s, 3), "parts_per_s": round(peak.parts_per_s, 3),
            "parts_per_message": round(peak.parts_per_message, 3),
        },
        "weekly_parts_per_s": [_rate(parts) for parts in patterns.weekly_parts],
        "daily_parts_per_s": [_rate(parts) for parts in patterns.daily_parts],
        "weekday_parts": dict(zip(WEEKDAYS, (round(p) for p in patterns.weekday_parts),
                                  strict=True)),
        "events": [
            {"name": seen.event.name, "start": seen.event.start.isoformat(),
             "peak_hour": seen.peak.hour.isoformat(),
             "peak_parts_per_s": round(seen.peak.parts_per_s, 3),
             "uplift": round(seen.uplift, 3)}
            for seen in patterns.events
        ],
        "tenants": [_share_json(share) for share in patterns.tenants],
        "operators": [_share_json(share) for share in patterns.operators],
    }


def _share_json(share: Share) -> dict[str, Any]:
    return {"id": share.name, "parts": share.parts, "share": round(share.share, 4),
            "peak_hour": share.peak_hour.isoformat(),
            "peak_parts_per_s": round(share.peak_parts_per_s, 3),
            "weekly_parts_per_s": [_rate(parts) for parts in share.weekly_parts]}


def _figure_json(figure: PlannedFigure) -> dict[str, Any]:
    return {"value": figure.value, "current": figure.current, "arithmetic": figure.arithmetic}


def plan_json(plan: CapacityPlan) -> dict[str, Any]:
    capacity = plan.capacity
    return {
        "target": {"growth": plan.target.growth, "headroom": plan.target.headroom},
        "per_process_capacity": {
            "worker_msgs_per_s": capacity.worker_msgs_per_s,
            "sender_parts_per_s": capacity.sender_parts_per_s,
            "api_requests_per_s": capacity.api_requests_per_s,
            "submit_latency_s": capacity.submit_latency_s,
        },
        "peak_msgs_per_s": round(plan.peak_msgs_per_s, 3),
        "peak_parts_per_s": round(plan.peak_parts_per_s, 3),
        "planned_msgs_per_s": round(plan.planned_msgs_per_s, 3),
        "planned_parts_per_s": round(plan.planned_parts_per_s, 3),
        "planned_arithmetic": (
            f"peak x {plan.target.growth:g} x (1 + {plan.target.headroom:g}): "
            f"{plan.peak_msgs_per_s:.3f} msg/s -> {plan.planned_msgs_per_s:.3f}, "
            f"{plan.peak_parts_per_s:.3f} parts/s -> {plan.planned_parts_per_s:.3f}"
        ),
        **{figure.name: _figure_json(figure) for figure in plan.figures},
        "smscs": {
            smsc.smsc_id: {
                "share": round(smsc.share, 4),
                "planned_parts_per_s": round(smsc.planned_parts_per_s, 3),
                "per_bind_parts_per_s": smsc.per_bind_parts_per_s,
                "binds": _figure_json(smsc.binds),
                "contracted_tps": smsc.contracted_tps,
                "notes": list(smsc.notes),
            }
            for smsc in plan.smscs
        },
        "events": [
            {"name": event.name, "start": event.start.isoformat(),
             "provision_by": event.provision_by.isoformat(),
             "multiplier": event.multiplier, "multiplier_source": event.multiplier_source,
             "expected_parts_per_s": (None if event.expected_parts_per_s is None
                                      else round(event.expected_parts_per_s, 3)),
             "exceeds_plan": event.exceeds_plan,
             **{figure.name: _figure_json(figure) for figure in event.figures}}
            for event in plan.events
        ],
        "notes": list(plan.notes),
    }


def _print_report(patterns: VolumePatterns) -> None:
    peak = patterns.peak
    print(f"history {patterns.first_hour:%Y-%m-%d %H:00} .. {patterns.last_hour:%Y-%m-%d %H:00}"
          f" UTC ({patterns.weeks:.1f} weeks): {patterns.total_messages} messages, "
          f"{patterns.total_parts} parts")
    print(f"current peak (outside known events): {peak.hour:%a %Y-%m-%d %H:00} UTC, "
          f"{peak.msgs_per_s:.2f} msg/s, {peak.parts_per_s:.2f} parts/s "
          f"({peak.parts_per_message:.2f} parts/msg)")
    print("mean parts per day: " + ", ".join(
        f"{day} {parts:.0f}" for day, parts in zip(WEEKDAYS, patterns.weekday_parts, strict=True)))
    busiest = max(range(24), key=lambda hour: patterns.daily_parts[hour])
    print(f"busiest hour of day: {busiest:02d}:00 UTC, mean "
          f"{patterns.daily_parts[busiest] / SECONDS_PER_HOUR:.2f} parts/s")
    for seen in patterns.events:
        print(f"event {seen.event.name} ({seen.event.start:%Y-%m-%d}): peak "
              f"{seen.peak.parts_per_s:.2f} parts/s at {seen.peak.hour:%Y-%m-%d %H:00}, "
              f"{seen.uplift:.2f}x the everyday peak")
    for title, shares in (("tenant", patterns.tenants), ("operator", patterns.operators)):
        print(f"{title:<12} {'parts':>12} {'share':>7} {'peak parts/s':>13}  peak hour (UTC)")
        for share in shares:
            print(f"{share.name:<12} {share.parts:>12} {share.share:>7.1%} "
                  f"{share.peak_parts_per_s:>13.2f}  {share.peak_hour:%a %Y-%m-%d %H:00}")


def _print_figure(prefix: str, figure: PlannedFigure) -> None:
    current = "" if figure.current is None else f" (now {figure.current})"
    print(f"{prefix}{figure.name:<22} {figure.value:>5}{current}  {figure.arithmetic}")


def _print_plan(plan: CapacityPlan) -> None:
    print(f"plan: {plan.target.growth:g}x the peak + {plan.target.headroom:.0%} headroom = "
          f"{plan.planned_msgs_per_s:.1f} msg/s, {plan.planned_parts_per_s:.1f} parts/s "
          f"(peak {plan.peak_msgs_per_s:.2f} msg/s, {plan.peak_parts_per_s:.2f} parts/s)")
    for figure in plan.figures:
        _print_figure("  ", figure)
    for smsc in plan.smscs:
        _print_figure(f"  {smsc.smsc_id}: ", smsc.binds)
        for note in smsc.notes:
            print(f"    ! {note}")
    for event in plan.events:
        if event.multiplier is None:
            print(f"event {event.name} {event.start:%Y-%m-%d}: uplift {event.multiplier_source}")
            continue
        verdict = "pre-provision" if event.exceeds_plan else "covered by the plan"
        print(f"event {event.name} {event.start:%Y-%m-%d}: {event.multiplier:.2f}x peak "
              f"({event.multiplier_source}), {verdict}; by {event.provision_by:%Y-%m-%d}:")
        for figure in event.figures:
            _print_figure("    ", figure)
    for note in plan.notes:
        print(f"! {note}")


def _load_inputs(args: argparse.Namespace) -> tuple[VolumePatterns, list[Any], int]:
    settings = load_settings()
    events = read_events_csv(args.events) if args.events else []
    if args.history:
        if args.save_history:
            raise HistoryError("--save-history saves what was read from topics or Prometheus, "
                               "not --history")
        counts = read_history_csv(args.history)
    elif args.prometheus:
        now = parse_utc(args.now, "--now") if args.now else datetime.now(UTC)
        counts = read_history_from_prometheus(args.prometheus, days=args.days, now=now)
        if args.save_history:
            write_history_csv(args.save_history, counts)
    else:
        topic = args.topic or topic_name(settings, DLR)
        counts = read_history_from_topic(kafka_connection(settings), topic)
        if args.save_history:
            write_history_csv(args.save_history, counts)
    return analyse(counts, events), events, settings.partitions


def _run(args: argparse.Namespace, *, with_plan: bool) -> int:
    try:
        patterns, events, partitions = _load_inputs(args)
        plan: CapacityPlan | None = None
        if with_plan or args.png:
            smscs = []
            if args.config.exists():
                smscs = smsc_links(load_yaml(args.config))
            elif with_plan:
                print(f"capacity: {args.config} not found: no SMPP bind plan", file=sys.stderr)
            now = parse_utc(args.now, "--now") if args.now else datetime.now(UTC)
            plan = plan_capacity(
                patterns, now=now, target=PlanTarget(args.growth, args.headroom),
                capacity=ProcessCapacity(
                    args.worker_msgs_per_s, args.sender_parts_per_s, args.api_requests_per_s,
                    args.submit_latency_s,
                ),
                partitions_now=args.partitions or partitions, smscs=smscs, upcoming=events,
            )
        if args.png and plan is not None:
            write_png(args.png, patterns, plan)
    except (HistoryError, ConfigError, PlotUnavailableError, OSError) as exc:
        print(f"capacity: {exc}", file=sys.stderr)
        return 2
    if args.json:
        document: dict[str, Any] = {"report": patterns_json(patterns)}
        if with_plan and plan is not None:
            document["plan"] = plan_json(plan)
        print(json.dumps(document, indent=2))
    else:
        _print_report(patterns)
        if with_plan and plan is not None:
            _print_plan(plan)
    return 0


def _add_common(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--from-topics", action="store_true",
                        help="count delivery reports on sms.dlr (the default source)")
    source.add_argument("--history", type=Path, metavar="FILE.csv",
                        help="hour,tenant_id,operator_id,messages,parts (hour ISO 8601 UTC)")
    source.add_argument("--prometheus", metavar="URL",
                        help="hourly smsflow_routed_*_total increases from this Prometheus "
                             "server (e.g. http://prometheus:9090)")
    parser.add_argument("--days", type=float, default=56,
                        help="with --prometheus: how far back to read (default: %(default)s)")
    parser.add_argument("--topic", help="read this topic instead of <prefix>sms.dlr")
    parser.add_argument("--save-history", type=Path, metavar="FILE.csv",
                        help="with --from-topics or --prometheus: also write the hourly "
                             "counts read, for --history")
    parser.add_argument("--events", type=Path, metavar="FILE.csv",
                        help="known events: name,start,end[,expected_multiplier]")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                        help="platform YAML with the SMSCs and routes (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--png", type=Path, metavar="FILE",
                        help="also draw the weekly pattern, peak and planned capacity")
    parser.add_argument("--now", help="ISO 8601 time the plan is made at (default: now)")
    parser.add_argument("--growth", type=float, default=PlanTarget.growth,
                        help="multiple of the current peak to plan for (default: %(default)s)")
    parser.add_argument("--headroom", type=float, default=PlanTarget.headroom,
                        help="headroom on top, as a fraction (default: %(default)s)")
    parser.add_argument("--partitions", type=int, default=None,
                        help="flow-topic partitions today (default: the settings' partitions)")
    defaults = DEFAULT_PROCESS_CAPACITY
    parser.add_argument("--worker-msgs-per-s", type=float, default=defaults.worker_msgs_per_s,
                        help="one worker's capacity, per replica of each role (default: "
                             "%(default)s, bench/results/e2e.json)")
    parser.add_argument("--sender-parts-per-s", type=float,
                        default=defaults.sender_parts_per_s,
                        help="one sender's capacity (default: %(default)s, "
                             "bench/results/sender.json)")
    parser.add_argument("--api-requests-per-s", type=float,
                        default=defaults.api_requests_per_s,
                        help="one API process's capacity (default: %(default)s, "
                             "docs/performance.md)")
    parser.add_argument("--submit-latency-s", type=float, default=defaults.submit_latency_s,
                        help="submit_sm_resp wait per PDU for bind sizing (default: %(default)s)")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("capacity", help="volume patterns and capacity planning")
    sub = parser.add_subparsers(dest="capacity_command", required=True)
    report = sub.add_parser("report", help="daily/weekly patterns, peak, events, shares")
    _add_common(report)
    report.set_defaults(func=lambda args: _run(args, with_plan=False))
    plan = sub.add_parser("plan", help="partitions, replicas and binds for growth x peak")
    _add_common(plan)
    plan.set_defaults(func=lambda args: _run(args, with_plan=True))


__all__ = ["patterns_json", "plan_json", "register"]
