#!/usr/bin/env bash
# Pin the Dockerfiles' BASE_IMAGE defaults by digest, keeping the tag readable:
#   ARG BASE_IMAGE=python:3.11-slim-bookworm
# becomes
#   ARG BASE_IMAGE=python:3.11-slim-bookworm@sha256:<index digest>
# The digest is the multi-arch index's (every architecture stays buildable),
# resolved with `docker buildx imagetools inspect`. Re-run to move to a newer
# base; review and commit the diff. tests/deploy/test_dockerfiles.py accepts
# both forms and checks a pinned one.
#
# Usage: scripts/pin-base-images.sh [Dockerfile ...]   (default: both Dockerfiles)
set -euo pipefail
cd "$(dirname "$0")/.."
files=("$@")
[ ${#files[@]} -gt 0 ] || files=(Dockerfile.operator Dockerfile.trainer)
for file in "${files[@]}"; do
  line=$(grep -m1 '^ARG BASE_IMAGE=' "$file") || { echo "$file: no ARG BASE_IMAGE" >&2; exit 1; }
  image=${line#ARG BASE_IMAGE=}
  image=${image%%@*}   # re-pin from the tag
  digest=$(docker buildx imagetools inspect "$image" --format '{{json .Manifest}}' \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["digest"])')
  [[ $digest =~ ^sha256:[0-9a-f]{64}$ ]] || { echo "$image: no digest ($digest)" >&2; exit 1; }
  sed -i "s|^ARG BASE_IMAGE=.*|ARG BASE_IMAGE=$image@$digest|" "$file"
  echo "$file: $image@$digest"
done
