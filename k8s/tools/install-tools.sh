#!/usr/bin/env bash
# Install the pinned kustomize and kubeconform that tests/k8s use, into ~/.cache/smsflow/bin.
# Idempotent: a tool whose version stamp is present is not rebuilt (a few ms). The first run
# builds both from the Go module proxy with `go install` (a few minutes on 2 cores).
# Versions: keep in step with TOOLS in tests/k8s/tooling.py.
set -euo pipefail
BIN="${SMSFLOW_TOOLS_BIN:-$HOME/.cache/smsflow/bin}"
mkdir -p "$BIN"
install_tool() {  # name module@version
  local name=$1 module=$2 stamp="$BIN/.${1}-${2##*@}"
  if [[ -x "$BIN/$name" && -f "$stamp" ]]; then
    return 0
  fi
  if ! command -v go >/dev/null; then
    echo "go is needed to install $name ($module)" >&2
    exit 1
  fi
  echo "installing $name ($module) into $BIN"
  GOBIN="$BIN" go install "$module"
  rm -f "$BIN/.${name}-"*
  touch "$stamp"
}
install_tool kustomize sigs.k8s.io/kustomize/kustomize/v5@v5.7.1
install_tool kubeconform github.com/yannh/kubeconform/cmd/kubeconform@v0.7.0
