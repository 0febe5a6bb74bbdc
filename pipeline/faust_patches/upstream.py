"""Fingerprints of the faust/aiokafka/mode code our patches copy, override or reach into.

Each patch module lists what it depends on as :class:`Upstream` entries: the dotted path of a
function or class in the pinned release and a short hash of its source. A unit test per patch
(tests/unit/pipeline/faust_patches/) recomputes the hashes: an upgrade that changes any of
them fails there, naming the patch to re-read, before a drill (or production) finds out.

To accept an upgrade: read the new upstream code against the patch's docstring, adapt the patch,
then update the pins (pyproject.toml, :data:`~pipeline.faust_patches.PINNED`) and the hashes
(``python -m pipeline.faust_patches.upstream`` prints the current ones).
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
from dataclasses import dataclass

__all__ = ["Upstream", "drifted", "fingerprint", "resolve"]


@dataclass(frozen=True, slots=True)
class Upstream:
    """``path`` (``module:Qualified.name``) had source hash ``sha`` in the pinned release."""

    path: str
    sha: str
    why: str  # what the patch relies on there


def resolve(path: str) -> object:
    """The object named by ``module:Qualified.name`` (attributes looked up through the MRO)."""
    module_name, _, qualified = path.partition(":")
    target: object = importlib.import_module(module_name)
    for part in qualified.split("."):
        target = getattr(target, part)
    return target


def fingerprint(path: str) -> str:
    """The first 16 hex digits of the SHA-256 of the object's source code."""
    source = inspect.getsource(resolve(path))  # type: ignore[arg-type]
    return hashlib.sha256(source.encode()).hexdigest()[:16]


def drifted(upstreams: tuple[Upstream, ...]) -> list[str]:
    """The entries whose upstream source changed (or vanished), with what the patch needs."""
    changed = []
    for entry in upstreams:
        try:
            now = fingerprint(entry.path)
        except (AttributeError, ImportError, OSError, TypeError) as exc:
            changed.append(f"{entry.path}: gone ({exc}); the patch needs {entry.why}")
            continue
        if now != entry.sha:
            changed.append(f"{entry.path}: source hash {now}, pinned {entry.sha}; "
                           f"the patch needs {entry.why}")
    return changed


if __name__ == "__main__":  # pragma: no cover (a maintenance tool)
    from pipeline.faust_patches import ALL_UPSTREAM

    for entry in ALL_UPSTREAM:
        print(f'Upstream("{entry.path}", "{fingerprint(entry.path)}", ...)')
