"""Running a claimed benchmark through the measurement engine (`nogil_bench.bench`), the same
one `nogil-bench measure` uses: every configuration in a fresh worker process of this
interpreter, started with the GIL off (the build's default) or `-X gil=1`, measured in paired,
interleaved rounds. While it measures, the benchmark's row carries how far it is (`progress`,
bench.progress.Progress as JSON), for its `GET`."""

import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from loguru import logger
from sqlalchemy import Engine
from sqlmodel import Session

from nogil_bench.bench.config import CEILING, Config
from nogil_bench.bench.document import to_json
from nogil_bench.bench.harness import MeasurementStoppedError, check_runners, measure_matrix
from nogil_bench.bench.plan import Matrix, Planned, this_interpreter
from nogil_bench.bench.progress import Progress
from nogil_bench.bench.results import Measurement, Unsupported
from nogil_bench.benchmarks.models import Benchmark
from nogil_bench.benchmarks.schemas import (
    BenchmarkComparison,
    BenchmarkEntry,
    BenchmarkReport,
    BenchmarkSpec,
)
from nogil_bench.core import runtime
from nogil_bench.core.db import write
from nogil_bench.core.models import Status, utc_now
from nogil_bench.runners.sequential import SequentialRunner

SEQUENTIAL = SequentialRunner.name
# The installed workload that a benchmark of `source` and `pipeline` measures.
IMAGES = "images"
# A running benchmark's progress is written at most this often (and at every block's end): a
# round can take milliseconds, and each write is a transaction the API's own writes wait for.
PROGRESS_EVERY_S = 2.0
# Progress is best effort: a busy database gets a couple of tries, then the measurement goes on.
PROGRESS_WRITE_ATTEMPTS = 2


def plan_matrix(spec: BenchmarkSpec) -> Matrix:
    """The engine's matrix for the benchmark: sequential, each runner at each worker count,
    and the host's ceiling, in each GIL mode asked for, on its installed workload (by name:
    the engine's workers look it up in the registry too)."""
    workload, params = workload_of(spec)
    return Matrix(
        interpreters=[this_interpreter()],
        gil_modes=spec.gil,
        workloads=[Config(workload, SEQUENTIAL, 1, warmups=spec.warmups, params=params)],
        runners=spec.runners,
        worker_counts=spec.workers,
    )


def workload_of(spec: BenchmarkSpec) -> tuple[str, dict[str, Any]]:
    """The installed workload and its parameters: the one named, or the synthetic images."""
    if spec.workload is not None:
        return spec.workload, spec.params
    return IMAGES, {
        "count": spec.count,
        "width": spec.width,
        "height": spec.height,
        "seed": spec.seed,
        "pipeline": [step.model_dump() for step in spec.pipeline or []],
    }


def plan(
    spec: BenchmarkSpec, *, timeout_s: float | None = None
) -> tuple[list[Planned], list[Unsupported]]:
    """The configurations to measure, less the runners that cannot run the work (asked in a
    worker process, harness.check_runners), which are reported with why."""
    matrix, unsupported = check_runners(plan_matrix(spec), timeout_s=timeout_s)
    return matrix.plan(), unsupported


def measure(
    planned: Sequence[Planned],
    spec: BenchmarkSpec,
    should_stop: Callable[[], bool],
    *,
    timeout_s: float,
    unsupported: Sequence[Unsupported] = (),
    on_progress: Callable[[Progress], None] | None = None,
) -> Measurement:
    """The engine, bounded by the execution time limit: past it, the rounds done so far are
    reported (DEADLINE), or it fails when not one round was done."""
    measurement = measure_matrix(
        planned,
        spec.design(),
        should_stop=should_stop,
        deadline_s=timeout_s,
        run_timeout_s=timeout_s,
        progress=logger.debug,
        on_progress=on_progress,
    )
    return replace(measurement, unsupported=list(unsupported))


def unsupported_entries(measurement: Measurement, spec: BenchmarkSpec) -> list[BenchmarkEntry]:
    """An entry per worker count and GIL mode for each runner that cannot run the work."""
    return [
        BenchmarkEntry(
            runner=found.runner, workers=workers, gil=gil, outcome="unsupported", error=found.reason
        )
        for found in measurement.unsupported
        for gil in spec.gil
        for workers in spec.workers
    ]


def report(
    measurement: Measurement, spec: BenchmarkSpec, document: dict[str, Any]
) -> BenchmarkReport:
    """What the API shows and stores, read from the engine's own document of the measurement
    (`bench.document`): an entry per configuration, every comparison with its verdict, and how
    the measurement went. `document` is to_json(measurement), which the benchmark also keeps."""
    rows = document["configurations"]
    baselines = {row["gil"]: row for row in rows if row["runner"] == SEQUENTIAL}
    # Images per second only where the tasks are known to be images; see BenchmarkEntry.
    images = spec.count if spec.workload is None else None
    entries = [_entry(row, baselines[row["gil"]], images) for row in rows]
    return BenchmarkReport(
        results=entries + unsupported_entries(measurement, spec),
        comparisons=[_comparison(comparison) for comparison in document["comparisons"]],
        rounds=document["rounds"],
        blocks=document["blocks"],
        stop=document["stop"],
        stop_text=document["stop_text"],
        steal_share=document["steal_share"],
        duration_s=document["duration_s"],
    )


def _entry(row: dict[str, Any], baseline: dict[str, Any], images: int | None) -> BenchmarkEntry:
    """A configuration from the document: its own figures, the medians of its runs' figures."""

    def median_of(figure: str) -> float:
        return statistics.median(float(run[figure]) for run in row["runs"])

    is_baseline = row is baseline
    speedup, speedup_ci = _interval(row["speedup"])
    ceiling_share, ceiling_share_ci = _interval(row["ceiling_share"])
    return BenchmarkEntry(
        runner=row["runner"],
        workers=row["workers"],
        gil=row["gil"],
        outcome="succeeded",
        setup_s=row["setup_s"],
        wall_s=row["wall_s_median"],
        wall_s_stdev=row["wall_s_stdev"],
        noisy=row["noisy"],
        runs_wall_s=row["wall_s"],
        runs_block=row["blocks"],
        warmups_s=row["warmups_s"],
        cpu_user_s=median_of("cpu_user_s"),
        cpu_system_s=median_of("cpu_system_s"),
        ctx_voluntary=round(median_of("ctx_voluntary")),
        ctx_involuntary=round(median_of("ctx_involuntary")),
        peak_rss_bytes=row["peak_rss_bytes"],
        throughput_images_per_s=None if images is None else images / row["wall_s_median"],
        latency_p50_s=median_of("task_s_p50"),
        latency_p95_s=median_of("task_s_p95"),
        steal_share=row["steal_share_median"],
        speedup=1.0 if is_baseline else speedup,
        speedup_ci=speedup_ci,
        speedup_verdict=None if row["speedup"] is None else row["speedup"]["text"],
        efficiency=1.0 if is_baseline else row["efficiency"],
        karp_flatt=row["karp_flatt"],
        ceiling_share=ceiling_share,
        ceiling_share_ci=ceiling_share_ci,
        outputs_match=row["output_digest"] == baseline["output_digest"],
    )


def _ci(comparison: dict[str, Any]) -> tuple[float, float] | None:
    if comparison["ci_low"] is None or comparison["ci_high"] is None:
        return None
    return comparison["ci_low"], comparison["ci_high"]


def _interval(
    comparison: dict[str, Any] | None,
) -> tuple[float | None, tuple[float, float] | None]:
    if comparison is None:
        return None, None
    return comparison["ratio"], _ci(comparison)


def _comparison(comparison: dict[str, Any]) -> BenchmarkComparison:
    return BenchmarkComparison(
        kind=comparison["kind"],
        baseline=comparison["baseline"],
        candidate=comparison["candidate"],
        pairs=comparison["n"],
        blocks=comparison["blocks"],
        ratio=comparison["ratio"],
        ci=_ci(comparison),
        verdict=comparison["verdict"],
        text=comparison["text"],
    )


def execute(
    engine: Engine,
    benchmark_id: uuid.UUID,
    should_stop: Callable[[], bool],
    boot_id: uuid.UUID,
    *,
    timeout_s: float,
) -> None:
    """A claimed benchmark, measured whole; a stop while it measures puts it back. Its row
    carries its progress while it measures, and none once it finished, failed or was put back."""
    with Session(engine) as session:
        benchmark = session.get(Benchmark, benchmark_id)
        assert benchmark is not None
        spec = BenchmarkSpec.model_validate(benchmark.spec)
        stale = benchmark.progress is not None  # an earlier attempt's, put back or taken over
    progress = ProgressWriter(engine, benchmark_id, boot_id)
    if stale:
        progress.clear()
    planned, unsupported = plan(spec, timeout_s=timeout_s)
    logger.info(
        "benchmark {}: {} configurations ({} with the ceiling), {} to {} blocks of {} rounds",
        benchmark_id,
        len(planned),
        sum(item.config.runner == CEILING for item in planned),
        spec.design().min_blocks,
        spec.design().max_blocks,
        spec.block_rounds,
    )
    try:
        measurement = measure(
            planned,
            spec,
            should_stop,
            timeout_s=timeout_s,
            unsupported=unsupported,
            on_progress=progress,
        )
    except MeasurementStoppedError:
        _requeue(engine, benchmark_id, boot_id)
        return
    except Exception:
        progress.clear()  # the work kind marks it failed, and a failed benchmark has no progress
        raise
    document = to_json(measurement)
    found = report(measurement, spec, document)
    logger.info("benchmark {}: {}", benchmark_id, found.stop_text)

    def finish(session: Session) -> None:
        benchmark = session.get(Benchmark, benchmark_id, with_for_update=True)
        if benchmark is None or not running_by(benchmark, boot_id):
            return  # put back at a shutdown's deadline, or taken over after a lost lease
        benchmark.results = [entry.model_dump(mode="json") for entry in found.results]
        benchmark.report = found.model_dump(mode="json", exclude={"results"})
        benchmark.document = document  # what the report page is drawn from
        benchmark.status = Status.SUCCEEDED
        benchmark.error = None
        benchmark.finished_at = utc_now()
        benchmark.lease_expires_at = None
        benchmark.gil_enabled = runtime.is_gil_enabled()
        benchmark.progress = None
        session.add(benchmark)

    write(engine, finish)


def running_by(benchmark: Benchmark, boot_id: uuid.UUID) -> bool:
    return benchmark.status == Status.RUNNING and benchmark.boot_id == boot_id


def _requeue(engine: Engine, benchmark_id: uuid.UUID, boot_id: uuid.UUID) -> None:
    """Stopped while measuring: the benchmark runs again whole at the next start."""

    def requeue(session: Session) -> None:
        benchmark = session.get(Benchmark, benchmark_id, with_for_update=True)
        # Not if a drain's deadline put it back already: that counted it once.
        if benchmark is not None and running_by(benchmark, boot_id):
            benchmark.put_back()
            benchmark.progress = None
            session.add(benchmark)

    write(engine, requeue)


class ProgressWriter:
    """The engine's progress (harness.measure_matrix's on_progress) into the benchmark's row, for
    its `GET`: the first report at once, then at most one every PROGRESS_EVERY_S, but always the
    one at a block's end (its intervals and estimate are new). Only while this boot still runs
    the row: one put back or taken over meanwhile is left alone.

    Best effort: a write that fails (the database busy past a couple of tries, or down) is
    logged and skipped, never failing the measurement it reports on. It runs between rounds, in
    the measuring thread, so that no write overlaps a timed run."""

    def __init__(
        self,
        engine: Engine,
        benchmark_id: uuid.UUID,
        boot_id: uuid.UUID,
        *,
        every_s: float = PROGRESS_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.benchmark_id = benchmark_id
        self.boot_id = boot_id
        self.every_s = every_s
        self.clock = clock
        self.written_at: float | None = None

    def __call__(self, progress: Progress) -> None:
        now = self.clock()
        due = self.written_at is None or now - self.written_at >= self.every_s
        if due or progress.at_block_end:
            self.written_at = now
            self.store(progress.to_json())

    def clear(self) -> None:
        self.store(None)

    def store(self, progress: dict[str, Any] | None) -> None:
        def update(session: Session) -> None:
            benchmark = session.get(Benchmark, self.benchmark_id, with_for_update=True)
            if benchmark is not None and running_by(benchmark, self.boot_id):
                benchmark.progress = progress
                session.add(benchmark)

        try:
            write(self.engine, update, attempts=PROGRESS_WRITE_ATTEMPTS)
        except Exception as error:  # best effort: it must not fail the measurement
            logger.warning("benchmark {}: progress not written: {}", self.benchmark_id, error)
