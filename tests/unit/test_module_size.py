"""No production module over 800 lines (issue 15): a module that long has more than one job.
Split it along its seams rather than raising the limit."""

from __future__ import annotations

from tests.paths import REPO_ROOT

PACKAGES = ("smsflow", "pipeline", "connectors", "schemas", "api")
LIMIT = 800


def test_no_production_module_is_over_800_lines() -> None:
    sizes = {
        str(path.relative_to(REPO_ROOT)): len(path.read_text(encoding="utf-8").splitlines())
        for package in PACKAGES
        for path in (REPO_ROOT / package).rglob("*.py")
    }
    assert len(sizes) > 100  # the scan found the packages
    too_long = {name: lines for name, lines in sizes.items() if lines > LIMIT}
    assert not too_long, f"split these modules along their seams: {too_long}"
