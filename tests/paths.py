"""Files of this repository that tests read, located from this file.

The tests live in the checkout, so they may find it from here; the package may not (installed, it
has no checkout around it), which is why :func:`smsflow.devstack.harness.prepared_stack` takes
its configuration files as arguments.
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PLATFORM_CONFIG = REPO_ROOT / "config" / "platform.yaml"
SIM_CONFIG = REPO_ROOT / "config" / "demo-smsc-sim.yaml"
