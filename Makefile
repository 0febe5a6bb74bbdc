# The two commands of the README, plus their parts.
PY ?= python3
MESSAGES ?= 2000
DEMO_ARGS ?=

.PHONY: install demo test lint unit integration bench k8s-tools

# mypyc type-checks the compiled modules against faust, aiokafka and the rest while it builds, so
# on a machine without them (a fresh one) the dependencies go in first, with a pure-Python
# install; the second install compiles.
install:
	@$(PY) -c "import faust, aiokafka, confluent_kafka" 2>/dev/null \
	  || SMSFLOW_PURE_PYTHON=1 $(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'

# Broker (downloaded by Maven on first use), topics, config, SMSC simulator, pipeline, API
# (prints a demo key), traffic. DEMO_ARGS=--keep-running keeps the stack up afterwards.
demo: install
	$(PY) -m smsflow.cli demo --messages $(MESSAGES) $(DEMO_ARGS)

# Lint, type-check, check the layers, then every test; integration tests start the local
# broker themselves. tests/k8s validate the Kubernetes manifests with the pinned kustomize and
# kubeconform.
test: install lint k8s-tools
	$(PY) -m pytest --durations=25

# kustomize and kubeconform for tests/k8s, built once with `go install` into ~/.cache/smsflow/bin.
k8s-tools:
	bash k8s/tools/install-tools.sh

# lint-imports: the import-linter contracts in pyproject.toml (docs/architecture.md#layers).
# pylint only looks for copied code (6+ similar lines) in the production packages; not in
# schemas/generated/, whose codecs are written by one generator (schemas/codegen.py).
lint:
	$(PY) -m ruff check .
	$(PY) -m mypy
	lint-imports
	$(PY) -m pylint --disable=all --enable=duplicate-code --min-similarity-lines=6 \
		--persistent=n --score=n --ignore=generated smsflow pipeline connectors schemas api

unit: install
	$(PY) -m pytest tests/unit

bench: install
	$(PY) bench/e2e.py --messages 30000 --json
