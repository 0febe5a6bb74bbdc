"""The import-linter layers contract (pyproject.toml) names every production module.

import-linter checks only the modules a layer names: a new top-level module or package that no
layer lists could import anything. This test keeps the contract exhaustive, so a new module
has to be given a place in docs/architecture.md#layers first."""

from __future__ import annotations

import tomllib
from typing import Any

from tests.paths import REPO_ROOT


def _importlinter() -> dict[str, Any]:
    config: dict[str, Any] = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    section: dict[str, Any] = config["tool"]["importlinter"]
    return section


def _layered_modules() -> set[str]:
    (layers,) = [c["layers"] for c in _importlinter()["contracts"] if c["type"] == "layers"]
    return {name.strip() for layer in layers for name in layer.replace(":", "|").split("|")}


def _production_modules() -> set[str]:
    """Each root package, except ``smsflow``, which is split into its top-level modules."""
    found = set()
    for root in _importlinter()["root_packages"]:
        if root != "smsflow":
            found.add(root)
            continue
        for path in (REPO_ROOT / "smsflow").iterdir():
            if path.name.startswith("_"):
                continue
            if path.suffix == ".py":
                found.add(f"smsflow.{path.stem}")
            elif (path / "__init__.py").is_file():
                found.add(f"smsflow.{path.name}")
    return found


def test_every_production_module_has_a_layer() -> None:
    layered = _layered_modules()
    missing = sorted(_production_modules() - layered)
    assert not missing, f"give these a layer in pyproject.toml [tool.importlinter]: {missing}"


def test_every_layer_names_a_module_that_exists() -> None:
    stale = sorted(_layered_modules() - _production_modules())
    assert not stale, f"layers name modules that no longer exist: {stale}"
