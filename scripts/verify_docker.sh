#!/usr/bin/env bash
# CI's Docker check: build the Dockerfile's `test` target, which runs the test suite inside the
# image, and fail if it fails. A plain (non-PGO) interpreter keeps it to minutes.
#
# Where no Docker engine runs, it uses buildah (installing buildah and debootstrap with apt-get
# when missing; needs root) and makes the debian:trixie-slim base image locally when it is not
# there, since nothing can be pulled. The CPython tarball comes from $CPYTHON_TARBALL, else
# ../shared/cpython beside the checkout, else python.org.
set -euo pipefail

cd "$(dirname "$0")/.."

log() { echo "verify_docker: $*" >&2; }

shared_tarballs=(../shared/cpython/Python-*.tar.xz)
if [[ -z ${CPYTHON_TARBALL:-} && -f ${shared_tarballs[0]} ]]; then
  export CPYTHON_TARBALL=${shared_tarballs[0]}
fi

if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
  engine=docker
elif command -v podman >/dev/null && podman info >/dev/null 2>&1; then
  engine=podman
else
  engine=buildah
  missing=()
  command -v buildah >/dev/null || missing+=(buildah)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    sudo=$([[ $EUID -ne 0 ]] && echo sudo || true)
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >/dev/null
  fi
  export STORAGE_DRIVER=${STORAGE_DRIVER:-vfs} BUILDAH_ISOLATION=${BUILDAH_ISOLATION:-chroot}
  if ! buildah inspect --type image debian:trixie-slim >/dev/null 2>&1; then
    log "no debian:trixie-slim image here; making it with debootstrap"
    ENGINE=buildah scripts/make_base_image.sh debian:trixie-slim
  fi
fi

log "building the test target with $engine"
./build_docker.sh test --engine "$engine" --no-optimized
log "the test stage passed"
