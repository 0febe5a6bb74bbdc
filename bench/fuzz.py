"""The fuzz suite (tests/fuzz/) with many more examples: ``python bench/fuzz.py --json``.

``make test`` runs the same properties with the bounded, derandomized ``ci`` profile; this runs
the ``fuzz`` profile (random seeds, ``--examples`` per property, default 20,000) and reports per
target the examples asked for, the outcome and the time. Prints one JSON object last on stdout
with ``--json`` and writes ``bench/results/fuzz.json`` with the commit, the machine and the load
average. A failure is a finding: hypothesis prints the shrunk example in the pytest output.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.e2e import git_commit, machine, publish  # noqa: E402


def run(examples: int) -> dict[str, Any]:
    load_at_start = os.getloadavg()[0]
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "junit.xml"
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/fuzz",
             f"--junitxml={report}", "-o", "junit_family=xunit2"],
            cwd=REPO, capture_output=True, text=True, check=False,
            env={**os.environ, "SMSFLOW_FUZZ_PROFILE": "fuzz",
                 "SMSFLOW_FUZZ_EXAMPLES": str(examples)},
        )
        targets: dict[str, Any] = {}
        for case in ElementTree.parse(report).getroot().iter("testcase"):
            failed = case.find("failure") is not None or case.find("error") is not None
            targets[case.attrib["name"]] = {
                "examples": examples, "failed": failed,
                "seconds": round(float(case.attrib.get("time", 0)), 1),
            }
    failures = sum(target["failed"] for target in targets.values())
    if failures:
        print(done.stdout[-6000:], file=sys.stderr)
    return {
        "targets": targets,
        "failures": failures,
        "examples_per_target": examples,
        "duration_s": round(time.monotonic() - started, 1),
        "commit": git_commit(),
        "machine": machine(load_at_start),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=20_000, help="per property")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "fuzz.json")
    args = parser.parse_args(argv)
    result = run(args.examples)
    publish(result, args.out, as_json=args.json, lines=(
        f"{'FAIL' if target['failed'] else 'ok  '} {name} "
        f"({target['examples']} examples, {target['seconds']} s)"
        for name, target in result["targets"].items()))
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
