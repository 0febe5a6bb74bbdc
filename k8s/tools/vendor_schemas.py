"""Copy the JSON schemas kubeconform validates our manifests against into ``k8s/schemas/``.

Run by hand when a kind is added or an upstream version changes; CI only reads the result, so
validation needs no network. Two sources, both named with their version in
``k8s/schemas/README.md``:

* Kubernetes kinds: the ``vX.Y.Z-local-strict`` schemas shipped inside the ``kubernetes-validate``
  wheel (``pip download --no-deps kubernetes-validate==<version>``, unzip). Those files point into
  one shared ``_definitions.json`` (1.8 MB); each vendored file gets only the definitions it
  reaches, inlined under ``$defs``, so it stands alone.
* Custom resources (Strimzi, KEDA, Prometheus operator): the ready JSON schemas of a
  ``datreeio/CRDs-catalog`` checkout, copied unchanged.

    python k8s/tools/vendor_schemas.py --kubernetes DIR/v1.37.0-local-strict --crds CATALOG_DIR
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

#: Kubernetes kinds the manifests use, as kubeconform names their schema files.
KUBERNETES_KINDS = (
    "configmap-v1",
    "deployment-apps-v1",
    "job-batch-v1",
    "namespace-v1",
    "networkpolicy-networking-v1",
    "poddisruptionbudget-policy-v1",
    "secret-v1",
    "service-v1",
    "serviceaccount-v1",
)

#: Custom resources the manifests use: ``<group>/<kind>_<version>.json`` in the catalog.
CRD_SCHEMAS = (
    "kafka.strimzi.io/kafka_v1.json",
    "kafka.strimzi.io/kafkanodepool_v1.json",
    "kafka.strimzi.io/kafkatopic_v1.json",
    "kafka.strimzi.io/kafkauser_v1.json",
    "keda.sh/scaledobject_v1alpha1.json",
    "keda.sh/triggerauthentication_v1alpha1.json",
    "monitoring.coreos.com/prometheusrule_v1.json",
    "monitoring.coreos.com/servicemonitor_v1.json",
)

_SHARED_PREFIX = "/api/_definitions.json#/$defs/"
_LOCAL_PREFIX = "#/$defs/"

OUT = Path(__file__).resolve().parents[1] / "schemas"


def standalone(kind_schema: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    """``kind_schema`` with every definition it reaches inlined under ``$defs``."""
    needed: dict[str, Any] = {}

    def visit(node: Any) -> Any:
        if isinstance(node, dict):
            out = {}
            for key, value in node.items():
                if key == "$ref" and isinstance(value, str):
                    name = value.removeprefix(_SHARED_PREFIX).removeprefix(_LOCAL_PREFIX)
                    if name not in needed:
                        needed[name] = None  # placeholder first: definitions can be recursive
                        needed[name] = visit(definitions[name])
                    out[key] = _LOCAL_PREFIX + name
                else:
                    out[key] = visit(value)
            return out
        if isinstance(node, list):
            return [visit(item) for item in node]
        return node

    result = visit(kind_schema)
    result["$defs"] = dict(sorted(needed.items()))
    return dict(result)


def vendor(kubernetes_dir: Path, crds_dir: Path) -> list[Path]:
    written: list[Path] = []
    definitions = json.loads((kubernetes_dir / "_definitions.json").read_text())["$defs"]
    for kind in KUBERNETES_KINDS:
        schema = json.loads((kubernetes_dir / f"{kind}.json").read_text())
        target = OUT / "kubernetes" / f"{kind}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(standalone(schema, definitions), indent=1) + "\n")
        written.append(target)
    for relative in CRD_SCHEMAS:
        target = OUT / "crds" / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(crds_dir / relative, target)
        written.append(target)
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kubernetes", type=Path, required=True,
                        help="a vX.Y.Z-local-strict directory of kubernetes-validate")
    parser.add_argument("--crds", type=Path, required=True,
                        help="a datreeio/CRDs-catalog checkout")
    args = parser.parse_args()
    for path in vendor(args.kubernetes, args.crds):
        print(path.relative_to(OUT.parent))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
