#!/usr/bin/env bash
# End to end on a real cluster, following the README's "Install on a cluster"
# exactly: the commands between the README's `kind-e2e:build` and
# `kind-e2e:install` markers are read from README.md and run as written, with
# two substitutions a kind cluster needs instead of a registry:
#   - REGISTRY=kind.local/channelmodel (the images are never pulled: tags are
#     not `latest`, so IfNotPresent finds them on the node);
#   - `docker push IMAGE` becomes `kind load docker-image IMAGE`.
# Around them: a kind cluster, and the backend the example's manifest.url names
# (http://backend.shop.svc.cluster.local/...), serving three products x six
# photos from ../shared. Afterwards the model.json is fetched through the model
# server. Each step is timed; the summary lists the durations.
# tests/deploy/test_kind_e2e.py runs this script (and its dry run).
#
# Needs: docker (engine running), kind, kubectl, helm (.tools/bin/helm from
# scripts/setup.sh or on PATH), network access for the image builds (PyPI and
# the Keras ImageNet weights) and the grocery-store dataset in ../shared.
#
# Environment:
#   KIND_E2E_DRY_RUN=1  print the steps (README commands after substitution), run nothing
#   KIND_CLUSTER    cluster name [channelmodel-e2e]; reused if it exists
#   KEEP_CLUSTER=1  leave the cluster running afterwards
#   SKIP_BUILD=1    reuse the images built before (skips the docker build lines)
#   CHANNELMODEL_SHARED  the shared folder [<repo>/../shared]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CLUSTER=${KIND_CLUSTER:-channelmodel-e2e}
NS=channelmodel              # the README's namespace
CHANNEL=shop-1               # examples/channelmodel-cpu.yaml
SHARED=${CHANNELMODEL_SHARED:-$ROOT/../shared}
DATASET=$SHARED/datasets/grocery-store/dataset/train
DRY_RUN=${KIND_E2E_DRY_RUN:-0}
WORK=$(mktemp -d)
PORT_FORWARD_PID=""
TIMINGS=()

log() { printf '\n== kind-e2e: %s\n' "$*"; }
die() { printf 'kind-e2e: FAILED: %s\n' "$*" >&2; exit 1; }

# The README's commands of one marked block, one per line (continuations joined).
readme_steps() {
  python3 - "$ROOT/README.md" "$1" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
marker = f"<!-- kind-e2e:{sys.argv[2]}"
block = text[text.index(marker):]
block = block[block.index("-->") + 3:]
lines, started = [], False
for line in block.splitlines():
    if line.startswith("    "):
        started = True
        lines.append(line[4:])
    elif started and line.strip():
        break
command = ""
for line in lines:
    command += line.rstrip("\\").rstrip() + " " if line.endswith("\\") else line
    if not line.endswith("\\"):
        print(re.sub(r"\s+", " ", command).strip())
        command = ""
PY
}

substitute() {
  sed -e 's#^REGISTRY=[^ ]*#REGISTRY=kind.local/channelmodel#' \
      -e "s#docker push \\([^ ]*\\)#kind load docker-image --name $CLUSTER \\1#g"
}

step() {  # run one command, timed; in a dry run, print it
  if [ "$DRY_RUN" = 1 ]; then printf 'step: %s\n' "$1"; return; fi
  if [ "${SKIP_BUILD:-0}" = 1 ] && [[ $1 == *"docker build"* ]]; then
    set -- "${1//docker build*&& kind load/kind load}"
  fi
  log "$1"
  local started=$SECONDS
  eval "$1"
  TIMINGS+=("$((SECONDS - started)) s  $1")
}

mapfile -t BUILD < <(readme_steps build | substitute)
mapfile -t INSTALL < <(readme_steps install | substitute)
[ ${#BUILD[@]} -ge 2 ] && [ ${#INSTALL[@]} -ge 3 ] || die "README.md install steps not found"

if [ "$DRY_RUN" = 1 ]; then
  for cmd in "${BUILD[@]}" "${INSTALL[@]}"; do step "$cmd"; done
  exit 0
fi

HELM=$ROOT/.tools/bin/helm
[ -x "$HELM" ] || HELM=$(command -v helm || true)
for tool in docker kind kubectl python3 curl; do
  command -v "$tool" >/dev/null || die "$tool not installed"
done
[ -n "$HELM" ] || die "helm not installed: run scripts/setup.sh"
helm() { "$HELM" "$@"; }
docker info >/dev/null 2>&1 || die "no docker engine (docker info failed)"
[ -d "$DATASET" ] || die "dataset not found at $DATASET (set CHANNELMODEL_SHARED)"

diagnose() {
  log "diagnostics"
  kubectl -n "$NS" get all,channelmodels,jobs,pvc -o wide || true
  kubectl -n "$NS" get channelmodel "$CHANNEL" -o yaml || true
  kubectl -n "$NS" get events --sort-by=.lastTimestamp | tail -40 || true
  kubectl -n "$NS" logs deployment/channelmodel-operator --tail=200 || true
  kubectl -n "$NS" logs -l batch.kubernetes.io/job-name --tail=100 --prefix || true
}

cleanup() {
  status=$?
  [ -n "$PORT_FORWARD_PID" ] && kill "$PORT_FORWARD_PID" 2>/dev/null || true
  [ $status -ne 0 ] && diagnose
  rm -rf "$WORK"
  if [ "${KEEP_CLUSTER:-0}" != 1 ]; then
    kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
  fi
  exit $status
}
trap cleanup EXIT

if ! kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  step "kind create cluster --name $CLUSTER --wait 180s"
fi
kubectl config use-context "kind-$CLUSTER" >/dev/null
helm uninstall channelmodel -n "$NS" >/dev/null 2>&1 || true  # a reused cluster

log "README: build the images (and load them into kind)"
for cmd in "${BUILD[@]}"; do step "$cmd"; done
eval "$(printf '%s\n' "${BUILD[@]}" | grep -m1 '^REGISTRY=')"  # REGISTRY and VERSION here too

log "the backend examples/channelmodel-cpu.yaml names: 3 products x 6 photos"
mkdir -p "$WORK/catalog"
BACKEND=http://backend.shop.svc.cluster.local
python3 - "$DATASET" "$WORK/catalog" "$BACKEND" "$CHANNEL" <<'PY'
import json, shutil, sys
from pathlib import Path
dataset, out, base, channel = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]
products = []
for product, folder in (("garlic", "Vegetables/Garlic"), ("leek", "Vegetables/Leek"), ("lime", "Fruit/Lime")):
    images = sorted((dataset / folder).glob("*.jpg"))[:6]
    if len(images) < 6:
        sys.exit(f"not enough photos in {dataset / folder}")
    names = []
    for index, image in enumerate(images):
        name = f"{product}-{index}.jpg"
        shutil.copy(image, out / name)
        names.append(f"{base}/{name}")
    products.append({"id": f"prod-{product}", "images": names})
(out / "manifest.json").write_text(json.dumps({"channelId": channel, "products": products}))
PY
kubectl create namespace shop --dry-run=client -o yaml | kubectl apply -f -
kubectl -n shop create configmap catalog --from-file="$WORK/catalog" --dry-run=client -o yaml | kubectl apply -f -
kubectl -n shop apply -f - <<YAML
apiVersion: apps/v1
kind: Deployment
metadata:
  name: backend
spec:
  replicas: 1
  selector: {matchLabels: {app: backend}}
  template:
    metadata: {labels: {app: backend}}
    spec:
      securityContext: {runAsNonRoot: true, runAsUser: 10001}
      containers:
        - name: http
          image: $REGISTRY/channelmodel-operator:$VERSION
          imagePullPolicy: Never
          command: [python3, -m, http.server, "8000", --directory, /catalog]
          ports: [{containerPort: 8000}]
          readinessProbe: {httpGet: {path: /ml/channels/$CHANNEL/manifest, port: 8000}}
          volumeMounts: [{name: catalog, mountPath: /catalog}]
      volumes:
        - name: catalog
          configMap:
            name: catalog
            items:
              - {key: manifest.json, path: ml/channels/$CHANNEL/manifest}
$(for f in "$WORK"/catalog/*.jpg; do n=$(basename "$f"); printf '              - {key: %s, path: %s}\n' "$n" "$n"; done)
---
apiVersion: v1
kind: Service
metadata:
  name: backend
spec:
  selector: {app: backend}
  ports: [{port: 80, targetPort: 8000}]
YAML
kubectl -n shop rollout status deployment/backend --timeout=180s

log "README: install, apply the minimal ChannelModel, wait for Ready"
for cmd in "${INSTALL[@]}"; do step "$cmd"; done

version=$(kubectl -n "$NS" get channelmodel "$CHANNEL" -o jsonpath='{.status.modelVersion}')
[ "$version" = 1.0.0 ] || die "Ready, but serving ${version:-nothing}, not 1.0.0"

log "fetch model.json through the model server"
local_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
kubectl -n "$NS" port-forward service/channelmodel-server "$local_port:80" >"$WORK/port-forward.log" 2>&1 &
PORT_FORWARD_PID=$!
for _ in $(seq 30); do
  curl -fsS "http://127.0.0.1:$local_port/readyz" >/dev/null 2>&1 && break
  sleep 1
done
path=/assets/ml-models/$CHANNEL/v1.0.0
curl -fsS "http://127.0.0.1:$local_port$path/model.json" -o "$WORK/model.json"
curl -fsS "http://127.0.0.1:$local_port$path/metadata.json" -o "$WORK/metadata.json"
python3 - "$WORK" "$WORK/catalog/manifest.json" <<'PY'
import json, sys
from pathlib import Path
work = Path(sys.argv[1])
model = json.loads((work / "model.json").read_text())
metadata = json.loads((work / "metadata.json").read_text())
manifest = json.loads(Path(sys.argv[2]).read_text())
assert "modelTopology" in model and model["weightsManifest"], "model.json is not a TF.js layers model"
expected = sorted(p["id"] for p in manifest["products"])
assert sorted(metadata["labels"]) == expected, (metadata["labels"], expected)
print(f"kind-e2e: model.json OK: {len(model['weightsManifest'][0]['weights'])} weight tensors, labels {metadata['labels']}")
PY
log "timings"
printf '  %s\n' "${TIMINGS[@]}"
log "passed"
