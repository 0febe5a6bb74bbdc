"""The Dockerfile, checked without a container runtime (there is none on this machine): what it
copies exists, the user is the one the manifests run as, and the entrypoint and every command
the manifests give it are real ``smsflow`` commands."""

from __future__ import annotations

import re

from smsflow.cli import build_parser
from tests.k8s.tooling import ROOT, objects, of_kind

DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")


def test_every_copied_path_exists() -> None:
    sources = [line.split()[1:-1] for line in DOCKERFILE.splitlines()
               if line.startswith("COPY ") and "--from=" not in line]
    assert sources, "the Dockerfile copies the project"
    for paths in sources:
        for path in paths:
            assert (ROOT / path).exists(), f"COPY {path}: no such path"


def test_the_image_runs_as_the_manifests_user() -> None:
    assert re.search(r"^USER 10001:10001$", DOCKERFILE, re.MULTILINE)
    for deployment in of_kind(objects("overlays/dev"), "Deployment"):
        context = deployment["spec"]["template"]["spec"].get("securityContext", {})
        if "runAsUser" in context:
            assert context["runAsUser"] == 10001, deployment["metadata"]["name"]


def test_every_manifest_command_is_a_real_cli_command() -> None:
    assert 'ENTRYPOINT ["smsflow"]' in DOCKERFILE
    parser = build_parser()
    commands = 0
    for deployment in of_kind(objects("overlays/dev"), "Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            if container.get("image", "").split(":")[0].rsplit("/", 1)[-1] != "smsflow":
                continue
            assert container.get("command", ["smsflow"]) == ["smsflow"]
            args = container.get("args", [])
            parser.parse_args(args)  # exits (SystemExit) on an unknown command or option
            commands += 1
    assert commands >= 4  # worker, sender, webhooks, api at least
