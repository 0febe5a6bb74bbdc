"""``smsflow config apply|show|check``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from smsflow.config.kafka_io import apply_config, read_config
from smsflow.config.models import PlatformConfig
from smsflow.config.store import ConfigError, load_yaml
from smsflow.kafka_security import kafka_connection
from smsflow.settings import load_settings
from smsflow.topics import CONFIG, topic_name

DEFAULT_CONFIG = Path("config/platform.yaml")


def _warn_literal_secrets(config: PlatformConfig) -> None:
    """Loud, on stderr: a literal secret is accepted for old files, but it travels in sms.config
    in plain text (docs/configuration.md#secrets)."""
    for where in config.literal_secrets():
        print(f"WARNING: {where} is a literal secret; it is stored in sms.config in plain text. "
              f"Use a reference: env:NAME or file:/path", file=sys.stderr)


def _cmd_check(args: argparse.Namespace) -> int:
    try:
        config = load_yaml(args.file)
    except ConfigError as exc:
        print(exc)
        return 2
    _warn_literal_secrets(config)
    print(
        f"{args.file}: ok — {len(config.tenants)} tenants, {len(config.operators)} operators, "
        f"{len(config.smscs)} SMSCs, {len(config.routes)} routes"
    )
    return 0


def _cmd_apply(args: argparse.Namespace) -> int:
    settings = load_settings()
    try:
        config = load_yaml(args.file)
    except ConfigError as exc:
        print(exc)
        return 2
    _warn_literal_secrets(config)
    for line in apply_config(kafka_connection(settings), topic_name(settings, CONFIG), config):
        print(line)
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    settings = load_settings()
    config = read_config(kafka_connection(settings), topic_name(settings, CONFIG))
    # Secrets print as their references; a literal one is masked.
    print(config.model_dump_json(indent=2))
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("config", help="load and inspect the platform configuration")
    sub = parser.add_subparsers(dest="config_command", required=True)
    for name, func, text in (
        ("check", _cmd_check, "validate a YAML file without touching Kafka"),
        ("apply", _cmd_apply, "load a YAML file into the sms.config topic (idempotent)"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("file", type=Path, nargs="?", default=DEFAULT_CONFIG)
        p.set_defaults(func=func)
    sub.add_parser("show", help="print the configuration the workers see").set_defaults(
        func=_cmd_show
    )
