#!/usr/bin/env bash
# Build the official Kubernetes control plane for the test suite, from the Go
# module proxy, at the versions pinned in scripts/control-plane/*/go.mod:
# kube-apiserver, kube-controller-manager, kube-scheduler (k8s.io/kubernetes)
# and etcd (go.etcd.io/etcd/server/v3). Binaries land in
# .tools/control-plane/<pin>/ and .tools/control-plane/current points at them;
# a build is skipped when that folder already holds every binary, so only a
# changed pin rebuilds. Why these versions: docs/decisions/0008-real-control-plane.md.
#
# Usage: scripts/control-plane.sh            build if needed, print the folder
#        scripts/control-plane.sh --print    print the folder the pin maps to
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SRC=$ROOT/scripts/control-plane
export GOTOOLCHAIN=local GOFLAGS=-mod=readonly CGO_ENABLED=0

# The version a go.mod requires of a module (a `require` line or block entry).
pin() { awk -v m="$1" '$1 == m && $2 ~ /^v/ { print $2 } $1 == "require" && $2 == m { print $3 }' "$SRC/$2/go.mod" | head -1; }
K8S=$(pin k8s.io/kubernetes kubernetes)
ETCD=$(pin go.etcd.io/etcd/server/v3 etcd)
[ -n "$K8S" ] && [ -n "$ETCD" ] || { echo "control-plane: cannot read the pins" >&2; exit 1; }
# The key also covers go.sum, so a re-pinned dependency rebuilds too.
KEY="k8s-$K8S-etcd-$ETCD-$(cat "$SRC"/*/go.mod "$SRC"/*/go.sum "$SRC"/etcd/main.go | sha256sum | cut -c1-12)"
OUT=$ROOT/.tools/control-plane/$KEY
if [ "${1:-}" = "--print" ]; then echo "$OUT"; exit 0; fi

BINS=(etcd kube-apiserver kube-controller-manager kube-scheduler)
have_all() { for b in "${BINS[@]}"; do [ -x "$OUT/$b" ] || return 1; done; }
if ! have_all; then
  command -v go >/dev/null || { echo "control-plane: Go is needed (see ../shared/ENVIRONMENT.md)" >&2; exit 1; }
  mkdir -p "$OUT.partial"
  start=$(date +%s)
  # -trimpath and no debug info: smaller, reproducible binaries; one package at
  # a time so the peak memory stays that of one link on a 2-core machine.
  (cd "$SRC/etcd" && go build -trimpath -ldflags "-s -w" -o "$OUT.partial/etcd" .)
  # The version a release build stamps in (kubectl version, /version).
  minor=${K8S#v1.}; minor=${minor%%.*}
  v=k8s.io/component-base/version
  kflags="-s -w -X $v.gitVersion=$K8S -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean"
  for cmd in kube-apiserver kube-controller-manager kube-scheduler; do
    (cd "$SRC/kubernetes" && go build -trimpath -ldflags "$kflags" -o "$OUT.partial/$cmd" "k8s.io/kubernetes/cmd/$cmd")
  done
  rm -rf "$OUT" && mv "$OUT.partial" "$OUT"
  echo "control-plane: built Kubernetes $K8S and etcd $ETCD in $(( $(date +%s) - start )) s" >&2
fi
ln -sfn "$KEY" "$ROOT/.tools/control-plane/current"
echo "$OUT"
