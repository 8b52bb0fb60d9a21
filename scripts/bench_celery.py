"""Is prefork still needed for CPU-bound Celery work once the GIL is off? (issue 14)

    .venv/bin/python scripts/bench_celery.py                     # 10 rounds, both workloads
    .venv/bin/python scripts/bench_celery.py --quick --rounds 6 --json celery.json
    .venv/bin/python scripts/bench_celery.py --report celery.json   # its report again

Local `threads` x2 against Celery task workers with the thread pool x2 (`celery-threads`) and
with the prefork pool x2 (`celery-prefork`), on the same images. It starts its own
redis-server (Debian's package) and one task worker per pool kind, then:

  speedup     the measurement engine (nogil_bench.bench): every configuration in a fresh
              process, rounds interleaved, speedup over sequential as the median of per-round
              ratios with its exact 95% CI and a verdict, each runner against local threads,
              and the host's ceiling; the pure-Python and the small-batch workloads.
  overhead    what one task costs on each runner, no-op tasks, rounds interleaved (order
              reversed every other round): `round trip` is one task mapped alone (send, run,
              result back); `in a map` is the wall time of a --map-tasks map divided by its
              tasks, two at a time. Median [95% CI] over the rounds.
  pools       celery-threads against celery-prefork directly, per round, with a verdict.
  memory      peak RSS (VmHWM) of each task worker, its process and its pool's children, and
              of the caller's side for every configuration (the engine's figure).

Confidence intervals are exact binomial intervals for the median (bench/stats.py).
"""

import argparse
import json
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from nogil_bench.bench.config import Config
from nogil_bench.bench.document import from_json, to_json
from nogil_bench.bench.harness import measure_matrix
from nogil_bench.bench.plan import Matrix, this_interpreter
from nogil_bench.bench.report import markdown
from nogil_bench.bench.results import Design, Measurement
from nogil_bench.bench.stats import compare, median_interval, paired_ratios
from nogil_bench.core import runtime
from nogil_bench.core.config import get_settings
from nogil_bench.runners import BaseRunner, get_runner
from nogil_bench.workloads.registry import params_to_json, parse_params

sys.path.insert(0, str(Path(__file__).parent))
from live_server import Worker, redis_server

RUNNERS = ("threads", "celery-threads", "celery-prefork")
WORKLOADS = ("pure-python", "small-batch")
WORKERS = 2
MIB = 2**20


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10, help="default: %(default)s")
    parser.add_argument("--quick", action="store_true", help="the workloads' quick sizes")
    parser.add_argument(
        "--gil", type=int, choices=(0, 1), default=0, help="GIL mode of every side (default: 0)"
    )
    parser.add_argument(
        "--map-tasks", type=int, default=200, help="no-op tasks per map (default: %(default)s)"
    )
    parser.add_argument("--json", type=Path, help="write the figures here too")
    parser.add_argument(
        "--report", type=Path, metavar="JSON", help="print the report of an earlier --json, only"
    )
    return parser.parse_args(argv)


def interval(values: Sequence[float]) -> dict[str, Any]:
    found = median_interval(values)
    return {
        "median": statistics.median(values),
        "ci": None if found is None else [found.low, found.high],
        "values": list(values),
    }


def interval_text(figure: dict[str, Any]) -> str:
    if figure["ci"] is None:
        return f"{figure['median']:.2f} (no CI)"
    low, high = figure["ci"]
    return f"{figure['median']:.2f} [{low:.2f}, {high:.2f}]"


def task_overheads(rounds: int, map_tasks: int) -> dict[str, dict[str, Any]]:
    """ms per no-op task on each runner: alone (a round trip) and in a map of `map_tasks`."""
    alone: dict[str, list[float]] = {name: [] for name in RUNNERS}
    in_map: dict[str, list[float]] = {name: [] for name in RUNNERS}
    with ExitStack() as stack:
        runners: dict[str, BaseRunner] = {
            name: stack.enter_context(get_runner(name)(WORKERS)) for name in RUNNERS
        }
        for runner in runners.values():  # warm-up: connections, pools, imports
            runner.map(abs, range(-20, 0))
        for round_index in range(rounds):
            order = RUNNERS if round_index % 2 == 0 else RUNNERS[::-1]
            for name in order:
                runner = runners[name]
                single = []
                for _ in range(10):
                    started = time.perf_counter()
                    runner.map(abs, [-1])
                    single.append(time.perf_counter() - started)
                alone[name].append(statistics.median(single) * 1000)
                started = time.perf_counter()
                runner.map(abs, range(-map_tasks, 0))
                in_map[name].append((time.perf_counter() - started) / map_tasks * 1000)
            print(
                f"overhead round {round_index + 1}/{rounds}: "
                + ", ".join(
                    f"{name} {alone[name][-1]:.2f} / {in_map[name][-1]:.3f} ms" for name in RUNNERS
                ),
                flush=True,
            )
    return {
        name: {"round_trip_ms": interval(alone[name]), "in_map_ms": interval(in_map[name])}
        for name in RUNNERS
    }


def pools_compared(measurement: Measurement) -> list[str]:
    """celery-prefork against celery-threads, per workload: the ratio of their walls in each
    round (> 1: the thread pool was faster), median [95% CI] and a verdict."""
    lines = []
    for workload in WORKLOADS:
        rows = {row.runner: row for row in measurement.rows if row.workload == workload}
        if "celery-threads" in rows and "celery-prefork" in rows:
            ratios = paired_ratios(rows["celery-prefork"].wall_s, rows["celery-threads"].wall_s)
            found = compare("celery-prefork", "celery-threads", ratios)
            lines.append(f"- {workload}: the thread pool against prefork: {found.text}")
    return lines


def report(results: dict[str, Any]) -> None:
    measurement = from_json(results["measurement"])
    overheads = results["overhead"]
    print()
    print(markdown(measurement))
    print()
    print("\n".join(pools_compared(measurement)))
    print()
    print("| runner | one task alone, ms [95% CI] | per task in a map, ms [95% CI] |")
    print("|---|---|---|")
    for name, figures in overheads.items():
        print(
            f"| {name} | {interval_text(figures['round_trip_ms'])} "
            f"| {interval_text(figures['in_map_ms'])} |"
        )
    print()
    for pool, peak in results["worker_peak_rss_bytes"].items():
        print(f"peak RSS, {pool} task worker and its pool's children: {peak / MIB:.0f} MiB")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report:
        report(json.loads(args.report.read_text()))
        return 0
    if runtime.is_gil_enabled() != bool(args.gil):
        # The overhead phase runs the runners here, in this process's GIL mode, which the
        # celery runners require to be the task workers'.
        os.execv(sys.executable, [sys.executable, "-X", f"gil={args.gil}", *sys.argv])  # noqa: S606
    work = Path(tempfile.mkdtemp(prefix="bench-celery-"))
    results: dict[str, Any] = {"rounds": args.rounds, "gil": args.gil, "cpus": os.cpu_count()}
    with ExitStack() as stack:
        broker_url = stack.enter_context(redis_server())
        secret = secrets.token_urlsafe(32)
        cluster = {"BROKER_URL": broker_url, "SECRET_KEY": secret, "LOG_LEVEL": "INFO"}
        os.environ |= {"NOGIL_BENCH_BROKER_URL": broker_url, "NOGIL_BENCH_SECRET_KEY": secret}
        os.environ["PYTHON_GIL"] = str(args.gil)  # the task workers' GIL mode
        get_settings.cache_clear()
        workers = {
            pool: Worker(
                f"tasks-{pool}",
                work / pool,
                cluster,
                ("task-worker", "--pool", pool, "--concurrency", str(WORKERS)),
            )
            for pool in ("threads", "prefork")
        }
        for worker in workers.values():
            stack.callback(worker.stop)

        templates = [
            Config(
                name,
                "sequential",
                1,
                params=params_to_json(name, parse_params(name, {}, quick=args.quick)),
            )
            for name in WORKLOADS
        ]
        plan = Matrix([this_interpreter()], [args.gil], templates, RUNNERS, [WORKERS]).plan()
        # The rounds in two blocks of fresh processes: the fewest with an interval.
        blocks = Design(2, 2, block_rounds=max(1, args.rounds // 2), target_ci=0.0)
        measurement = measure_matrix(plan, blocks)
        overheads = task_overheads(args.rounds, args.map_tasks)
        results |= {
            "measurement": to_json(measurement),
            "overhead": overheads,
            "worker_peak_rss_bytes": {
                pool: worker.peak_rss_bytes() for pool, worker in workers.items()
            },
            "caller_peak_rss_bytes": {row.title: row.peak_rss_bytes for row in measurement.rows},
        }
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
