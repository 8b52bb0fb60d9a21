#!/usr/bin/env bash
# Smoke test of the production image, which CI's test stage never runs: both of its roles start
# from it and work together.
#
#   scripts/smoke_image.sh [IMAGE] [--engine buildah|podman|docker]   (default nogil-bench:latest)
#
# 1. In the image: the service and worker modules import, Pillow decodes PNG, JPEG and WebP and
#    draws text with FreeType, and the GIL stays off.
# 2. `nogil-bench worker` against a Redis server this script starts on the host
#    (redis-server, Debian's package), until Celery says it is ready; and a
#    `nogil-bench task-worker --pool prefork` for the celery runners.
# 3. `nogil-bench serve` with the same broker and data directory: /health/live answers,
#    /health/ready sees the broker, a job submitted through the API is run by the worker, and
#    one on the celery-prefork runner too, its images mapped over the task worker.
# 4. SIGTERM to all: the workers shut down warmly, the server stops; all exit 0.
# The containers share the host's network (buildah's chroot isolation does; podman and docker
# get --network host). Exits non-zero at the first check that fails, showing the logs.
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: scripts/smoke_image.sh [IMAGE] [--engine docker|podman|buildah]

Starts both roles of the production image IMAGE (default nogil-bench:latest) against a Redis
server it starts on the host (redis-server), and checks they work together: imports with the
GIL off, `nogil-bench worker` and a prefork task worker ready, `nogil-bench serve` healthy and
ready, a job run by the worker through the API (and one on the celery-prefork runner), warm
shutdown on SIGTERM with exit 0. The engine defaults to the first
one that works here; with buildah, STORAGE_DRIVER (vfs) and BUILDAH_ISOLATION (chroot) are
honoured as by build_docker.sh. NOGIL_BENCH_DATABASE_URL, when set, is passed on: both roles
then use that database (e.g. postgresql+psycopg://...) instead of SQLite in /data.
USAGE
}

die() {
  echo "smoke_image: error: $*" >&2
  exit 2
}

image=nogil-bench:latest engine=""
while (($#)); do
  case "$1" in
    --engine) engine=${2:?--engine needs a name}; shift ;;
    -h | --help) usage; exit 0 ;;
    -*) die "unknown option '$1' (see --help)" ;;
    *) image=$1 ;;
  esac
  shift
done

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
case "$engine" in
  buildah)
    export STORAGE_DRIVER=${STORAGE_DRIVER:-vfs} BUILDAH_ISOLATION=${BUILDAH_ISOLATION:-chroot}
    ;;
  podman | docker) ;;
  *) die "unknown engine '$engine'" ;;
esac
command -v redis-server >/dev/null \
  || die "redis-server is not installed (apt-get install redis-server)"

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

work=$(mktemp -d)
redis_port=$(free_port)
api_port=$(free_port)
broker=redis://127.0.0.1:$redis_port/0
ctr="" server_pid="" worker_pid="" tasks_pid=""
settings=(
  NOGIL_BENCH_BROKER_URL="$broker"
  NOGIL_BENCH_PORT="$api_port"
  NOGIL_BENCH_SECRET_KEY="smoke-test-$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')"
  NOGIL_BENCH_LOG_FORMAT=text
  NOGIL_BENCH_WORKER_NAME=smoke-worker
)
# Both roles on PostgreSQL instead of SQLite in /data, when given one.
if [[ -n ${NOGIL_BENCH_DATABASE_URL:-} ]]; then
  settings+=(NOGIL_BENCH_DATABASE_URL="$NOGIL_BENCH_DATABASE_URL")
fi

cleanup() {
  set +e
  for pid in $server_pid $worker_pid $tasks_pid; do
    kill -KILL "$pid" 2>/dev/null
  done
  if [[ -n $ctr ]]; then
    case "$engine" in
      buildah) buildah rm "$ctr" >/dev/null ;;
      *)
        "$engine" rm -f "$ctr-serve" "$ctr-worker" "$ctr-tasks" >/dev/null 2>&1
        "$engine" volume rm "$ctr-data" >/dev/null 2>&1
        ;;
    esac
  fi
  redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "smoke_image: FAILED: $*" >&2
  for log in "$work"/*.log; do
    [[ -f $log ]] && { echo "--- $(basename "$log")" >&2; tail -n 40 "$log" >&2; }
  done
  exit 1
}

# in_image CMD...: runs a command in the image (a fresh container for podman and docker, the one
# working container for buildah, whose /data the roles then share).
# start_role NAME CMD...: the same in the background, its output in $work/NAME.log.
# stop_role NAME: SIGTERM, then its exit code.
env_args=()
for setting in "${settings[@]}"; do
  env_args+=(--env "$setting")
done
case "$engine" in
  buildah)
    ctr=$(buildah from --name "smoke-$$" "$image")
    in_image() { buildah run "${env_args[@]}" "$ctr" -- "$@"; }
    ;;
  *)
    ctr=smoke-$$
    "$engine" volume create "$ctr-data" >/dev/null
    in_image() {
      "$engine" run --rm -i --network host -v "$ctr-data:/data" "${env_args[@]}" "$image" "$@"
    }
    ;;
esac

start_role() {
  local name=$1
  shift
  case "$engine" in
    buildah) buildah run "${env_args[@]}" "$ctr" -- "$@" >"$work/$name.log" 2>&1 & ;;
    *)
      "$engine" run -d --name "$ctr-$name" --network host -v "$ctr-data:/data" \
        "${env_args[@]}" "$image" "$@" >/dev/null
      "$engine" logs -f "$ctr-$name" >"$work/$name.log" 2>&1 &
      ;;
  esac
}

# The process's own pid, from its log line "... pid N ...". With buildah's chroot isolation
# it is a host pid (no pid namespace): `buildah run` does not pass SIGTERM on, so it goes there.
role_pid() {
  grep -o -m1 'pid [0-9]*' "$work/$1.log" | cut -d' ' -f2
}

stop_role() { # sets role_rc
  local name=$1 pid
  case "$engine" in
    buildah)
      pid=$(role_pid "$name")
      kill -TERM "$pid"
      for _ in $(seq 300); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
      kill -0 "$pid" 2>/dev/null && fail "$name still running 30 s after SIGTERM"
      role_rc=0
      wait "${job_pids[$name]}" || role_rc=$?
      ;;
    *)
      "$engine" stop --time 30 "$ctr-$name" >/dev/null
      role_rc=$("$engine" wait "$ctr-$name")
      ;;
  esac
}

# The background `buildah run` of each role.
declare -A job_pids

wait_for() { # wait_for NAME SECONDS TEXT: until TEXT is in NAME's log
  for _ in $(seq $(($2 * 10))); do
    grep -q -- "$3" "$work/$1.log" 2>/dev/null && return 0
    sleep 0.1
  done
  fail "$1: no '$3' in its log within $2 s"
}

echo "smoke_image: $image with $engine; Redis on 127.0.0.1:$redis_port, the API on :$api_port"
redis-server --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no --daemonize yes \
  --dir "$work" --logfile "$work/redis.log" >/dev/null

echo "== 1. imports, codecs, GIL"
in_image python - <<'PY' || fail "the imports check"
import sys
from io import BytesIO

import nogil_bench.main
import nogil_bench.distributed.worker
import celery.apps.worker
import kombu.transport.redis
from PIL import Image, ImageFont, features

from nogil_bench.workloads.images import decode_image

app = nogil_bench.main.create_app()
image = Image.new("RGB", (64, 48), "teal")
for name in ("PNG", "JPEG", "WEBP"):
    buffer = BytesIO()
    image.save(buffer, format=name)
    assert decode_image(buffer.getvalue()).size == (64, 48), name
ImageFont.load_default(14).getbbox("nogil-bench")  # FreeType, as the charts use it
assert not sys._is_gil_enabled(), "the GIL is on"
print(f"imports ok: {len(sys.modules)} modules; PNG, JPEG, WebP decode; FreeType "
      f"{features.version('freetype2')}; GIL enabled: {sys._is_gil_enabled()}")
PY

echo "== 2. nogil-bench worker"
start_role worker nogil-bench worker
job_pids[worker]=$!
wait_for worker 60 " ready."
worker_pid=$(role_pid worker)
grep -m1 -o 'worker smoke-worker .*' "$work/worker.log" | sed 's/ {.*//'
grep -m1 'Connected to redis' "$work/worker.log" | sed 's/.* - //; s/ {.*//'

start_role tasks env NOGIL_BENCH_WORKER_NAME=smoke-tasks \
  nogil-bench task-worker --pool prefork --concurrency 2
job_pids[tasks]=$!
wait_for tasks 60 " ready."
tasks_pid=$(role_pid tasks)
grep -m1 -o 'task worker smoke-tasks .*' "$work/tasks.log" | sed 's/ {.*//'

echo "== 3. nogil-bench serve"
start_role serve nogil-bench serve
job_pids[serve]=$!
# Listening: Granian's worker started (the default with the GIL off), or uvicorn's start-up done.
wait_for serve 60 "Started worker-\|Application startup complete"
server_pid=$(role_pid serve)
grep -q "granian: 1 worker thread" "$work/serve.log" || fail "serve did not default to Granian"
in_image nogil-bench healthcheck --url "http://127.0.0.1:$api_port/health/live" \
  || fail "healthcheck"
in_image python - "$api_port" <<'PY' || fail "the API round trip"
import json
import sys
import time
import urllib.parse
import urllib.request

base = f"http://127.0.0.1:{sys.argv[1]}"


def call(method, path, body=None, form=None, token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = None
    if body is not None:
        data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
    elif form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    request = urllib.request.Request(base + path, data, headers, method=method)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


ready = call("GET", "/health/ready")
print("/health/ready:", json.dumps(ready)[:160])
health = call("GET", "/health")
assert health["gil_enabled"] is False, health  # read inside a request, on the image's server
user = {"email": "smoke@example.com", "password": "a fine password"}
call("POST", "/api/v1/auth/register", body=user)
token = call("POST", "/api/v1/auth/token",
             form={"username": user["email"], "password": user["password"]})["access_token"]
pipeline = [{"op": "box_blur", "params": {"radius": 1}}, {"op": "sepia"}]
job = call("POST", "/api/v1/jobs", token=token,
           body={"source": {"width": 40, "height": 30, "seed": 3}, "pipeline": pipeline})
deadline = time.monotonic() + 60
while job["status"] not in {"succeeded", "failed", "cancelled"}:
    assert time.monotonic() < deadline, f"job still {job['status']}"
    time.sleep(0.2)
    job = call("GET", f"/api/v1/jobs/{job['id']}", token=token)
print(f"job {job['id']}: {job['status']} on {job['worker']}, attempts {job['attempts']}")
assert (job["status"], job["worker"]) == ("succeeded", "smoke-worker"), job
# The same on the celery-prefork runner: the worker maps it over the task worker's pool.
job = call("POST", "/api/v1/jobs", token=token,
           body={"source": {"width": 40, "height": 30, "seed": 3}, "pipeline": pipeline,
                 "runner": "celery-prefork", "workers": 2})
deadline = time.monotonic() + 60
while job["status"] not in {"succeeded", "failed", "cancelled"}:
    assert time.monotonic() < deadline, f"job still {job['status']}"
    time.sleep(0.2)
    job = call("GET", f"/api/v1/jobs/{job['id']}", token=token)
print(f"job {job['id']}: {job['status']} on {job['runner']} via {job['worker']}")
assert job["status"] == "succeeded", job
PY
kill -0 "$worker_pid" 2>/dev/null || fail "the worker died"

echo "== 4. SIGTERM"
stop_role worker
[[ $role_rc == 0 ]] || fail "the worker exited $role_rc"
grep -q "Warm shutdown" "$work/worker.log" || fail "no warm shutdown in the worker's log"
echo "worker: warm shutdown, exit $role_rc"
worker_pid=""
stop_role tasks
[[ $role_rc == 0 ]] || fail "the task worker exited $role_rc"
echo "task worker: exit $role_rc"
tasks_pid=""
stop_role serve
[[ $role_rc == 0 ]] || fail "the server exited $role_rc"
grep -q "nogil-bench stopped" "$work/serve.log" || fail "no 'nogil-bench stopped' in the log"
echo "serve: stopped, exit $role_rc"
server_pid=""
echo "smoke_image: passed"
