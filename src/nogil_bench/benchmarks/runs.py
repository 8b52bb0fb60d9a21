"""Running a claimed benchmark: every (runner, workers) configuration in turn, in this process,
each measured on its own with the pool started (and timed) before the work."""

import uuid
from collections.abc import Callable

from loguru import logger
from sqlalchemy import Engine
from sqlmodel import Session

from nogil_bench.bench.measure import RunMeter
from nogil_bench.bench.stats import efficiency, karp_flatt, percentile, speedup
from nogil_bench.benchmarks.models import Benchmark
from nogil_bench.benchmarks.schemas import BenchmarkEntry, BenchmarkSpec
from nogil_bench.core import runtime
from nogil_bench.core.db import write
from nogil_bench.core.models import Status, utc_now
from nogil_bench.runners import UnsupportedWorkError, get_runner
from nogil_bench.runners.base import warm_up
from nogil_bench.runners.deadline import run_with_deadline
from nogil_bench.runners.sequential import SequentialRunner
from nogil_bench.workloads.images import (
    ImageJob,
    SyntheticSource,
    check_runner_can_run,
    digest,
    run_jobs_captured,
)
from nogil_bench.workloads.model import Step


def configurations(spec: BenchmarkSpec) -> list[tuple[str, int]]:
    """sequential once (it has one worker whatever it is given), then each runner x workers."""
    return [(SequentialRunner.name, 1)] + [
        (runner, workers)
        for runner in spec.runners
        if runner != SequentialRunner.name
        for workers in spec.workers
    ]


def measure(
    runner_name: str, workers: int, jobs: list[ImageJob], *, timeout_s: float
) -> tuple[BenchmarkEntry, str]:
    """One configuration's entry (without the comparison fields) and its outputs' digest.
    ExecutionTimeoutError when it runs longer than `timeout_s`."""
    with get_runner(runner_name)(workers) as runner:
        with RunMeter() as setup:
            warm_up(runner)
        with RunMeter() as run:
            outcomes = run_with_deadline(
                runner, lambda running: run_jobs_captured(running, jobs), timeout_s=timeout_s
            )
            run.stop()  # while a process pool's workers still count
    errors = [outcome.error for outcome in outcomes if outcome.error is not None]
    latencies = [outcome.wall_s for outcome in outcomes]
    entry = BenchmarkEntry.model_validate(
        {
            "runner": runner_name,
            "workers": workers,
            "outcome": "failed" if errors else "succeeded",
            "error": f"{len(errors)} images failed, first: {errors[0]}" if errors else None,
            "setup_s": setup.wall_s,
            **run.figures(),
            "throughput_images_per_s": len(jobs) / run.wall_s,
            "latency_p50_s": percentile(latencies, 50),
            "latency_p95_s": percentile(latencies, 95),
        }
    )
    return entry, digest([outcome.value or b"" for outcome in outcomes])


def compare(entries: list[BenchmarkEntry], digests: dict[int, str]) -> list[BenchmarkEntry]:
    baseline = entries[0]
    compared = []
    for index, entry in enumerate(entries):
        if entry.wall_s is None or baseline.wall_s is None or entry.outcome != "succeeded":
            compared.append(entry)
            continue
        ratio = speedup(baseline.wall_s, entry.wall_s)
        compared.append(
            entry.model_copy(
                update={
                    "speedup": ratio,
                    "efficiency": efficiency(ratio, entry.workers),
                    "karp_flatt": karp_flatt(ratio, entry.workers),
                    "outputs_match": digests[index] == digests[0],
                }
            )
        )
    return compared


def execute(
    engine: Engine,
    benchmark_id: uuid.UUID,
    should_stop: Callable[[], bool],
    boot_id: uuid.UUID,
    *,
    timeout_s: float,
) -> None:
    """A claimed benchmark, configuration by configuration; a stop between two puts it back."""
    with Session(engine) as session:
        benchmark = session.get(Benchmark, benchmark_id)
        assert benchmark is not None
        spec = BenchmarkSpec.model_validate(benchmark.spec)
    steps = tuple(Step(step.op, step.params) for step in spec.pipeline)
    jobs = [
        ImageJob(SyntheticSource(spec.width, spec.height, spec.seed + index), steps)
        for index in range(spec.count)
    ]
    entries: list[BenchmarkEntry] = []
    digests: dict[int, str] = {}
    for runner_name, workers in configurations(spec):
        if should_stop():
            _requeue(engine, benchmark_id, boot_id)
            return
        try:
            check_runner_can_run(get_runner(runner_name), steps)
        except UnsupportedWorkError as error:
            entries.append(
                BenchmarkEntry(
                    runner=runner_name, workers=workers, outcome="unsupported", error=str(error)
                )
            )
            continue
        logger.info("benchmark {}: {} x {}", benchmark_id, runner_name, workers)
        entry, digests[len(entries)] = measure(runner_name, workers, jobs, timeout_s=timeout_s)
        entries.append(entry)
    results = [entry.model_dump() for entry in compare(entries, digests)]
    failed = [entry for entry in entries if entry.outcome == "failed"]

    def finish(session: Session) -> None:
        benchmark = session.get(Benchmark, benchmark_id, with_for_update=True)
        if benchmark is None or not running_by(benchmark, boot_id):
            return  # put back at a shutdown's deadline, or taken over after a lost lease
        benchmark.results = results
        benchmark.status = Status.FAILED if failed else Status.SUCCEEDED
        benchmark.error = f"{len(failed)} configurations had failing images" if failed else None
        benchmark.finished_at = utc_now()
        benchmark.lease_expires_at = None
        benchmark.gil_enabled = runtime.is_gil_enabled()
        session.add(benchmark)

    write(engine, finish)


def running_by(benchmark: Benchmark, boot_id: uuid.UUID) -> bool:
    return benchmark.status == Status.RUNNING and benchmark.boot_id == boot_id


def _requeue(engine: Engine, benchmark_id: uuid.UUID, boot_id: uuid.UUID) -> None:
    """Stopped between configurations: the benchmark runs again whole at the next start."""

    def requeue(session: Session) -> None:
        benchmark = session.get(Benchmark, benchmark_id, with_for_update=True)
        # Not if a drain's deadline put it back already: that counted it once.
        if benchmark is not None and running_by(benchmark, boot_id):
            benchmark.put_back()
            session.add(benchmark)

    write(engine, requeue)
