import json
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import defer
from sqlmodel import Session, select

from nogil_bench.bench.chart import ChartPoint, render_speedup_chart
from nogil_bench.bench.config import CEILING
from nogil_bench.bench.pyperf_export import PyperfBenchmark, pyperf_suite
from nogil_bench.bench.results import blocks_for
from nogil_bench.bench.stats import MIN_CI_BLOCKS
from nogil_bench.benchmarks.models import Benchmark
from nogil_bench.benchmarks.schemas import (
    BenchmarkComparison,
    BenchmarkCreate,
    BenchmarkEntry,
    BenchmarkProgress,
    BenchmarkPublic,
    BenchmarkSpec,
    WorkloadIn,
    WorkloadPublic,
)
from nogil_bench.core import runtime
from nogil_bench.core.config import Settings
from nogil_bench.core.db import get_owned, newest_first, write
from nogil_bench.core.errors import (
    ConflictError,
    InvalidInputError,
)
from nogil_bench.core.idempotency import Answer, Submission, fingerprint, submit_once
from nogil_bench.core.models import cancel_or_delete, check_queue_room
from nogil_bench.jobs import service as job_service
from nogil_bench.jobs.schemas import StepIn, SyntheticSource
from nogil_bench.runners import get_runner, local_runners
from nogil_bench.runners.sequential import SequentialRunner
from nogil_bench.workloads.builtin import ImageParams
from nogil_bench.workloads.registry import (
    InvalidParamsError,
    UnknownWorkloadError,
    params_schema,
    params_to_json,
    parse_params,
    workloads,
)


def check_request(request: BenchmarkCreate, settings: Settings) -> BenchmarkSpec:
    work = check_work(request, settings)
    if request.runners == []:
        raise InvalidInputError("runners is empty; leave it out to compare every runner")
    if request.workers == []:
        raise InvalidInputError("workers is empty; leave it out for 1 and the CPU count")
    runners = list(dict.fromkeys(request.runners or local_runners()))
    workers = sorted(set(request.workers or {1, min(runtime.cpu_count(), settings.MAX_WORKERS)}))
    for runner in runners:
        job_service.check_runner(runner, settings)
    for count in workers:
        job_service.check_workers(count, settings)
    if SequentialRunner.name not in runners:
        runners.insert(0, SequentialRunner.name)
    if request.gil == []:
        raise InvalidInputError("gil is empty; leave it out to measure both GIL modes")
    free_threaded = runtime.is_free_threaded_build()
    if request.gil is None:
        gil = [0, 1] if free_threaded else [1]
    else:
        gil = sorted(set(request.gil))
        if 0 in gil and not free_threaded:
            raise InvalidInputError(
                "gil 0 needs a free-threaded build (python3.14t); this service runs "
                f"Python {runtime.python_version()} with the GIL: ask for gil [1]"
            )
    remote = [runner for runner in runners if get_runner(runner).needs_broker]
    if remote and len(gil) > 1:
        raise InvalidInputError(
            f"{', '.join(remote)} run in the GIL mode their task workers were started with: "
            "ask for one GIL mode, e.g. gil [0]"
        )
    if remote and len(workers) > 1:
        raise InvalidInputError(
            f"{', '.join(remote)} run as many tasks at once as their task workers' pool "
            "offers: ask for that one worker count, e.g. workers [2]"
        )
    max_repeats = check_rounds(request)
    return BenchmarkSpec(
        **work,
        runners=runners,
        workers=workers,
        gil=gil,
        repeats=request.repeats,
        max_repeats=max_repeats,
        block_rounds=request.block_rounds,
        warmups=request.warmups,
        target_ci=request.target_ci,
    )


def check_rounds(request: BenchmarkCreate) -> int:
    """max_repeats after its default (repeats: each block starts fresh worker processes, so the
    default body's 2 blocks of 3 rounds stay within 3 minutes here); the rounds must make at
    least two blocks."""
    max_repeats = request.max_repeats or request.repeats
    if max_repeats < request.repeats:
        raise InvalidInputError(f"max_repeats ({max_repeats}) is below repeats ({request.repeats})")
    if blocks_for(request.repeats, request.block_rounds) < MIN_CI_BLOCKS:
        raise InvalidInputError(
            f"block_rounds ({request.block_rounds}) leaves fewer than {MIN_CI_BLOCKS} blocks in "
            f"repeats ({request.repeats}): an interval needs {MIN_CI_BLOCKS} blocks of fresh "
            "processes; ask for block_rounds below repeats"
        )
    return max_repeats


def check_work(request: BenchmarkCreate, settings: Settings) -> dict[str, Any]:
    """The spec's fields for what is measured: synthetic images through a pipeline, or an
    installed workload; exactly one of the two."""
    images = request.source is not None or request.pipeline is not None
    if request.workload is not None:
        if images:
            raise InvalidInputError(
                "give either source and pipeline (synthetic images) or workload (an installed "
                "workload), not both"
            )
        return check_workload(request.workload, settings)
    if request.source is None or request.pipeline is None:
        if not images:
            raise InvalidInputError(
                "nothing to measure: give source and pipeline (synthetic images), or workload "
                "(an installed workload: GET /api/v1/workloads)"
            )
        missing = "pipeline" if request.pipeline is None else "source"
        raise InvalidInputError(f"{missing} is missing: synthetic images need source and pipeline")
    job_service.check_batch_size(request.source.count, settings)
    job_service.synthetic_size(request.source, settings)
    # Native steps are allowed even for interpreters: that runner's entries say "unsupported".
    steps = job_service.check_pipeline(request.pipeline)
    return {
        "count": request.source.count,
        "width": request.source.width,
        "height": request.source.height,
        "seed": request.source.seed,
        "pipeline": [StepIn(op=step.op, params=dict(step.params)) for step in steps],
    }


def check_workload(workload: WorkloadIn, settings: Settings) -> dict[str, Any]:
    """The workload by its registered name, with its parameters resolved: a name is looked up
    among the installed workloads, never imported, so "os:system" is merely unknown."""
    try:
        params = parse_params(workload.name, workload.params, strict=True)
    except (UnknownWorkloadError, InvalidParamsError) as error:
        raise InvalidInputError(str(error)) from None
    if isinstance(params, ImageParams):
        # The service's limits on images hold however the images are asked for.
        job_service.check_batch_size(params.count, settings)
        job_service.synthetic_size(
            SyntheticSource(width=params.width, height=params.height), settings
        )
    return {"workload": workload.name, "params": params_to_json(workload.name, params)}


def list_workloads() -> list[WorkloadPublic]:
    return [
        WorkloadPublic(
            name=name,
            description=workload.description,
            params_schema=params_schema(name),
            defaults=params_to_json(name, parse_params(name, {})),
        )
        for name, workload in workloads().items()
    ]


def submit(
    *,
    engine: Engine,
    settings: Settings,
    owner_id: uuid.UUID,
    route: str,
    key: str | None,
    spec: BenchmarkSpec,
) -> Answer:
    """Queue the benchmark (or answer as an earlier request with the same key was answered)."""
    content = spec.model_dump(mode="json")

    def queue(session: Session) -> tuple[BenchmarkPublic, uuid.UUID]:
        check_queue_room(
            session,
            Benchmark,
            owner_id=owner_id,
            adding=1,
            per_user=settings.MAX_QUEUED_BENCHMARKS_PER_USER,
            in_all=settings.MAX_QUEUED_BENCHMARKS,
            retry_after_s=settings.OVERLOAD_RETRY_AFTER_SECONDS,
            noun="benchmarks",
        )
        benchmark = Benchmark(owner_id=owner_id, spec=content)
        session.add(benchmark)
        return describe(benchmark), benchmark.id

    return submit_once(
        engine,
        Submission(owner_id, route, key, fingerprint(content)),
        queue,
        ttl=timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS),
    )


def get_benchmark(*, session: Session, owner_id: uuid.UUID, benchmark_id: uuid.UUID) -> Benchmark:
    return get_owned(session, Benchmark, benchmark_id, owner_id)


def list_benchmarks(
    *, session: Session, owner_id: uuid.UUID, limit: int, offset: int
) -> tuple[list[Benchmark], int]:
    # Without the engine's document: tens of kilobytes each, which only the report page reads.
    query = (
        select(Benchmark).where(Benchmark.owner_id == owner_id).options(defer(Benchmark.document))  # type: ignore[arg-type]  # a Mapped column
    )
    return newest_first(session, query, Benchmark, limit=limit, offset=offset)


def delete_benchmark(*, engine: Engine, benchmark: Benchmark) -> Benchmark | None:
    """Cancel a queued benchmark (returned, now cancelled), or delete a finished one (None).
    A benchmark has no files: its chart is drawn from its results when asked for."""
    return write(
        engine,
        lambda session: cancel_or_delete(session, Benchmark, benchmark.id, noun="benchmark"),
    )


def describe(benchmark: Benchmark) -> BenchmarkPublic:
    report = benchmark.report or {}
    return BenchmarkPublic(
        id=benchmark.id,
        status=benchmark.status,
        error=benchmark.error,
        queued_at=benchmark.queued_at,
        started_at=benchmark.started_at,
        finished_at=benchmark.finished_at,
        gil_enabled=benchmark.gil_enabled,
        spec=BenchmarkSpec.model_validate(benchmark.spec),
        results=[BenchmarkEntry.model_validate(entry) for entry in benchmark.results],
        comparisons=[
            BenchmarkComparison.model_validate(item) for item in report.get("comparisons", [])
        ],
        rounds=report.get("rounds"),
        blocks=report.get("blocks"),
        stop=report.get("stop_text"),
        steal_share=report.get("steal_share"),
        worker=benchmark.worker,
        attempts=benchmark.attempts,
        progress=BenchmarkProgress.while_running(benchmark.status, benchmark.progress),
        chart_url=f"/api/v1/benchmarks/{benchmark.id}/chart",
    )


def finished_entries(benchmark: Benchmark) -> list[BenchmarkEntry]:
    """The measured entries; 409 while there are none yet."""
    entries = [
        entry
        for entry in (BenchmarkEntry.model_validate(item) for item in benchmark.results)
        if entry.outcome == "succeeded"
    ]
    if not entries:
        raise ConflictError(
            f"benchmark {benchmark.id} is {benchmark.status} and has no results yet"
        )
    return entries


def chart(benchmark: Benchmark, chart_format: str) -> bytes:
    """Speedup against workers, a line per runner and GIL mode with its 95% CIs, the ideal
    line and the host's measured ceiling."""
    entries = finished_entries(benchmark)
    points: list[ChartPoint] = []
    ceilings: list[ChartPoint] = []
    for entry in entries:
        if entry.speedup is None or entry.runner == SequentialRunner.name:
            continue
        low, high = entry.speedup_ci or (None, None)
        panel = "speedup over sequential" if entry.gil is None else f"GIL={entry.gil}"
        point = ChartPoint(panel, entry.runner, entry.workers, entry.speedup, low, high)
        (ceilings if entry.runner == CEILING else points).append(point)
    if not points:
        raise ConflictError(f"benchmark {benchmark.id} has no speedups to draw")
    title = f"{what_is_measured(BenchmarkSpec.model_validate(benchmark.spec))}: speedup, 95% CI"
    return render_speedup_chart(points, chart_format, title=title, ceilings=ceilings)


def what_is_measured(spec: BenchmarkSpec) -> str:
    """What the benchmark measures, in a few words: "fib n=15 tasks=4", or the images."""
    if spec.workload is not None:
        params = " ".join(f"{name}={json.dumps(value)}" for name, value in spec.params.items())
        return f"{spec.workload} {params}".rstrip()
    ops = " + ".join(step.op for step in spec.pipeline or [])
    return f"{spec.count} x {spec.width}x{spec.height}, {ops}"


def request_body(spec: BenchmarkSpec) -> dict[str, Any]:
    """A POST /api/v1/benchmarks body that asks for this benchmark again, defaults spelled out
    (`nogil-bench measure --request` takes it too)."""
    if spec.workload is not None:
        work: dict[str, Any] = {"workload": {"name": spec.workload, "params": spec.params}}
    else:
        work = {
            "source": {
                "count": spec.count,
                "width": spec.width,
                "height": spec.height,
                "seed": spec.seed,
            },
            "pipeline": [step.model_dump(mode="json") for step in spec.pipeline or []],
        }
    return work | spec.model_dump(
        mode="json",
        include={
            "runners",
            "workers",
            "gil",
            "repeats",
            "max_repeats",
            "block_rounds",
            "warmups",
            "target_ci",
        },
    )


def pyperf_document(benchmark: Benchmark) -> dict[str, Any]:
    """The benchmark as a pyperf suite: a benchmark per configuration, a run per block of fresh
    processes with its rounds as values, so that `python -m pyperf stats` and `compare_to`
    read it."""
    entries = finished_entries(benchmark)
    workload = what_is_measured(BenchmarkSpec.model_validate(benchmark.spec))
    return pyperf_suite(
        [
            PyperfBenchmark(
                name=f"{entry.runner} w={entry.workers} GIL={entry.gil}",
                values=entry.runs_wall_s,
                warmups=entry.warmups_s,
                blocks=entry.runs_block or None,
                metadata={"description": workload, "runner": entry.runner},
            )
            for entry in entries
            if entry.runs_wall_s
        ],
        metadata={"nogil_bench_benchmark": str(benchmark.id)},
    )
