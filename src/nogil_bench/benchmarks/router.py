from typing import Annotated, Literal

from fastapi import APIRouter, Body, Request, Response, status
from fastapi.responses import JSONResponse
from sqlmodel import Session

from nogil_bench.auth.dependencies import CurrentUser
from nogil_bench.benchmarks import pages, service
from nogil_bench.benchmarks.dependencies import OwnedBenchmark
from nogil_bench.benchmarks.schemas import (
    BenchmarkCreate,
    BenchmarkPublic,
    BenchmarksPublic,
    WorkloadPublic,
)
from nogil_bench.core.db import EngineDep
from nogil_bench.core.deps import Limit, Offset, SettingsDep
from nogil_bench.core.idempotency import IdempotencyKeyHeader, normalize_key
from nogil_bench.core.openapi import BODY_ERRORS, NOT_FOUND, UNAUTHENTICATED, error_response
from nogil_bench.jobs.dependencies import OVERLOAD_RESPONSES, Submitter, WorkQueueDep
from nogil_bench.reports.responses import html_response

router = APIRouter(prefix="/benchmarks", tags=["benchmarks"], responses=UNAUTHENTICATED)
# What a benchmark may measure by name; beside the benchmarks, which are what uses it.
workloads_router = APIRouter(prefix="/workloads", tags=["benchmarks"], responses=UNAUTHENTICATED)

CHART_MEDIA_TYPES = {"svg": "image/svg+xml", "png": "image/png"}
BODY_EXAMPLES = {
    "images": {
        "summary": "Synthetic images through a pipeline",
        "value": {
            "source": {"count": 16, "width": 128, "height": 128},
            "pipeline": [{"op": "box_blur", "params": {"radius": 2}}, {"op": "sepia"}],
            "runners": ["threads", "processes"],
            "workers": [1, 2],
        },
    },
    "workload": {
        "summary": "An installed workload (GET /api/v1/workloads)",
        "value": {
            "workload": {"name": "fib", "params": {"n": 25, "tasks": 8}},
            "runners": ["threads", "processes"],
            "workers": [1, 2],
        },
    },
}


@workloads_router.get(
    "", summary="The installed workloads a benchmark may name, with their parameters' schemas"
)
def list_workloads(_: CurrentUser) -> list[WorkloadPublic]:
    return service.list_workloads()


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=BenchmarkPublic,
    summary="Queue synthetic images or an installed workload through several runners in both "
    "GIL modes, measured in paired rounds and compared with 95% CIs and verdicts",
    responses={
        **BODY_ERRORS,
        422: {
            "description": "Both or neither of source + pipeline and workload; a bad pipeline, "
            "runner, worker count, size or count; a workload that is not installed, or a bad "
            "parameter of it; or an Idempotency-Key already used for a different request"
        },
        **OVERLOAD_RESPONSES,
    },
)
def create_benchmark(
    body: Annotated[BenchmarkCreate, Body(openapi_examples=BODY_EXAMPLES)],
    request: Request,
    queue: WorkQueueDep,
    user: Submitter,
    engine: EngineDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    spec = service.check_request(body, settings)
    answer = service.submit(
        engine=engine,
        settings=settings,
        owner_id=user.id,
        route=request.url.path.rstrip("/"),
        key=normalize_key(idempotency_key),
        spec=spec,
    )
    queue.notify()
    return answer.response()


@router.get("", summary="Your benchmarks, newest first")
def list_benchmarks(
    user: CurrentUser,
    engine: EngineDep,
    limit: Limit = 20,
    offset: Offset = 0,
) -> BenchmarksPublic:
    with Session(engine) as session:
        benchmarks, count = service.list_benchmarks(
            session=session, owner_id=user.id, limit=limit, offset=offset
        )
    return BenchmarksPublic(data=[service.describe(item) for item in benchmarks], count=count)


@router.get(
    "/{benchmark_id}",
    summary="One benchmark: every configuration, every comparison with its CI and verdict",
    response_model=BenchmarkPublic,
    responses={
        200: {
            "content": {"application/json": {}},
            "description": "The benchmark; with format=pyperf, a pyperf benchmark suite "
            "(`python -m pyperf stats FILE`, `compare_to A B`)",
        },
        **NOT_FOUND,
        **error_response(409, "format=pyperf before results exist"),
    },
)
def read_benchmark(
    benchmark: OwnedBenchmark, format: Literal["json", "pyperf"] = "json"
) -> Response:
    if format == "pyperf":
        return JSONResponse(service.pyperf_document(benchmark))
    return Response(service.describe(benchmark).model_dump_json(), media_type="application/json")


@router.get(
    "/{benchmark_id}/chart",
    summary="Speedup over sequential against workers, per runner",
    response_class=Response,
    responses={
        200: {"content": {"image/svg+xml": {}, "image/png": {}}},
        **NOT_FOUND,
        **error_response(409, "No results yet"),
    },
)
def read_benchmark_chart(
    benchmark: OwnedBenchmark, format: Literal["svg", "png"] = "svg"
) -> Response:
    return Response(service.chart(benchmark, format), media_type=CHART_MEDIA_TYPES[format])


@router.get(
    "/{benchmark_id}/report",
    summary="The report as one self-contained page: the answer in words, every configuration, "
    "the chart, the environment, how to reproduce it; while it runs, how far it is",
    response_class=Response,
    responses={200: {"content": {"text/html": {}}}, **NOT_FOUND},
)
def read_benchmark_report(benchmark: OwnedBenchmark) -> Response:
    return html_response(pages.benchmark_page(benchmark, shared=False), shared=False)


@router.delete(
    "/{benchmark_id}",
    summary="Cancel a queued benchmark (200, the benchmark), or delete a finished one (204)",
    responses={
        200: {"model": BenchmarkPublic, "description": "Cancelled"},
        204: {"description": "Deleted with its results"},
        **NOT_FOUND,
        **error_response(409, "The benchmark is running"),
    },
)
def delete_benchmark(benchmark: OwnedBenchmark, engine: EngineDep) -> Response:
    cancelled = service.delete_benchmark(engine=engine, benchmark=benchmark)
    if cancelled is None:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    return Response(service.describe(cancelled).model_dump_json(), media_type="application/json")
