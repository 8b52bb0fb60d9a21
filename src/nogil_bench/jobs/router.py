import uuid

from fastapi import APIRouter, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from sqlalchemy import Engine
from sqlmodel import Session

from nogil_bench.auth.dependencies import (
    CurrentUser,
    TokenSubject,
    with_owner,
    with_user,
)
from nogil_bench.auth.models import UserRecord
from nogil_bench.core.config import Settings
from nogil_bench.core.db import EngineDep, engine_of
from nogil_bench.core.deps import Limit, Offset, SettingsDep
from nogil_bench.core.idempotency import IdempotencyKeyHeader, normalize_key
from nogil_bench.core.models import Status
from nogil_bench.core.openapi import (
    BODY_ERRORS,
    NOT_FOUND,
    UNAUTHENTICATED,
    Responses,
    error_response,
    json_or_multipart,
)
from nogil_bench.core.reads import READS
from nogil_bench.core.storage import FileStore, FileStoreDep
from nogil_bench.core.work import WorkQueue
from nogil_bench.jobs import forms, pages, service
from nogil_bench.jobs.dependencies import (
    OVERLOAD_RESPONSES,
    OwnedBatch,
    OwnedJob,
    Submitter,
    WorkQueueDep,
)
from nogil_bench.jobs.models import Job
from nogil_bench.jobs.schemas import (
    BatchCreate,
    BatchesPublic,
    BatchPublic,
    JobCreate,
    JobPublic,
    JobsPublic,
    OperationPublic,
    ParameterPublic,
)
from nogil_bench.reports.responses import html_response
from nogil_bench.workloads.images import OPERATIONS
from nogil_bench.workloads.model import OpKind

router = APIRouter(tags=["jobs"], responses=UNAUTHENTICATED)

SUBMIT_ERRORS: Responses = {
    **BODY_ERRORS,
    **error_response(
        413,
        "An image over MAX_UPLOAD_BYTES, or a body over the route's limit: one image and 1 MiB "
        "of form for a job, MAX_BATCH_REQUEST_BYTES in all for a batch",
    ),
    **error_response(415, "Not JSON nor multipart, not an image, or not PNG / JPEG / WebP"),
    422: {
        "description": "A bad pipeline, runner, worker count, size or count; or an "
        "Idempotency-Key already used for a different request"
    },
    **OVERLOAD_RESPONSES,
}


# The reads clients poll come first: FastAPI tries a router's routes in order, twice in the
# router that holds the request's route (docs/serving.md, "Routes in the order they are asked").
@router.get("/jobs", summary="Your jobs, newest first", response_model=JobsPublic)
async def list_jobs(
    request: Request,
    user_id: TokenSubject,
    status: Status | None = None,
    runner: str | None = None,
    batch_id: uuid.UUID | None = None,
    limit: Limit = 20,
    offset: Offset = 0,
) -> Response:
    # Async, with the blocking part in one explicit hop to a read thread: FastAPI runs a sync
    # route on its thread pool, then checks its answer there in a second hop. The page's
    # JSON is written there too, off the event loop (see `service.jobs_page_json`). A page
    # with jobs proves the token's user exists; an empty one reads the user, on the page's
    # connection (`with_owner`).
    # The engine from the request, not `EngineDep`: one dependency less for FastAPI to solve
    # (about 8 us) on the service's busiest list.
    page = await READS.run(
        with_owner,
        engine_of(request),
        user_id,
        lambda connection: service.jobs_page_json(
            connection=connection,
            owner_id=user_id,
            status=status,
            runner=runner,
            batch_id=batch_id,
            limit=limit,
            offset=offset,
        ),
    )
    return Response(page, media_type="application/json")


@router.get("/jobs/{job_id}", summary="One job: status, timings, figures", responses=NOT_FOUND)
async def read_job(job: OwnedJob) -> JobPublic:
    return JobPublic.model_validate(job)


@router.get("/ops", summary="The operations a pipeline may use, with their parameters")
def list_operations(_: CurrentUser) -> list[OperationPublic]:
    return [
        OperationPublic(
            name=operation.name,
            kind=operation.kind,
            releases_gil=operation.kind is OpKind.NATIVE,
            description=operation.description,
            parameters=[
                ParameterPublic(
                    name=parameter.name,
                    type=parameter.type.__name__,
                    minimum=parameter.minimum,
                    maximum=parameter.maximum,
                    default=parameter.default,
                    description=parameter.description,
                )
                for parameter in operation.parameters
            ],
        )
        for operation in OPERATIONS.values()
    ]


@router.post(
    "/jobs",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobPublic,
    summary="Queue one image job: JSON with a synthetic source, or multipart with an image",
    responses=SUBMIT_ERRORS,
    openapi_extra=json_or_multipart(JobCreate, forms.form_schema("image", many=False)),
)
async def create_job(
    request: Request,
    queue: WorkQueueDep,
    user: Submitter,
    engine: EngineDep,
    settings: SettingsDep,
    store: FileStoreDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    return await submit(request, queue, user, engine, settings, store, idempotency_key, batch=False)


async def submit(
    request: Request,
    queue: WorkQueue,
    user: UserRecord,
    engine: Engine,
    settings: Settings,
    store: FileStore,
    idempotency_key: str | None,
    *,
    batch: bool,
) -> JSONResponse:
    spec, sources = await forms.read_submission(request, settings, store, batch=batch)
    # Decoding uploads and writing rows is blocking work: off the event loop.
    answer = await run_in_threadpool(
        lambda: service.submit(
            engine=engine,
            settings=settings,
            owner_id=user.id,
            route=request.url.path.rstrip("/"),
            key=normalize_key(idempotency_key),
            spec=spec,
            sources=sources,
            as_batch=batch,
        )
    )
    queue.notify()
    return answer.response()


@router.get(
    "/jobs/{job_id}/result",
    summary="The output image",
    response_class=FileResponse,
    responses={
        200: {"content": {"image/png": {}}, "description": "The PNG"},
        **NOT_FOUND,
        **error_response(409, "The job has not succeeded"),
    },
)
def read_job_result(job: OwnedJob, store: FileStoreDep) -> Response:
    key = service.result_key(job)
    size_bytes = service.result_size(job, key, store)
    filename = f"{job.id}.png"
    if (path := store.local_path(key)) is not None:
        return FileResponse(path, media_type="image/png", filename=filename)
    # Sent a chunk at a time, each read in its own short query.
    return StreamingResponse(
        store.chunks(key),
        media_type="image/png",
        headers={
            "Content-Length": str(size_bytes),
            "Content-Disposition": f'attachment; filename="{filename}"',
        },
    )


@router.delete(
    "/jobs/{job_id}",
    summary="Cancel a queued job (200, the job), or delete a finished one (204)",
    responses={
        200: {"model": JobPublic, "description": "Cancelled"},
        204: {"description": "Deleted with its output"},
        **NOT_FOUND,
        **error_response(409, "The job is running"),
    },
)
def delete_job(job: OwnedJob, engine: EngineDep, store: FileStoreDep) -> Response:
    cancelled: Job | None = service.delete_job(engine=engine, store=store, job=job)
    if cancelled is None:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    return Response(
        JobPublic.model_validate(cancelled).model_dump_json(), media_type="application/json"
    )


@router.post(
    "/batches",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=BatchPublic,
    summary="Queue many images under one runner: a synthetic set (JSON) or uploads (multipart)",
    responses=SUBMIT_ERRORS,
    openapi_extra=json_or_multipart(BatchCreate, forms.form_schema("images", many=True)),
)
async def create_batch(
    request: Request,
    queue: WorkQueueDep,
    user: Submitter,
    engine: EngineDep,
    settings: SettingsDep,
    store: FileStoreDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    return await submit(request, queue, user, engine, settings, store, idempotency_key, batch=True)


@router.get("/batches", summary="Your batches, newest first")
async def list_batches(
    user_id: TokenSubject, engine: EngineDep, limit: Limit = 20, offset: Offset = 0
) -> BatchesPublic:
    return await READS.run(  # the token's user and the page: one hop, one session
        with_user,
        engine,
        user_id,
        lambda session, user: service.batches_page(
            session=session, owner_id=user.id, limit=limit, offset=offset
        ),
    )


@router.get(
    "/batches/{batch_id}", summary="One batch: progress and aggregates", responses=NOT_FOUND
)
async def read_batch(batch: OwnedBatch, engine: EngineDep) -> BatchPublic:
    return await run_in_threadpool(service.batch_view, engine=engine, batch=batch)


@router.get(
    "/batches/{batch_id}/report",
    summary="The batch as one self-contained page: throughput, latency percentiles, each job's "
    "time as a chart, failures with their reasons; while it runs, how many jobs are done",
    response_class=Response,
    responses={200: {"content": {"text/html": {}}}, **NOT_FOUND},
)
def read_batch_report(batch: OwnedBatch, engine: EngineDep) -> Response:
    with Session(engine) as session:
        page = pages.batch_report(session=session, batch=batch)
    return html_response(page, shared=False)


@router.delete(
    "/batches/{batch_id}",
    summary="Cancel a queued batch and its queued jobs (200, the batch), or delete a finished "
    "one with its jobs (204)",
    responses={
        200: {"model": BatchPublic, "description": "Cancelled, with its queued jobs"},
        204: {"description": "Deleted with its jobs, their uploads and outputs"},
        **NOT_FOUND,
        **error_response(409, "The batch is running"),
    },
)
def delete_batch(batch: OwnedBatch, engine: EngineDep, store: FileStoreDep) -> Response:
    cancelled = service.delete_batch(engine=engine, store=store, batch=batch)
    if cancelled is None:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    return Response(cancelled.model_dump_json(), media_type="application/json")
