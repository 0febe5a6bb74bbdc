# The smsflow image: one image, every process (`smsflow worker|sender|webhooks|api|...`); the
# Kubernetes manifests (k8s/) choose the command. Built in CI-less environments with
#   docker build -t smsflow:dev .        (or: podman build -t smsflow:dev .)
# This repository's CI has no container runtime: tests/k8s/test_dockerfile.py checks that the
# paths copied here exist and that the entrypoint is the real CLI; the build itself is not run.

# ---- build: a wheel of the project (its hot modules compiled by mypyc: setup.py) and of every
# dependency; compilers stay in this stage
FROM python:3.11-slim AS build
WORKDIR /src
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml setup.py README.md ./
COPY smsflow ./smsflow
COPY pipeline ./pipeline
COPY connectors ./connectors
COPY schemas ./schemas
COPY api ./api
# mypyc type-checks the compiled modules against faust, aiokafka and the rest while it builds:
# they must be installed here first (a pure-Python install brings them), or the build fails.
RUN SMSFLOW_PURE_PYTHON=1 pip install --no-cache-dir . \
    && pip wheel --no-cache-dir --wheel-dir /wheels .

# ---- run: the wheels only, as an unprivileged user (uid 10001, as the manifests expect)
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SMSFLOW_HOME=/var/lib/smsflow
RUN groupadd --gid 10001 smsflow \
    && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin smsflow \
    && mkdir -p /var/lib/smsflow && chown 10001:10001 /var/lib/smsflow
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels smsflow && rm -rf /wheels
COPY config /etc/smsflow/config
USER 10001:10001
WORKDIR /var/lib/smsflow
ENTRYPOINT ["smsflow"]
CMD ["--help"]
