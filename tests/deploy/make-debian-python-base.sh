#!/usr/bin/env bash
# Make a Python 3.11 base image from Debian's packages, for machines that reach
# Debian's mirror and PyPI but no container registry. Then build the images on it:
#
#   tests/deploy/make-debian-python-base.sh            # -> local/debian-python:3.11-bookworm
#   CHANNELMODEL_DOCKER_BASE_IMAGE=local/debian-python:3.11-bookworm \
#     .venv/bin/pytest tests/deploy/test_dockerfiles.py -m slow
#
# Needs root, debootstrap and a running docker engine (Debian: apt-get install
# docker.io debootstrap; dockerd &). The host's CA bundle is copied in, so pip
# inside builds trusts whatever TLS proxy the host trusts.
set -euo pipefail
TAG=${1:-local/debian-python:3.11-bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

command -v debootstrap >/dev/null || { echo "debootstrap not installed" >&2; exit 1; }
docker info >/dev/null 2>&1 || { echo "no docker engine (docker info failed)" >&2; exit 1; }

debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$work/rootfs" "$MIRROR" >"$work/debootstrap.log" \
  || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
rm -rf "$work"/rootfs/var/cache/apt/archives/*.deb "$work"/rootfs/var/lib/apt/lists/*
cp /etc/ssl/certs/ca-certificates.crt "$work/rootfs/etc/ssl/certs/ca-certificates.crt"
tar -C "$work/rootfs" -c . | docker import - "$TAG" >/dev/null
docker run --rm "$TAG" python3 -c "import sys, venv; print('$TAG: Python', sys.version.split()[0])"
