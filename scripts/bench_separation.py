"""Workers by kind of work, measured (issue 26): does a benchmark on its own worker keep its
figures while tiny jobs flow through a jobs worker beside it?

    .venv/bin/python scripts/bench_separation.py                  # 2 ABBA cycles, Redis
    .venv/bin/python scripts/bench_separation.py --cycles 3 --broker-url amqp://... --json sep.json

It starts a redis-server of its own (or takes --broker-url, e.g. a RabbitMQ), a service on
SQLite with that broker, one `nogil-bench worker --queues benchmarks` and one `--queues jobs`,
as compose.distributed.yaml runs them. Then the same benchmark (a pure-Python blur on
`sequential` and `threads` x 2, GIL off, --repeats rounds) runs in each condition, in ABBA
order per cycle (idle, busy, busy, idle), so that a slow spell of the host lands on both:

  idle  nothing else queued;
  busy  --jobs tiny jobs (a 64x64 invert on `sequential`) posted from the benchmark's start,
        and more as long as it runs, so that jobs flow through the jobs worker throughout.

For each benchmark: the relative width of each speedup's 95% CI ((high - low) / speedup), and
the sequential wall time; for busy runs, the jobs completed and their rate while it ran. Each
cycle ends with --jobs jobs alone (no benchmark), for their rate on a quiet machine. The
summary pairs each busy benchmark with the idle one beside it (A B, B A) and gives the median
ratio busy / idle of threads x2's CI width and of the sequential wall, with its 95% CI (exact
binomial, bench/stats.py; 3 cycles or more).
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench_workers import TINY, UNLIMITED, Client, jobs_per_second, moment
from live_server import BROKER_URL_HELP, Worker, service_with_broker

from nogil_bench.bench.stats import median_interval

BENCHMARK = {
    "source": {"count": 8, "width": 96, "height": 96},
    "pipeline": [{"op": "box_blur", "params": {"radius": 2}}],
    "runners": ["sequential", "threads"],
    "workers": [2],
    "gil": [0],
    "warmups": 1,
}
WAIT_S = 900.0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=2, help="ABBA cycles (default: 2)")
    parser.add_argument("--repeats", type=int, default=6, help="rounds per benchmark (default: 6)")
    parser.add_argument(
        "--jobs", type=int, default=1000, help="jobs posted per busy run, at least (default: 1000)"
    )
    parser.add_argument("--broker-url", help=BROKER_URL_HELP)
    parser.add_argument("--json", type=Path, help="write the figures here too")
    return parser.parse_args(argv)


class JobFlow:
    """Posts tiny jobs from a thread until stopped (and at least `count`); counts what
    finished while it flowed."""

    def __init__(self, client: Client, count: int) -> None:
        self.client, self.count = client, count
        self.stopping = threading.Event()
        self.posted: list[str] = []
        self.thread = threading.Thread(target=self.post, daemon=True)

    def post(self) -> None:
        while len(self.posted) < self.count or not self.stopping.is_set():
            self.posted.append(self.client.submit(TINY))
            if len(self.posted) >= self.count:  # then about as fast as one worker takes them
                time.sleep(1 / 60)

    def __enter__(self) -> JobFlow:
        self.started = time.time()
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopping.set()
        self.thread.join()

    def finished_between(self, start: float, end: float) -> int:
        """Jobs that finished within [start, end] (seconds since the epoch)."""
        jobs = self.client.wait(self.posted)
        return sum(start <= moment(job["finished_at"]) <= end for job in jobs)


def run_benchmark(client: Client, repeats: int) -> dict[str, Any]:
    response = client.http.post("/benchmarks", json=BENCHMARK | {"repeats": repeats})
    response.raise_for_status()
    location = f"/benchmarks/{response.json()['id']}"
    deadline = time.monotonic() + WAIT_S
    while (benchmark := client.http.get(location).json())["status"] not in {
        "succeeded",
        "failed",
        "cancelled",
    }:
        if time.monotonic() > deadline:
            raise SystemExit("the benchmark did not finish in time")
        time.sleep(0.5)
    if benchmark["status"] != "succeeded":
        raise SystemExit(f"benchmark {benchmark['status']}: {benchmark.get('error')}")
    done: dict[str, Any] = benchmark
    return done


def figures(benchmark: dict[str, Any]) -> dict[str, Any]:
    """Each speedup's relative CI width, and the sequential wall time."""
    widths = {}
    sequential = None
    for entry in benchmark["results"]:
        if entry["runner"] == "sequential":
            sequential = entry["wall_s"]
        if entry.get("speedup") and entry.get("speedup_ci"):
            low, high = entry["speedup_ci"]
            widths[f"{entry['runner']} x{entry['workers']}"] = (high - low) / entry["speedup"]
    return {
        "ci_widths": widths,
        "sequential_wall_s": sequential,
        "speedups": {
            f"{entry['runner']} x{entry['workers']}": entry.get("speedup")
            for entry in benchmark["results"]
            if entry.get("speedup")
        },
        "started_at": moment(benchmark["started_at"]),
        "finished_at": moment(benchmark["finished_at"]),
    }


def paired(runs: Sequence[dict[str, Any]], figure: Any) -> str:
    """busy / idle of `figure(run)` over adjacent pairs: the median and its 95% CI."""
    ratios = [
        figure(busy) / figure(idle)
        for first, second in zip(runs[::2], runs[1::2], strict=True)
        for idle, busy in [(first, second) if first["condition"] == "idle" else (second, first)]
    ]
    interval = median_interval(ratios)
    ci = f" [{interval.low:.2f}, {interval.high:.2f}]" if interval else " (no CI: < 6 pairs)"
    return f"{statistics.median(ratios):.2f}x{ci} over {len(ratios)} pairs"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-separation-"))
    runs: list[dict[str, Any]] = []
    with ExitStack() as stack:
        service, cluster = stack.enter_context(
            service_with_broker(work, args.broker_url, UNLIMITED)
        )
        for queue in ("benchmarks", "jobs"):
            worker = Worker(f"{queue}-1", work / queue, cluster, ("worker", "--queues", queue))
            stack.callback(worker.stop)
        client = Client(service)
        client.wait([client.submit(TINY) for _ in range(5)])  # warm-up
        alone: list[float] = []
        for cycle in range(args.cycles):
            for condition in ("idle", "busy", "busy", "idle"):
                if condition == "idle":
                    run = figures(run_benchmark(client, args.repeats))
                else:
                    with JobFlow(Client(service), args.jobs) as flow:
                        run = figures(run_benchmark(client, args.repeats))
                    done = flow.finished_between(run["started_at"], run["finished_at"])
                    seconds = run["finished_at"] - run["started_at"]
                    run |= {"jobs_posted": len(flow.posted), "jobs_done_during": done}
                    run["jobs_per_s_during"] = done / seconds
                run["condition"] = condition
                runs.append(run)
                widths = ", ".join(f"{k} {v:.1%}" for k, v in run["ci_widths"].items())
                extra = (
                    f"; {run['jobs_done_during']} jobs done during it "
                    f"({run['jobs_per_s_during']:.1f}/s)"
                    if condition == "busy"
                    else ""
                )
                print(
                    f"cycle {cycle + 1} {condition}: CI widths {widths}; sequential "
                    f"{run['sequential_wall_s']:.3f} s{extra}",
                    flush=True,
                )
            alone.append(jobs_per_second(client, args.jobs, TINY))
            print(f"cycle {cycle + 1}: {args.jobs} jobs alone, {alone[-1]:.1f}/s", flush=True)
    summary: dict[str, Any] = {}
    for condition in ("idle", "busy"):
        chosen = [run for run in runs if run["condition"] == condition]
        summary[condition] = {
            "median_ci_width": statistics.median(
                width for run in chosen for width in run["ci_widths"].values()
            ),
            "median_sequential_wall_s": statistics.median(
                run["sequential_wall_s"] for run in chosen
            ),
            "runs": len(chosen),
        }
    busy = [run for run in runs if run["condition"] == "busy"]
    summary["busy"]["median_jobs_per_s_during"] = statistics.median(
        run["jobs_per_s_during"] for run in busy
    )
    summary["jobs_alone_per_s"] = alone
    summary["busy_vs_idle_ci_width"] = paired(runs, lambda run: run["ci_widths"]["threads x2"])
    summary["busy_vs_idle_sequential_wall"] = paired(runs, lambda run: run["sequential_wall_s"])
    print()
    for condition in ("idle", "busy"):
        figures_of = summary[condition]
        print(
            f"{condition}: median CI width {figures_of['median_ci_width']:.1%}, median "
            f"sequential wall {figures_of['median_sequential_wall_s']:.3f} s "
            f"({figures_of['runs']} benchmarks)"
        )
    rate = summary["busy"]["median_jobs_per_s_during"]
    print(f"jobs completed per second while a benchmark ran: {rate:.1f}")
    print(f"jobs completed per second alone: {statistics.median(alone):.1f} (median of {alone})")
    print(f"threads x2 CI width, busy / idle: {summary['busy_vs_idle_ci_width']}")
    print(f"sequential wall, busy / idle:     {summary['busy_vs_idle_sequential_wall']}")
    if args.json:
        document = {
            "broker": (args.broker_url or "redis").split(":")[0],
            "cpus": os.cpu_count(),
            "benchmark": BENCHMARK | {"repeats": args.repeats},
            "runs": runs,
            "summary": summary,
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
