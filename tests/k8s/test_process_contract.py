"""The manifests call the processes the way the code accepts: every container's `smsflow`
arguments parse with the CLI's own parser, and every SMSFLOW_* setting is a Settings field.

Commands and settings that other work in progress adds are listed as PENDING: until they exist
they are only required to be used; once they exist they are checked like the rest, and the
entries can go.
"""

from __future__ import annotations

import argparse
import contextlib
import io
from typing import Any

import pytest

from smsflow.cli import build_parser
from smsflow.settings import Settings
from tests.k8s.tooling import OVERLAYS, objects, of_kind

#: Sub-commands of other work: the operations work's Kafka exporter.
PENDING_COMMANDS = {"kafka-exporter"}
#: Settings of the operations work (metrics pages of the sender, webhooks and exporter).
PENDING_SETTINGS = {"sender_metrics_port", "webhooks_metrics_port", "kafka_exporter_port",
                    "metrics_host"}


def _commands() -> set[str]:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return set(subparsers.choices)


def _containers(overlay: str) -> list[dict[str, Any]]:
    docs = objects(overlay)
    return [container
            for workload in of_kind(docs, "Deployment") + of_kind(docs, "Job")
            for container in workload["spec"]["template"]["spec"]["containers"]]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_command_parses(overlay: str) -> None:
    known = _commands()
    for container in _containers(overlay):
        assert container["command"] == ["smsflow"], container["name"]
        args = container["args"]
        if args[0] not in known:
            assert args[0] in PENDING_COMMANDS, f"{container['name']}: no command {args[0]!r}"
            continue
        errors = io.StringIO()
        try:
            with contextlib.redirect_stderr(errors):
                build_parser().parse_args(args)
        except SystemExit:
            pytest.fail(f"{container['name']}: `smsflow {' '.join(args)}` does not parse:\n"
                        f"{errors.getvalue()}")


def test_every_pending_entry_is_used() -> None:
    """No dead entries: each pending command runs in some container, each pending setting is
    set, so the lists shrink when the work lands instead of hiding typos."""
    used_commands = {c["args"][0] for c in _containers("overlays/dev")}
    assert used_commands >= PENDING_COMMANDS
    settings_map = next(c for c in of_kind(objects("overlays/dev"), "ConfigMap")
                        if c["metadata"]["name"].startswith("smsflow-settings"))
    used_settings = {key.removeprefix("SMSFLOW_").lower() for key in settings_map["data"]}
    assert used_settings >= PENDING_SETTINGS


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_setting_is_a_settings_field(overlay: str) -> None:
    fields = set(Settings.model_fields)
    settings_map = next(c for c in of_kind(objects(overlay), "ConfigMap")
                        if c["metadata"]["name"].startswith("smsflow-settings"))
    for key in settings_map["data"]:
        assert key.startswith("SMSFLOW_"), key
        field = key.removeprefix("SMSFLOW_").lower()
        if field not in fields:
            assert field in PENDING_SETTINGS, f"{key} is not a setting (smsflow/settings.py)"
