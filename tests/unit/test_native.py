"""The mypyc-compiled hot modules (smsflow/native.py): built, current, and the same as their
source.

``make install`` compiles them; a test run on an install that skipped the compiler would test
only the pure path and measure nothing of what production runs, so the suite insists on the
compiled modules unless ``SMSFLOW_PURE_PYTHON`` says the install was pure on purpose.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from smsflow import native
from tests.paths import REPO_ROOT as REPO

PURE_ON_PURPOSE = os.environ.get("SMSFLOW_PURE_PYTHON", "") not in ("", "0")


def test_every_listed_source_exists_once() -> None:
    assert len(set(native.NATIVE_MODULES)) == len(native.NATIVE_MODULES)
    for source in native.NATIVE_MODULES:
        assert (REPO / source).is_file(), source


@pytest.mark.skipif(PURE_ON_PURPOSE, reason="installed with SMSFLOW_PURE_PYTHON=1")
def test_every_hot_module_runs_compiled() -> None:
    found = native.status()
    assert found.pure == (), f"not compiled: {found.pure}; run `make install` (needs gcc)"
    assert len(found.compiled) == len(native.NATIVE_MODULES)


def test_no_compiled_module_is_older_than_its_source() -> None:
    assert native.status().stale == (), "edited after the last build: run `make install`"


def test_a_source_edited_after_the_build_is_stale(tmp_path: Path) -> None:
    built = tmp_path / "receipts.cpython-311-x86_64-linux-gnu.so"
    source = tmp_path / "receipts.py"
    source.write_text("x = 1\n")
    built.write_bytes(b"\0")
    os.utime(source, (1_000, 1_000))
    os.utime(built, (2_000, 2_000))
    assert native.is_compiled(str(built)) and not native.stale(str(built))
    os.utime(source, (3_000, 3_000))
    assert native.stale(str(built))
    assert not native.stale(str(source))  # a module run from its source is never stale
    assert not native.stale(None)


def test_the_summary_names_what_runs_as_plain_python() -> None:
    status = native.NativeStatus(compiled=("a",), pure=("b", "c"), stale=())
    assert status.summary() == (
        f"1 of {len(native.NATIVE_MODULES)} hot modules compiled (mypyc); pure Python: b, c"
    )
