"""Batches through the live HTTP API, one per runner, and the throughput each reached.

    .venv/bin/python scripts/bench_api.py                      # 64 x 512x512, threads vs sequential
    .venv/bin/python scripts/bench_api.py --count 8 --size 128 --runners threads processes
    .venv/bin/python scripts/bench_api.py --url http://127.0.0.1:8000   # an already running service

Without --url it starts `nogil-bench serve` on a free port with a temporary data directory (and
whatever PYTHON_GIL says), registers a throwaway user, and stops the server at the end. Batches
run one after another (the service's executor runs one execution at a time).
"""

import argparse
import json
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from live_server import running_server

DEFAULT_PIPELINE = '[{"op": "box_blur", "params": {"radius": 1}}, {"op": "sepia"}]'
POLL_S = 0.25
MIB = 1024 * 1024


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running service (default: start one)")
    parser.add_argument("--count", type=int, default=64, help="images per batch (default: 64)")
    parser.add_argument("--size", type=int, default=512, help="width = height (default: 512)")
    parser.add_argument("--workers", type=int, default=2, help="default: 2")
    parser.add_argument("--runners", nargs="+", default=["threads", "sequential"])
    parser.add_argument("--pipeline", default=DEFAULT_PIPELINE, help="JSON steps (pure Python)")
    parser.add_argument("--timeout", type=float, default=1800, help="per batch, seconds")
    return parser.parse_args()


def request(
    url: str, *, data: bytes | None = None, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    call = urllib.request.Request(url, data=data, headers=headers or {})  # noqa: S310 - http(s)
    try:
        with urllib.request.urlopen(call, timeout=60) as response:  # noqa: S310
            body: dict[str, Any] = json.loads(response.read())
            return body
    except urllib.error.HTTPError as error:
        raise SystemExit(f"{url}: {error.code} {error.read().decode()}") from None


def post_json(url: str, body: object, headers: dict[str, str]) -> dict[str, Any]:
    return request(
        url,
        data=json.dumps(body).encode(),
        headers=headers | {"Content-Type": "application/json"},
    )


def log_in(base_url: str) -> dict[str, str]:
    email, password = f"bench-{uuid.uuid4().hex[:12]}@example.com", uuid.uuid4().hex
    post_json(f"{base_url}/api/v1/auth/register", {"email": email, "password": password}, {})
    form = urllib.parse.urlencode({"username": email, "password": password}).encode()
    token = request(
        f"{base_url}/api/v1/auth/token",
        data=form,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    return {"Authorization": f"Bearer {token['access_token']}"}


@contextmanager
def local_server() -> Iterator[str]:
    with (
        tempfile.TemporaryDirectory(prefix="nogil-bench-api-") as data_dir,
        running_server(Path(data_dir)) as server,
    ):
        yield server.base_url


def run_batch(
    base_url: str, headers: dict[str, str], args: argparse.Namespace, runner: str
) -> dict[str, Any]:
    body = {
        "source": {"count": args.count, "width": args.size, "height": args.size, "seed": 1},
        "pipeline": json.loads(args.pipeline),
        "runner": runner,
        "workers": args.workers,
    }
    batch = post_json(f"{base_url}/api/v1/batches", body, headers)
    deadline = time.monotonic() + args.timeout
    while batch["status"] not in {"succeeded", "failed", "cancelled"}:
        if time.monotonic() > deadline:
            raise SystemExit(f"batch {batch['id']} ({runner}) still {batch['status']}")
        time.sleep(POLL_S)
        batch = request(f"{base_url}/api/v1/batches/{batch['id']}", headers=headers)
        progress = batch["progress"]
        print(f"\r{runner}: {progress['done']}/{progress['total']}", end="", file=sys.stderr)
    print(file=sys.stderr)
    if batch["status"] != "succeeded":
        raise SystemExit(f"batch {batch['id']} ({runner}) {batch['status']}: {batch['error']}")
    return batch


def main() -> None:
    args = parse_args()
    with local_server() if args.url is None else _given(args.url) as base_url:
        headers = log_in(base_url)
        health = request(f"{base_url}/health")
        batches = {runner: run_batch(base_url, headers, args, runner) for runner in args.runners}
    print(
        f"{args.count} x {args.size}x{args.size}, pipeline {args.pipeline}, "
        f"{args.workers} workers, Python {health['python_version']}, "
        f"GIL {'on' if health['gil_enabled'] else 'off'}, {health['cpu_count']} CPUs\n"
    )
    print("| runner | wall s | setup s | images/s | p50 s | p95 s | CPU s | peak RSS MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for runner, batch in batches.items():
        a = batch["aggregates"]
        print(
            f"| {runner} | {a['wall_s']:.2f} | {a['setup_s']:.2f} | "
            f"{a['throughput_images_per_s']:.2f} | {a['latency_p50_s']:.3f} | "
            f"{a['latency_p95_s']:.3f} | {a['cpu_user_s'] + a['cpu_system_s']:.1f} | "
            f"{a['peak_rss_bytes'] / MIB:.0f} |"
        )


@contextmanager
def _given(url: str) -> Iterator[str]:
    yield url.rstrip("/")


if __name__ == "__main__":
    main()
