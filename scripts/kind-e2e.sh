#!/usr/bin/env bash
# End to end on a real cluster: create a kind cluster, build and load the
# images, install the chart, serve a sample catalog in-cluster, apply a
# ChannelModel, wait for model version 1.0.0 and fetch its model.json through
# the model server. tests/deploy/test_kind_e2e.py runs this script.
#
# Needs: docker (engine running), kind, kubectl, helm (.tools/bin/helm from
# scripts/setup.sh or on PATH), network access for the image builds (PyPI and
# the Keras ImageNet weights) and the grocery-store dataset in ../shared.
#
# Environment:
#   KIND_CLUSTER    cluster name [channelmodel-e2e]; reused if it exists
#   KEEP_CLUSTER=1  leave the cluster running afterwards
#   SKIP_BUILD=1    reuse channelmodel-operator:e2e / channelmodel-trainer:e2e-cpu
#   E2E_TIMEOUT     seconds to wait for version 1.0.0 [1800]
#   CHANNELMODEL_SHARED  the shared folder [<repo>/../shared]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CLUSTER=${KIND_CLUSTER:-channelmodel-e2e}
NS=channelmodel-e2e
RELEASE=channelmodel
TAG=e2e
TIMEOUT=${E2E_TIMEOUT:-1800}
SHARED=${CHANNELMODEL_SHARED:-$ROOT/../shared}
DATASET=$SHARED/datasets/grocery-store/dataset/train
CHANNEL=e2e
WORK=$(mktemp -d)
PORT_FORWARD_PID=""

log() { printf '\n== kind-e2e: %s\n' "$*"; }
die() { printf 'kind-e2e: FAILED: %s\n' "$*" >&2; exit 1; }

HELM=$ROOT/.tools/bin/helm
[ -x "$HELM" ] || HELM=$(command -v helm || true)
for tool in docker kind kubectl python3 curl; do
  command -v "$tool" >/dev/null || die "$tool not installed"
done
[ -n "$HELM" ] || die "helm not installed: run scripts/setup.sh"
docker info >/dev/null 2>&1 || die "no docker engine (docker info failed)"
[ -d "$DATASET" ] || die "dataset not found at $DATASET (set CHANNELMODEL_SHARED)"

diagnose() {
  log "diagnostics"
  kubectl -n "$NS" get all,channelmodels,jobs,pvc -o wide || true
  kubectl -n "$NS" get channelmodel "$CHANNEL" -o yaml || true
  kubectl -n "$NS" get events --sort-by=.lastTimestamp | tail -40 || true
  kubectl -n "$NS" logs deployment/$RELEASE-operator --tail=200 || true
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

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  log "build channelmodel-operator:$TAG"
  docker build -f Dockerfile.operator -t channelmodel-operator:$TAG .
  log "build channelmodel-trainer:$TAG-cpu (kind has no GPU)"
  docker build -f Dockerfile.trainer -t channelmodel-trainer:$TAG-cpu \
    --build-arg TENSORFLOW_REQUIREMENT=tensorflow-cpu==2.21.0 .
fi

if ! kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  log "create kind cluster $CLUSTER"
  kind create cluster --name "$CLUSTER" --wait 180s
fi
kubectl config use-context "kind-$CLUSTER" >/dev/null
log "load images"
kind load docker-image --name "$CLUSTER" channelmodel-operator:$TAG channelmodel-trainer:$TAG-cpu

kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f -

log "sample catalog: 3 products x 6 photos, served by python http.server"
mkdir -p "$WORK/catalog"
CATALOG_URL=http://catalog.$NS.svc:8000
python3 - "$DATASET" "$WORK/catalog" "$CATALOG_URL" "$CHANNEL" <<'PY'
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
kubectl -n "$NS" create configmap catalog --from-file="$WORK/catalog" --dry-run=client -o yaml | kubectl apply -f -
kubectl -n "$NS" apply -f - <<YAML
apiVersion: apps/v1
kind: Deployment
metadata:
  name: catalog
spec:
  replicas: 1
  selector: {matchLabels: {app: catalog}}
  template:
    metadata: {labels: {app: catalog}}
    spec:
      securityContext: {runAsNonRoot: true, runAsUser: 10001}
      containers:
        - name: http
          image: channelmodel-operator:$TAG
          imagePullPolicy: Never
          command: [python3, -m, http.server, "8000", --directory, /catalog]
          ports: [{containerPort: 8000}]
          readinessProbe: {httpGet: {path: /manifest.json, port: 8000}}
          volumeMounts: [{name: catalog, mountPath: /catalog}]
      volumes: [{name: catalog, configMap: {name: catalog}}]
---
apiVersion: v1
kind: Service
metadata:
  name: catalog
spec:
  selector: {app: catalog}
  ports: [{port: 8000, targetPort: 8000}]
YAML
kubectl -n "$NS" rollout status deployment/catalog --timeout=180s

log "helm install"
"$HELM" upgrade --install "$RELEASE" deploy/helm/channelmodel --namespace "$NS" \
  --set fullnameOverride=$RELEASE \
  --set image.tag=$TAG --set image.pullPolicy=Never \
  --set trainer.image.tag=$TAG-cpu --set trainer.image.pullPolicy=Never \
  --set trainer.gpu.enabled=false \
  --set 'policy.egressAllowNetworks={10.96.0.0/12}' \
  --wait --timeout 5m

log "apply ChannelModel $CHANNEL"
kubectl -n "$NS" apply -f - <<YAML
apiVersion: ml.dukarun.io/v1alpha1
kind: ChannelModel
metadata:
  name: $CHANNEL
spec:
  channelId: "$CHANNEL"
  manifest:
    url: $CATALOG_URL/manifest.json
  training:
    gpus: 0
    epochs: 5
YAML

log "wait for status.modelVersion 1.0.0 (up to ${TIMEOUT}s)"
deadline=$((SECONDS + TIMEOUT))
version=""
while [ $SECONDS -lt $deadline ]; do
  version=$(kubectl -n "$NS" get channelmodel "$CHANNEL" -o jsonpath='{.status.modelVersion}')
  state=$(kubectl -n "$NS" get channelmodel "$CHANNEL" -o jsonpath='{.status.trainingStatus}')
  [ "$version" = 1.0.0 ] && break
  [ "$state" = Failed ] && die "training failed"
  sleep 10
done
[ "$version" = 1.0.0 ] || die "no model version 1.0.0 after ${TIMEOUT}s (status: ${state:-none})"
base_url=$(kubectl -n "$NS" get channelmodel "$CHANNEL" -o jsonpath='{.status.modelBaseUrl}')
log "model $version at $base_url"

log "fetch model.json through the model server"
local_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
kubectl -n "$NS" port-forward "service/$RELEASE-server" "$local_port:80" >"$WORK/port-forward.log" 2>&1 &
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
log "passed"
