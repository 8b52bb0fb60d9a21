"""One workload through POST /api/v1/benchmarks and through `nogil-bench measure --request`:
do the two agree?

    .venv/bin/python scripts/bench_api_vs_cli.py BODY.json
    .venv/bin/python scripts/bench_api_vs_cli.py BODY.json --url http://127.0.0.1:8000

BODY.json is a POST /api/v1/benchmarks body. The script posts it to a live service (one it
starts, with a temporary data directory, unless --url names one) and waits for the result,
then measures the same body with `nogil-bench measure --request BODY.json` (the CLI, one after
the other, never at once). For every configuration both measured it prints the two speedups
with their 95% CIs and whether the intervals overlap; the exit status is 1 unless all do.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench_api import log_in, post_json, request
from live_server import running_server

from nogil_bench.bench.document import load_document

POLL_S = 2.0
FINISHED = {"succeeded", "failed", "cancelled"}
type Key = tuple[str, int, int]  # runner, workers, GIL mode
type Interval = tuple[float, tuple[float, float] | None]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("body", type=Path, help="a POST /api/v1/benchmarks body (JSON)")
    parser.add_argument("--url", help="a running service (default: start one)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds for the API run")
    return parser.parse_args()


@contextmanager
def service(url: str | None) -> Iterator[str]:
    if url:
        yield url.rstrip("/")
        return
    with tempfile.TemporaryDirectory() as data_dir, running_server(Path(data_dir)) as server:
        yield server.base_url


def through_api(base_url: str, body: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    headers = log_in(base_url)
    created = post_json(f"{base_url}/api/v1/benchmarks", body, headers)
    location = f"{base_url}/api/v1/benchmarks/{created['id']}"
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        found = request(location, headers=headers)
        if found["status"] in FINISHED:
            if found["status"] != "succeeded":
                raise SystemExit(f"the API's benchmark {found['status']}: {found['error']}")
            print(f"API: {time.monotonic() - started:.0f} s, {found['stop']}", file=sys.stderr)
            return found
        time.sleep(POLL_S)
    raise SystemExit(f"the API's benchmark did not finish within {timeout_s:g} s")


def api_speedups(found: dict[str, Any]) -> dict[Key, Interval]:
    return {
        (entry["runner"], entry["workers"], entry["gil"]): (
            entry["speedup"],
            None if entry["speedup_ci"] is None else tuple(entry["speedup_ci"]),
        )
        for entry in found["results"]
        if entry["outcome"] == "succeeded" and entry["runner"] != "sequential"
    }


def through_cli(body_path: Path) -> dict[Key, Interval]:
    with tempfile.TemporaryDirectory() as scratch:
        document = Path(scratch) / "cli.json"
        started = time.monotonic()
        subprocess.run(  # noqa: S603 - this package's own command
            [
                *[sys.executable, "-m", "nogil_bench.cli"],
                *["measure", "--request", str(body_path), "--json", str(document)],
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        measurement = load_document(document)
    print(f"CLI: {time.monotonic() - started:.0f} s, {measurement.stop_text}", file=sys.stderr)
    return {
        (row.runner, row.workers, row.gil): (
            row.speedup.ratio,
            None
            if row.speedup.ci_low is None or row.speedup.ci_high is None
            else (row.speedup.ci_low, row.speedup.ci_high),
        )
        for row in measurement.rows
        if row.speedup is not None
    }


def overlap(a: Interval, b: Interval) -> bool | None:
    if a[1] is None or b[1] is None:
        return None
    return a[1][0] <= b[1][1] and b[1][0] <= a[1][1]


def shown(value: Interval) -> str:
    ratio, ci = value
    return f"{ratio:.2f}x" + ("" if ci is None else f" [{ci[0]:.2f}, {ci[1]:.2f}]")


def main() -> int:
    args = parse_args()
    body = json.loads(args.body.read_text())
    with service(args.url) as base_url:
        api = api_speedups(through_api(base_url, body, args.timeout))
    cli = through_cli(args.body)
    lines = [
        "| runner | workers | GIL | API speedup [95% CI] | CLI speedup [95% CI] | CIs overlap |",
        "|---|---|---|---|---|---|",
    ]
    verdicts = []
    for key in sorted(api.keys() & cli.keys()):
        verdicts.append(overlap(api[key], cli[key]))
        answer = {True: "yes", False: "**no**", None: "no CI"}[verdicts[-1]]
        runner, workers, gil = key
        lines.append(
            f"| {runner} | {workers} | {gil} | {shown(api[key])} | {shown(cli[key])} | {answer} |"
        )
    agreeing = sum(verdict is True for verdict in verdicts)
    lines += ["", f"CIs overlap for {agreeing} of {len(verdicts)} configurations."]
    print("\n".join(lines))
    return 0 if verdicts and agreeing == len(verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
