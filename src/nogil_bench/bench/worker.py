"""One benchmark configuration, measured in this (fresh) process: JSON in on stdin, out on stdout.

`python -X gil=N -m nogil_bench.bench.worker < config.json`. The pool is started and primed
first, and that setup is timed apart from the steady-state runs; warmup runs are discarded.
"""

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import psutil

from nogil_bench.bench.environment import describe_environment
from nogil_bench.bench.measure import peak_rss_bytes, usage_between, usage_by_pid
from nogil_bench.bench.stats import percentile
from nogil_bench.bench.workloads import build_workload
from nogil_bench.runners import get_runner
from nogil_bench.runners.base import warm_up


@dataclass(frozen=True, slots=True)
class Config:
    workload: str
    runner: str
    workers: int
    warmups: int = 1
    repeats: int = 5
    quick: bool = False
    fib_n: int = 30
    fib_tasks: int = 4


@dataclass(slots=True)
class RunResult:
    wall_s: float
    cpu_user_s: float
    cpu_system_s: float
    ctx_voluntary: int
    ctx_involuntary: int
    task_s_p50: float
    task_s_p95: float


@dataclass(slots=True)
class ConfigResult:
    config: Config
    environment: dict[str, object]
    setup_s: float
    teardown_s: float
    peak_rss_bytes: int
    output_digest: str
    runs: list[RunResult] = field(default_factory=list)

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> ConfigResult:
        return cls(
            **document
            | {
                "config": Config(**document["config"]),
                "runs": [RunResult(**run) for run in document["runs"]],
            }
        )


def measure(config: Config) -> ConfigResult:
    workload = build_workload(
        config.workload, quick=config.quick, fib_n=config.fib_n, fib_tasks=config.fib_tasks
    )
    me = psutil.Process()
    started = time.perf_counter()
    runner = get_runner(config.runner)(config.workers)
    runner.__enter__()
    try:
        # Every worker started (processes spawned, interpreters created) before timing begins.
        warm_up(runner)
        setup_s = time.perf_counter() - started
        digests: set[str] = set()
        for _ in range(config.warmups):
            digests.add(workload.run(runner, []))
        runs: list[RunResult] = []
        for _ in range(config.repeats):
            task_seconds: list[float] = []
            before = usage_by_pid(me)
            started = time.perf_counter()
            digests.add(workload.run(runner, task_seconds))
            wall_s = time.perf_counter() - started
            used = usage_between(before, usage_by_pid(me))
            runs.append(
                RunResult(
                    wall_s,
                    used.cpu_user_s,
                    used.cpu_system_s,
                    used.ctx_voluntary,
                    used.ctx_involuntary,
                    percentile(task_seconds, 50),
                    percentile(task_seconds, 95),
                )
            )
        peak = peak_rss_bytes(me)
    finally:
        stopping = time.perf_counter()
        runner.__exit__(None, None, None)
        teardown_s = time.perf_counter() - stopping
    if len(digests) != 1:
        raise RuntimeError(f"{config}: outputs differ between runs of the same configuration")
    return ConfigResult(
        config, describe_environment(), setup_s, teardown_s, peak, digests.pop(), runs
    )


def main() -> None:
    config = Config(**json.load(sys.stdin))
    json.dump(asdict(measure(config)), sys.stdout)


if __name__ == "__main__":
    main()
