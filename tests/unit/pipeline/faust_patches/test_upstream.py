"""Every faust patch against the upstream code it was written for: one test per patch.

A failure here means an upgrade changed code a patch copies, overrides or reads: re-read the
patch module's docstring against the new upstream code before changing the pinned hashes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.faust_patches import PATCHES, PINNED, check_pins, installed_versions
from pipeline.faust_patches.upstream import Upstream, drifted, fingerprint


@pytest.mark.parametrize("patch", sorted(PATCHES))
def test_the_patched_upstream_code_is_unchanged(patch: str) -> None:
    changed = drifted(PATCHES[patch])
    assert not changed, f"pipeline/faust_patches/{patch}.py: " + "; ".join(changed)


def test_the_installed_versions_are_the_pinned_ones() -> None:
    assert installed_versions() == PINNED
    check_pins()


def test_pins_match_pyproject() -> None:
    pyproject = (Path(__file__).parents[4] / "pyproject.toml").read_text(encoding="utf-8")
    for name, version in PINNED.items():
        assert f'"{name}=={version}"' in pyproject, name


def test_a_changed_or_missing_upstream_is_reported() -> None:
    path = "pipeline.faust_patches.upstream:fingerprint"
    assert drifted((Upstream(path, fingerprint(path), "itself"),)) == []
    assert "source hash" in drifted((Upstream(path, "0" * 16, "itself"),))[0]
    assert "gone" in drifted((Upstream(path + "_missing", "0" * 16, "nothing"),))[0]
