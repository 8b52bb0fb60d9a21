"""Measurements built from fixed rows, for specifying what a page shows."""

import random
from dataclasses import replace

from nogil_bench.bench.results import Design, Measurement, Row, StopReason, analyse
from tests.utils.bench_rows import row

HOST = {
    "python_version": "3.14.7",
    "implementation": "cpython",
    "free_threaded": True,
    "config_args": "'--disable-gil'",
    "cpu_count": 2,
    "cpu_model": "AMD EPYC",
    "memory_bytes": 24 * 1024**3,
    "platform": "Linux-6.18-x86_64",
    "packages": {"nogil-bench": "0.1.0"},
    "load_average": [1.5, 1.2, 0.9],
    "recorded_at": "2026-12-02T18:30:00+00:00",
}


def walls(seconds: float, rounds: int = 6, seed: int = 0) -> list[float]:
    noise = random.Random(seed)  # noqa: S311 (fixed noise, not a secret)
    return [seconds * (1 + noise.uniform(-0.02, 0.02)) for _ in range(rounds)]


def two_workloads() -> Measurement:
    """fib and images, GIL off then on, in the engine's order: by GIL mode, then workload."""
    rows = []
    for gil in (0, 1):
        for workload in ("fib", "images"):
            rows += [
                row("sequential", 1, walls(1.0, seed=gil), gil=gil, workload=workload),
                row("threads", 2, walls(0.55, seed=gil + 4), gil=gil, workload=workload),
            ]
    found = measurement(rows=rows)
    descriptions = {"fib": "fib(n)", "images": "synthetic images"}
    return replace(found, environment=found.environment | {"workloads": descriptions})


def measurement(workload: str = "fib", *, rows: list[Row] | None = None) -> Measurement:
    """Sequential, threads and processes at 2 workers and the ceiling, GIL off and on: threads
    win with the GIL off, processes are as fast as threads, the GIL on makes threads slower."""
    if rows is None:
        rows = []
        for gil in (0, 1):
            threads = 0.52 if gil == 0 else 1.05
            rows += [
                row("sequential", 1, walls(1.0, seed=gil), gil=gil, workload=workload),
                row("ceiling", 2, walls(0.51, seed=gil + 2), gil=gil, workload=workload),
                row("threads", 2, walls(threads, seed=gil + 4), gil=gil, workload=workload),
                row("processes", 2, walls(0.53, seed=gil + 6), gil=gil, workload=workload),
            ]
    return Measurement(
        rows=rows,
        findings=analyse(rows),
        rounds=6,
        blocks=2,
        design=Design(min_blocks=2, max_blocks=2, block_rounds=3),
        stop=StopReason.BOUND,
        steal_share=0.01,
        duration_s=42.0,
        environment=HOST | {"workloads": {workload: f"{workload}, as described by its plugin"}},
    )
