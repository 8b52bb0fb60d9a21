#!/usr/bin/env bash
# Everything `make serve` and `make test` need, from nothing: the free-threaded interpreter
# (built once, then cached), uv, and .venv synced from uv.lock. Safe to run again; fast when done.
#
#   scripts/bootstrap.sh         the free-threaded 3.14t interpreter and .venv
#   scripts/bootstrap.sh --gil   the default (GIL) 3.14 build and .venv-gil, for comparing the two
set -euo pipefail

variant=()
environment=.venv
case "${1:-}" in
  "") ;;
  --gil) variant=(--gil) environment=.venv-gil ;;
  *) echo "usage: $0 [--gil]" >&2; exit 2 ;;
esac

readonly UV_VERSION=0.13.9

cd "$(dirname "$0")/.."

# The team's machines keep the release tarball in ../shared; anywhere else the build downloads it.
shared_tarballs=(../shared/cpython/Python-*.tar.xz)
if [[ -z ${CPYTHON_TARBALL:-} && -f ${shared_tarballs[0]} ]]; then
  export CPYTHON_TARBALL=${shared_tarballs[0]}
fi

python=$(scripts/build_python.sh "${variant[@]}")

uv=$(command -v uv || true)
if [[ -z $uv || $("$uv" --version) != "uv $UV_VERSION"* ]]; then
  tools_dir="${NOGIL_BENCH_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/nogil-bench}/uv-$UV_VERSION"
  uv="$tools_dir/bin/uv"
  if [[ ! -x $uv ]]; then
    echo "bootstrap: installing uv $UV_VERSION into $tools_dir" >&2
    "$python" -m venv --clear "$tools_dir"
    "$tools_dir/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
  fi
fi

UV_PROJECT_ENVIRONMENT=$environment "$uv" sync --frozen --python "$python" --quiet
