"""docs/metrics.md and the code agree both ways: every family a process builds is documented
in that process's tables, and every family documented as exported is built by some process."""

from __future__ import annotations

from tests.ops.metric_names import all_code_families, doc_families


def test_every_family_the_code_builds_is_documented() -> None:
    missing = all_code_families() - doc_families()["exported"]
    assert not missing, f"families exported but not in docs/metrics.md: {sorted(missing)}"


def test_every_documented_family_is_built_by_the_code() -> None:
    stale = doc_families()["exported"] - all_code_families()
    assert not stale, f"docs/metrics.md lists families no process exports: {sorted(stale)}"


def test_planned_and_external_families_are_not_claimed_as_exported() -> None:
    docs = doc_families()
    assert docs["external"]  # a "## Planned" section is optional; External is not
    assert not (docs["planned"] | docs["external"]) & all_code_families()
