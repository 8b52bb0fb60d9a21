#!/usr/bin/env bash
# Build one target of the Dockerfile with whichever engine is here: docker, podman or buildah.
#
#   ./build_docker.sh                    production image, PGO + LTO interpreter (slow, ~20 min)
#   ./build_docker.sh test --no-optimized     runs the test suite inside the image; fails if it fails
#   CPYTHON_TARBALL=/path/Python-3.14.7.tar.xz ./build_docker.sh    offline: no python.org
#
# Prints the image's size at the end. See --help for every option.
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: ./build_docker.sh [TARGET] [options]

TARGET   production (default) | test | app | deps | base | builder

options:
  --tag NAME            image name (default: nogil-bench:TARGET; production is also :latest)
  --no-optimized        plain CPython build (OPTIMIZED=0): ~3 minutes instead of ~20
  --tarball PATH        build CPython from this release tarball instead of downloading it
                        (default: $CPYTHON_TARBALL); it is copied into docker/cpython/
  --base-image NAME     the Debian base (default: debian:trixie-slim; scripts/make_base_image.sh
                        makes it locally where nothing can be pulled)
  --engine NAME         docker | podman | buildah (default: the first one that works here)
  --build-arg KEY=VALUE passed through to the engine (repeatable)
  -h, --help            this text

With buildah, STORAGE_DRIVER (default vfs) and BUILDAH_ISOLATION (default chroot) are honoured:
the defaults work as root on machines without user namespaces or overlayfs.
The host's CA bundle, when there is one, is passed as the build secret `ca-certificates`, so
package downloads work behind a TLS-inspecting proxy; it never lands in an image layer.
USAGE
}

die() {
  echo "build_docker: error: $*" >&2
  exit 2
}

cd "$(dirname "$0")"

target=production tag="" engine="" base_image="" optimized=1
tarball=${CPYTHON_TARBALL:-}
build_args=()
while (($#)); do
  case "$1" in
    --tag) tag=${2:?--tag needs a name}; shift ;;
    --no-optimized) optimized=0 ;;
    --tarball) tarball=${2:?--tarball needs a path}; shift ;;
    --base-image) base_image=${2:?--base-image needs a name}; shift ;;
    --engine) engine=${2:?--engine needs a name}; shift ;;
    --build-arg) build_args+=(--build-arg "${2:?--build-arg needs KEY=VALUE}"); shift ;;
    -h | --help) usage; exit 0 ;;
    -*) die "unknown option '$1' (see --help)" ;;
    *) target=$1 ;;
  esac
  shift
done

case "$target" in
  production | test | app | deps | base | builder) ;;
  *) die "unknown target '$target'; valid: production test app deps base builder" ;;
esac
[[ -z $tarball || -f $tarball ]] || die "--tarball $tarball: no such file"

if [[ -z $engine ]]; then
  if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
    engine=docker
  elif command -v podman >/dev/null && podman info >/dev/null 2>&1; then
    engine=podman
  elif command -v buildah >/dev/null; then
    engine=buildah
  else
    die "no container engine: install docker, podman or buildah"
  fi
fi

if [[ $engine == buildah ]]; then
  export STORAGE_DRIVER=${STORAGE_DRIVER:-vfs} BUILDAH_ISOLATION=${BUILDAH_ISOLATION:-chroot}
fi

build_args+=(--build-arg "OPTIMIZED=$optimized")
[[ -n $base_image ]] && build_args+=(--build-arg "BASE_IMAGE=$base_image")

if [[ -n $tarball ]]; then
  name=$(basename "$tarball")
  if ! cmp -s "$tarball" "docker/cpython/$name"; then
    cp "$tarball" "docker/cpython/$name.part"
    mv "docker/cpython/$name.part" "docker/cpython/$name"
  fi
  build_args+=(--build-arg "CPYTHON_TARBALL=docker/cpython/$name")
fi

secrets=()
ca_bundle=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}
[[ -s $ca_bundle ]] && secrets=(--secret "id=ca-certificates,src=$ca_bundle")

image=${tag:-nogil-bench:$target}
tags=(--tag "$image")
[[ -z $tag && $target == production ]] && tags+=(--tag nogil-bench:latest)

command=("$engine" build)
case "$engine" in
  docker) export DOCKER_BUILDKIT=1 ;;
  # The OCI image format has no HEALTHCHECK; the docker format keeps it.
  podman) command+=(--format docker) ;;
  buildah) command+=(--format docker --layers) ;;
esac
command+=(--target "$target" "${tags[@]}" "${build_args[@]}" "${secrets[@]}" --file Dockerfile .)

echo "build_docker: ${command[*]}" >&2
started=$SECONDS
"${command[@]}"
size=$("$engine" images --format '{{.Size}}' "$image" | head -n 1)
echo "build_docker: built $image in $((SECONDS - started)) s; image size: $size" >&2
