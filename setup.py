"""Build hook: compile the hot pure modules with mypyc (smsflow/native.py lists them and says
why). Everything else about the package is in pyproject.toml.

``SMSFLOW_PURE_PYTHON=1`` at install time skips the compilation; without a working C compiler
the extensions are skipped too (``optional``) and the modules run as plain Python.
"""

from __future__ import annotations

import os
import runpy

from setuptools import setup


def _native_extensions() -> list[object]:
    if os.environ.get("SMSFLOW_PURE_PYTHON", "") not in ("", "0"):
        return []
    from mypyc.build import mypycify

    modules = runpy.run_path(os.path.join("smsflow", "native.py"))["NATIVE_MODULES"]
    extensions = mypycify(list(modules), opt_level="3")
    for extension in extensions:
        extension.optional = True  # no compiler: install the pure modules instead of failing
    return list(extensions)


setup(ext_modules=_native_extensions())
