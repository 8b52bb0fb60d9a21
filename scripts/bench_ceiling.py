"""How much parallel speed this host gives right now, and how much of it threads reach.

A speedup target such as "threads at 2 workers >= 1.85x" presumes the host delivers 2 CPUs'
worth of work. A VM's CPUs are shared, so that varies. This measures the ceiling directly: the
same pure-Python image work, run three ways, in rounds that interleave them:

    sequential  one process, one thread, all the images
    processes   K independent processes started together, a K-th of the images each: nothing
                shared, so no software can do better (the ceiling)
    threads     one process, the threads runner with K workers, all the images

Each round's speedups are paired (same minute, same host state), and their medians reported.

    .venv/bin/python scripts/bench_ceiling.py                 # K = the CPU count, 9 rounds
    .venv/bin/python scripts/bench_ceiling.py --rounds 15 --gil 1
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from nogil_bench.bench.workloads import PURE_STEPS
from nogil_bench.core.runtime import cpu_count
from nogil_bench.runners import get_runner
from nogil_bench.runners.base import warm_up
from nogil_bench.workloads.images import ImageJob, SyntheticSource, run_jobs, validate_steps

START_DELAY_S = 1.0  # lets every process of a round import and warm up before the start


@dataclass(frozen=True, slots=True)
class Round:
    sequential_s: float
    processes_s: float
    threads_s: float

    @property
    def ceiling(self) -> float:
        return self.sequential_s / self.processes_s

    @property
    def threads(self) -> float:
        return self.sequential_s / self.threads_s


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=cpu_count(), help="K (default: CPUs)")
    parser.add_argument("--rounds", type=int, default=9, help="default: %(default)s")
    parser.add_argument("--images", type=int, default=32, help="default: %(default)s")
    parser.add_argument("--size", type=int, default=192, help="image side (default: 192)")
    parser.add_argument("--gil", type=int, choices=[0, 1], default=0)
    parser.add_argument("--worker", nargs=4, metavar=("FIRST", "COUNT", "THREADS", "START"))
    args = parser.parse_args()
    if args.workers < 1 or args.rounds < 1 or args.images < args.workers:
        parser.error("need workers >= 1, rounds >= 1 and images >= workers")
    return args


def worker(size: int, first: int, count: int, threads: int, start_at: float) -> float:
    """In a fresh process: images first..first+count on `threads` threads, timed from a shared
    start instant (pool started and warmed before it)."""
    steps = validate_steps(PURE_STEPS)
    jobs = [
        ImageJob(SyntheticSource(size, size, seed), steps) for seed in range(first, first + count)
    ]
    with get_runner("sequential" if threads == 1 else "threads")(threads) as runner:
        warm_up(runner)
        run_jobs(runner, jobs[:1])  # the first run of the code is not measured
        while (wait_s := start_at - time.time()) > 0:
            time.sleep(min(wait_s, 0.01))
        started = time.perf_counter()
        run_jobs(runner, jobs)
        return time.perf_counter() - started


def timed(args: argparse.Namespace, parts: list[tuple[int, int]], threads: int) -> float:
    """Wall time from the common start until the last of the processes finished."""
    start_at = time.time() + START_DELAY_S
    command = [sys.executable, "-X", f"gil={args.gil}", str(Path(__file__).resolve())]
    options = [
        "--size",
        str(args.size),
        "--workers",
        str(args.workers),
        "--images",
        str(args.images),
    ]
    processes = [
        subprocess.Popen(  # noqa: S603 - this script, with its own arguments
            [*command, *options, "--worker", str(first), str(count), str(threads), str(start_at)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for first, count in parts
    ]
    seconds = [float(process.communicate()[0]) for process in processes]
    if any(process.returncode for process in processes):
        raise SystemExit("a worker process failed")
    return max(seconds)


def main() -> int:
    args = parse_args()
    if args.worker:
        first, count, threads, start_at = args.worker
        print(json.dumps(worker(args.size, int(first), int(count), int(threads), float(start_at))))
        return 0
    k, n = args.workers, args.images
    share = [n // k + (1 if part < n % k else 0) for part in range(k)]
    split = [(sum(share[:part]), share[part]) for part in range(k)]
    rounds: list[Round] = []
    print(f"{n} images {args.size}x{args.size}, box_blur + sepia, K={k}, GIL={args.gil}")
    for number in range(1, args.rounds + 1):
        measured = Round(
            sequential_s=timed(args, [(0, n)], threads=1),
            processes_s=timed(args, split, threads=1),
            threads_s=timed(args, [(0, n)], threads=k),
        )
        rounds.append(measured)
        print(
            f"round {number}: sequential {measured.sequential_s:.3f} s, "
            f"{k} processes {measured.processes_s:.3f} s ({measured.ceiling:.2f}x), "
            f"{k} threads {measured.threads_s:.3f} s ({measured.threads:.2f}x)",
            file=sys.stderr,
        )
    print(markdown(rounds, k))
    return 0


def markdown(rounds: list[Round], k: int) -> str:
    ceilings = [measured.ceiling for measured in rounds]
    threads = [measured.threads for measured in rounds]
    shares = [measured.threads / measured.ceiling for measured in rounds]
    lines = [
        "| measure | median | min | max |",
        "|---|---:|---:|---:|",
        row(f"ceiling: {k} independent processes vs sequential", ceilings, "x"),
        row(f"threads ({k} workers) vs sequential", threads, "x"),
        row("threads as a share of the ceiling (paired by round)", shares, "%"),
    ]
    return "\n".join(lines)


def row(label: str, values: list[float], unit: str) -> str:
    def shown(value: float) -> str:
        return f"{value * 100:.0f}%" if unit == "%" else f"{value:.2f}x"

    cells = (statistics.median(values), min(values), max(values))
    return f"| {label} | " + " | ".join(shown(value) for value in cells) + " |"


if __name__ == "__main__":
    sys.exit(main())
