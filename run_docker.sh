#!/usr/bin/env bash
# Run nogil-bench in a container (docker or podman).
#
#   ./run_docker.sh          the production image on http://127.0.0.1:8000, data in the named
#                            volume nogil-bench-data, settings from .env when it exists
#   ./run_docker.sh --dev    the source tree mounted at /app with auto-reload; the virtual
#                            environment lives in the named volume nogil-bench-dev-venv, so the
#                            mount does not hide it (build the image with ./build_docker.sh deps)
#
# Both run with PYTHON_GIL=0, an init process (signals reach the server), and a stop timeout
# longer than the app's shutdown grace period. See --help for the options.
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: ./run_docker.sh [--dev] [options]

  --dev               development mode (source mounted, reload); image nogil-bench:deps
  --port N            host port to publish (default: 8000)
  --image NAME        image to run (default: nogil-bench:latest, with --dev nogil-bench:deps)
  --env-file FILE     settings (NOGIL_BENCH_*) to pass in (default: .env when it exists)
  --engine NAME       docker | podman (default: the first one that works here)
  -h, --help          this text
USAGE
}

die() {
  echo "run_docker: error: $*" >&2
  exit 2
}

cd "$(dirname "$0")"

dev=0 port=8000 image="" env_file="" engine=""
[[ -f .env ]] && env_file=.env
while (($#)); do
  case "$1" in
    --dev) dev=1 ;;
    --port) port=${2:?--port needs a number}; shift ;;
    --image) image=${2:?--image needs a name}; shift ;;
    --env-file) env_file=${2:?--env-file needs a path}; shift ;;
    --engine) engine=${2:?--engine needs a name}; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
  shift
done
[[ $port =~ ^[0-9]+$ ]] && ((port >= 1 && port <= 65535)) || die "--port $port is not a TCP port"
[[ -z $env_file || -f $env_file ]] || die "--env-file $env_file: no such file"

if [[ -z $engine ]]; then
  for candidate in docker podman; do
    if command -v "$candidate" >/dev/null && "$candidate" info >/dev/null 2>&1; then
      engine=$candidate
      break
    fi
  done
  [[ -n $engine ]] || die "no container engine that runs containers: install docker or podman"
fi

command=(
  "$engine" run --rm
  --init
  --stop-timeout 30
  --publish "$port:8000"
  --env PYTHON_GIL=0
)
[[ -n $env_file ]] && command+=(--env-file "$env_file")

if ((dev)); then
  command+=(
    --name nogil-bench-dev
    --volume "$PWD:/app"
    --volume nogil-bench-dev-venv:/opt/venv
    --volume nogil-bench-dev-data:/app/data
    --env NOGIL_BENCH_HOST=0.0.0.0
    "${image:-nogil-bench:deps}"
    sh -c 'uv sync --frozen && exec nogil-bench serve --reload'
  )
else
  command+=(
    --name nogil-bench
    --volume nogil-bench-data:/data
    "${image:-nogil-bench:latest}"
  )
fi

echo "run_docker: ${command[*]}" >&2
exec "${command[@]}"
