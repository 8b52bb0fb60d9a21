"""The engine's own cost per task on a user's function: `--count N` calls of a function doing
about 1 ms of pure-Python work, through the engine's path (each call timed and its result
digested, mapped on a runner) against a plain loop calling it, in the same process.

    .venv/bin/python scripts/bench_overhead.py                 # threads x1 and sequential
    .venv/bin/python -X gil=1 scripts/bench_overhead.py        # the same with the GIL on

On a noisy host a 1 s run drifts by more than the overhead, so the comparison is interleaved
finely: each round walks the N tasks in blocks of --block, and runs every block once plainly
and once through each engine path, in an order reversed every other block. The engine maps
each block as one call, so its per-map cost is paid N / block times (an overstatement, never
an understatement). Each round gives an overhead per task, (engine - loop) / N, and the report
is the median over rounds with its exact 95% CI (bench.stats.median_interval).
"""

import argparse
import statistics
import sys
import time
from collections.abc import Callable

from nogil_bench.bench.stats import median_interval
from nogil_bench.core import runtime
from nogil_bench.runners import BaseRunner, get_runner
from nogil_bench.workloads.plugin import function_work

TARGET_TASK_S = 0.001
_iterations = 1000


def busy(index: int) -> int:
    """About TARGET_TASK_S of interpreter work once calibrated; the result depends on index."""
    total = index
    for step in range(_iterations):
        total = (total * 31 + step) % 1_000_003
    return total


def calibrate() -> None:
    """Sets the loop count so that one call takes about TARGET_TASK_S here, on the quietest of
    five tries (a busy host only ever slows a try down)."""
    global _iterations  # noqa: PLW0603 - the one knob, set once before measuring
    tries = []
    for _ in range(5):
        started = time.perf_counter()
        for index in range(100):
            busy(index)
        tries.append((time.perf_counter() - started) / 100)
    _iterations = max(1, round(_iterations * TARGET_TASK_S / min(tries)))


def plain_loop(block: range) -> None:
    for index in block:
        busy(index)


def timed(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=1000, help="tasks per run (default 1000)")
    parser.add_argument("--block", type=int, default=50, help="tasks per block (default 50)")
    parser.add_argument("--rounds", type=int, default=20, help="rounds (default 20)")
    parser.add_argument("--runners", nargs="+", default=["threads", "sequential"])
    args = parser.parse_args()
    calibrate()
    work = function_work(busy, range(args.count), "busy")
    started = [get_runner(name)(1).__enter__() for name in args.runners]
    blocks = [
        range(first, min(first + args.block, args.count))
        for first in range(0, args.count, args.block)
    ]
    seconds: list[float] = []

    def through(runner: BaseRunner, block: range) -> Callable[[], object]:
        return lambda: work.run(runner, block, seconds)

    overheads_us: dict[str, list[float]] = {runner.name: [] for runner in started}
    loop_s: list[float] = []
    for round_index in range(args.rounds + 1):  # round 0 warms up: imports, threads, caches
        plain_s = 0.0
        engine_s = dict.fromkeys(overheads_us, 0.0)
        for block_index, block in enumerate(blocks):
            paths: list[tuple[str | None, Callable[[], object]]] = [
                (None, lambda block=block: plain_loop(block)),  # type: ignore[misc]
                *((runner.name, through(runner, block)) for runner in started),
            ]
            for name, path in paths if block_index % 2 == 0 else paths[::-1]:
                wall_s = timed(path)
                if name is None:
                    plain_s += wall_s
                else:
                    engine_s[name] += wall_s
            seconds.clear()
        if round_index == 0:
            continue
        loop_s.append(plain_s)
        for name, wall_s in engine_s.items():
            overheads_us[name].append((wall_s - plain_s) / args.count * 1e6)
    for runner in started:
        runner.__exit__(None, None, None)

    task_ms = statistics.median(loop_s) / args.count * 1e3
    gil = "on" if runtime.is_gil_enabled() else "off"
    print(
        f"{args.count} tasks of {task_ms:.3f} ms each (plain loop, median of {args.rounds} "
        f"rounds), blocks of {args.block}, GIL {gil}, {runtime.python_version()}"
    )
    print("| path | overhead per task, µs: median [95% CI] | share of a task |")
    print("|---|---|---|")
    for name, values in overheads_us.items():
        median = statistics.median(values)
        interval = median_interval(values)
        ci = "no CI" if interval is None else f"[{interval.low:.1f}, {interval.high:.1f}]"
        print(f"| {name} x1 | {median:.1f} {ci} | {median / (task_ms * 1e3):.2%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
