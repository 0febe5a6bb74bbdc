"""Benchmarks, run as scripts (`python bench/NAME.py`); a package so mypy names them
``bench.NAME`` (``bench/api.py`` would otherwise clash with the ``api`` package)."""
