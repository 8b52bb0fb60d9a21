"""Submitting, reading and deleting jobs and batches. Everything is checked before anything is
written, and what is written (rows and uploaded files) lands together or not at all."""

import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, BinaryIO

from pydantic_core import to_json
from sqlalchemy import Connection, Engine, delete
from sqlmodel import Session, col, func, select

from nogil_bench.bench.stats import percentile
from nogil_bench.core.config import Settings
from nogil_bench.core.db import get_owned, newest_first, write
from nogil_bench.core.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
)
from nogil_bench.core.idempotency import Answer, Submission, fingerprint, submit_once
from nogil_bench.core.json_pages import newest_first_values
from nogil_bench.core.metrics import StoreCounts
from nogil_bench.core.models import (
    Status,
    cancel_or_delete,
    cancel_queued,
    check_queue_room,
    utc_now,
)
from nogil_bench.core.storage import FileStore, get_store, upload_key
from nogil_bench.jobs.models import Batch, Job
from nogil_bench.jobs.schemas import (
    BatchAggregates,
    BatchesPublic,
    BatchPublic,
    JobPublic,
    Progress,
    StepIn,
    SyntheticSet,
    SyntheticSource,
    WorkerShare,
    result_url,
)
from nogil_bench.runners import BaseRunner, UnknownRunnerError, UnsupportedWorkError, get_runner
from nogil_bench.workloads.images import (
    InvalidImageError,
    UnsupportedImageError,
    check_runner_can_run,
    decode_image,
    validate_steps,
)
from nogil_bench.workloads.model import InvalidStepError, Step, steps_from_json, steps_to_json


@dataclass(frozen=True, slots=True)
class ExecutionSpec:
    """A checked runner, worker count and pipeline."""

    runner: str
    workers: int
    steps: tuple[Step, ...]

    def pipeline(self) -> list[dict[str, Any]]:
        return steps_to_json(self.steps)


@dataclass(frozen=True, slots=True)
class Upload:
    """An uploaded image, already in the file store (streamed there, never held whole)."""

    filename: str
    key: str
    size_bytes: int
    sha256: str


type Source = SyntheticSource | Upload


def check_runner(name: str, settings: Settings) -> type[BaseRunner]:
    try:
        runner = get_runner(name)
    except UnknownRunnerError as error:
        raise InvalidInputError(str(error)) from None
    if runner.needs_broker and not settings.distributed:
        raise InvalidInputError(
            f"the {name} runner maps tasks over Celery task workers, and this service has no "
            "broker: set NOGIL_BENCH_BROKER_URL (docs/distributed.md)"
        )
    return runner


def check_workers(workers: int, settings: Settings) -> int:
    if not 1 <= workers <= settings.MAX_WORKERS:
        raise InvalidInputError(
            f"workers must be between 1 and {settings.MAX_WORKERS}, got {workers}"
        )
    return workers


def check_pipeline(pipeline: Sequence[StepIn]) -> tuple[Step, ...]:
    try:
        return validate_steps(steps_from_json(step.model_dump() for step in pipeline))
    except InvalidStepError as error:
        raise InvalidInputError(str(error)) from None


def check_spec(
    *, runner: str, workers: int, pipeline: Sequence[StepIn], settings: Settings
) -> ExecutionSpec:
    runner_class = check_runner(runner, settings)
    steps = check_pipeline(pipeline)
    try:
        check_runner_can_run(runner_class, steps)
    except UnsupportedWorkError as error:
        raise InvalidInputError(str(error)) from None
    return ExecutionSpec(runner, check_workers(workers, settings), steps)


def check_upload_size(filename: str, size_bytes: int, settings: Settings) -> None:
    if size_bytes > settings.MAX_UPLOAD_BYTES:
        raise PayloadTooLargeError(
            f"{filename!r} is {size_bytes} bytes, over the limit of {settings.MAX_UPLOAD_BYTES}"
        )


def check_batch_size(count: int, settings: Settings) -> None:
    if count > settings.MAX_BATCH_IMAGES:
        raise InvalidInputError(
            f"a batch holds at most {settings.MAX_BATCH_IMAGES} images, got {count}"
        )


def source_size(source: Source, settings: Settings, store: FileStore) -> tuple[int, int]:
    """The source's width and height, once it is known to be acceptable."""
    if isinstance(source, SyntheticSource):
        return synthetic_size(source, settings)
    try:
        image = decode_image(store.read(source.key), max_pixels=settings.MAX_IMAGE_PIXELS)
    except UnsupportedImageError as error:
        raise UnsupportedMediaTypeError(f"{source.filename!r}: {error}") from None
    except InvalidImageError as error:
        raise InvalidInputError(f"{source.filename!r}: {error}") from None
    return image.width, image.height


def synthetic_size(source: SyntheticSource, settings: Settings) -> tuple[int, int]:
    side = settings.MAX_SYNTHETIC_SIDE
    if source.width > side or source.height > side:
        raise InvalidInputError(
            f"synthetic images are at most {side}x{side}, got {source.width}x{source.height}"
        )
    if source.width * source.height > settings.MAX_IMAGE_PIXELS:
        raise InvalidInputError(
            f"{source.width}x{source.height} is over the limit of "
            f"{settings.MAX_IMAGE_PIXELS} pixels"
        )
    return source.width, source.height


def store_upload(stream: BinaryIO, filename: str, settings: Settings, store: FileStore) -> Upload:
    """Streams an uploaded image into the file store, checking its size as it lands."""
    key = upload_key()
    size_bytes, sha256 = store.save_stream(key, stream)
    upload = Upload(filename, key, size_bytes, sha256)
    try:
        check_upload_size(filename, size_bytes, settings)
    except PayloadTooLargeError:
        discard_uploads([upload], store)
        raise
    return upload


def discard_uploads(sources: Sequence[Source], store: FileStore) -> None:
    store.delete(source.key for source in sources if isinstance(source, Upload))


def source_content(source: Source) -> dict[str, Any]:
    if isinstance(source, Upload):
        return {"filename": source.filename, "sha256": source.sha256}
    return source.model_dump()


def submit(
    *,
    engine: Engine,
    settings: Settings,
    owner_id: uuid.UUID,
    route: str,
    key: str | None,
    spec: ExecutionSpec,
    sources: Sequence[Source],
    as_batch: bool,
) -> Answer:
    """Queue one job per source (in a new batch when `as_batch`), all in one transaction: the
    answer describes what was stored, or nothing was. Takes over the uploads' files: they are
    kept with the jobs, or removed (an error, or a replay of an earlier request)."""
    store = get_store(settings, engine)
    try:
        check_batch_size(len(sources), settings)
        sizes = [source_size(source, settings, store) for source in sources]  # every check first
        if len(sources) > settings.MAX_QUEUED_JOBS_PER_USER:
            raise InvalidInputError(
                f"{len(sources)} images are more than a user may have queued "
                f"({settings.MAX_QUEUED_JOBS_PER_USER})"
            )
        pipeline = spec.pipeline()
        content = {
            "runner": spec.runner,
            "workers": spec.workers,
            "pipeline": pipeline,
            "sources": [source_content(source) for source in sources],
        }

        def queue(session: Session) -> tuple[JobPublic | BatchPublic, uuid.UUID]:
            check_queue_room(
                session,
                Job,
                owner_id=owner_id,
                adding=len(sources),
                per_user=settings.MAX_QUEUED_JOBS_PER_USER,
                in_all=settings.MAX_QUEUED_JOBS,
                retry_after_s=settings.OVERLOAD_RETRY_AFTER_SECONDS,
                noun="images",
            )
            batch = None
            if as_batch:
                batch = Batch(
                    owner_id=owner_id, runner=spec.runner, workers=spec.workers, pipeline=pipeline
                )
                session.add(batch)
            jobs = [
                Job(
                    owner_id=owner_id,
                    batch_id=batch.id if batch else None,
                    runner=spec.runner,
                    workers=spec.workers,
                    pipeline=pipeline,
                    width=width,
                    height=height,
                    **source_columns(source),
                )
                for source, (width, height) in zip(sources, sizes, strict=True)
            ]
            session.add_all(jobs)
            session.flush()
            if batch is not None:
                return describe_batch(session=session, batch=batch), batch.id
            return JobPublic.model_validate(jobs[0]), jobs[0].id

        answer = submit_once(
            engine,
            Submission(owner_id, route, key, fingerprint(content)),
            queue,
            ttl=timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS),
        )
    except BaseException:
        discard_uploads(sources, store)
        raise
    if answer.replayed:
        discard_uploads(sources, store)
    return answer


def source_columns(source: Source) -> dict[str, Any]:
    if isinstance(source, Upload):
        return {"upload_path": source.key, "upload_filename": source.filename}
    return {"seed": source.seed}


def expand_set(source: SyntheticSet) -> list[SyntheticSource]:
    """Image i of a synthetic set uses seed + i."""
    return [
        SyntheticSource(width=source.width, height=source.height, seed=source.seed + index)
        for index in range(source.count)
    ]


def get_job(*, session: Session, owner_id: uuid.UUID, job_id: uuid.UUID) -> Job:
    return get_owned(session, Job, job_id, owner_id)


_JOBS = Job.__table__  # type: ignore[attr-defined]


def _job_filters(
    owner_id: uuid.UUID, status: Status | None, runner: str | None, batch_id: uuid.UUID | None
) -> dict[str, object]:
    """The owner's jobs, narrowed by the filters given: the value each column must equal."""
    equal = {"owner_id": owner_id, "status": status, "runner": runner, "batch_id": batch_id}
    return {name: value for name, value in equal.items() if value is not None}


def list_jobs(
    *,
    session: Session,
    owner_id: uuid.UUID,
    status: Status | None,
    runner: str | None,
    batch_id: uuid.UUID | None,
    limit: int,
    offset: int,
) -> tuple[list[Job], int]:
    equal = _job_filters(owner_id, status, runner, batch_id)
    query = select(Job).where(*(_JOBS.c[name] == value for name, value in equal.items()))
    return newest_first(session, query, Job, limit=limit, offset=offset)


# What `GET /jobs` shows of a job: every field of JobPublic but the computed `result_url`.
_JOB_PUBLIC_COLUMNS = tuple(_JOBS.c[name] for name in JobPublic.model_fields)


def jobs_page_json(
    *,
    connection: Connection,
    owner_id: uuid.UUID,
    status: Status | None,
    runner: str | None,
    batch_id: uuid.UUID | None,
    limit: int,
    offset: int,
) -> tuple[bytes, bool]:
    """`GET /jobs`: one page of the owner's jobs, and how many match, as the JSON of
    `JobsPublic`, written from the stored values (`core.json_pages`): building the models only
    to serialise them again is work without a use, and written here it is off the event loop
    (docs/serving.md, read threads). tests/test_database_values.py holds the two to the same
    JSON on every store. Then whether any job matched (`auth.dependencies.with_owner`)."""
    jobs, count = newest_first_values(
        connection,
        _JOB_PUBLIC_COLUMNS,
        equal=_job_filters(owner_id, status, runner, batch_id),
        limit=limit,
        offset=offset,
    )
    for job in jobs:
        job["result_url"] = result_url(job["id"], job["status"])
    return to_json({"data": jobs, "count": count}), count > 0


def result_key(job: Job) -> str:
    """The key of the job's output in the file store; 409 until it has succeeded."""
    if job.status is not Status.SUCCEEDED or job.output_path is None:
        raise ConflictError(f"job {job.id} is {job.status}; its result exists once it succeeds")
    return job.output_path


def result_size(job: Job, key: str, store: FileStore) -> int:
    """404 when the store does not have the output (kept by the other FILE_STORE, say)."""
    try:
        return store.size_bytes(key)
    except FileNotFoundError:
        raise NotFoundError(f"job {job.id}'s output is not in the file store") from None


def delete_job(*, engine: Engine, store: FileStore, job: Job) -> Job | None:
    """Cancel a queued job (returned, now cancelled), or delete a finished one (None)."""
    cancelled = write(engine, lambda session: cancel_or_delete(session, Job, job.id, noun="job"))
    remove_files([cancelled or job], store)
    return cancelled


def remove_files(jobs: Sequence[Job], store: FileStore) -> None:
    """Removes the jobs' uploads and outputs (once their rows are gone or cancelled)."""
    store.delete(
        key for job in jobs for key in (job.upload_path, job.output_path) if key is not None
    )


def get_batch(*, session: Session, owner_id: uuid.UUID, batch_id: uuid.UUID) -> Batch:
    return get_owned(session, Batch, batch_id, owner_id)


def list_batches(
    *, session: Session, owner_id: uuid.UUID, limit: int, offset: int
) -> tuple[list[Batch], int]:
    query = select(Batch).where(Batch.owner_id == owner_id)
    return newest_first(session, query, Batch, limit=limit, offset=offset)


def batches_page(
    *, session: Session, owner_id: uuid.UUID, limit: int, offset: int
) -> BatchesPublic:
    """`GET /batches`: one page of the owner's batches, described, and how many there are."""
    batches, count = list_batches(session=session, owner_id=owner_id, limit=limit, offset=offset)
    return BatchesPublic(data=describe_batches(session=session, batches=batches), count=count)


def delete_batch(*, engine: Engine, store: FileStore, batch: Batch) -> BatchPublic | None:
    """Cancel a queued batch with its queued jobs (returned, now cancelled, as described in the
    same transaction), or delete a finished one with its jobs and their files (None)."""

    def cancel_or_delete_batch(session: Session) -> tuple[BatchPublic | None, list[Job]]:
        jobs: list[Job] = []

        def delete_jobs() -> None:
            jobs.extend(session.exec(select(Job).where(Job.batch_id == batch.id)).all())
            session.execute(delete(Job).where(col(Job.batch_id) == batch.id))

        cancelled = cancel_or_delete(
            session, Batch, batch.id, noun="batch", before_delete=delete_jobs
        )
        if cancelled is None:
            return None, jobs
        # Not claimed, so none of its jobs runs: the queued ones are cancelled with it.
        jobs.extend(
            session.exec(
                select(Job).where(Job.batch_id == batch.id, Job.status == Status.QUEUED)
            ).all()
        )
        cancel_queued(session, Job, col(Job.batch_id) == batch.id)
        return describe_batch(session=session, batch=cancelled), jobs

    cancelled, jobs = write(engine, cancel_or_delete_batch)
    remove_files(jobs, store)
    return cancelled


def describe_batch(*, session: Session, batch: Batch) -> BatchPublic:
    [described] = describe_batches(session=session, batches=[batch])
    return described


def batch_view(*, engine: Engine, batch: Batch) -> BatchPublic:
    """`GET /batches/{id}`: the batch described, in a session of its own."""
    with Session(engine) as session:
        return describe_batch(session=session, batch=batch)


def describe_batches(*, session: Session, batches: Sequence[Batch]) -> list[BatchPublic]:
    """Progress and aggregates of each batch, in three queries however many batches there are:
    their jobs counted by status, their jobs' ids and latencies, and who ran them."""
    if not batches:
        return []
    batch_ids = [batch.id for batch in batches]
    counts: dict[uuid.UUID, Counter[Status]] = {batch_id: Counter() for batch_id in batch_ids}
    by_status = session.exec(
        select(Job.batch_id, Job.status, func.count())
        .where(col(Job.batch_id).in_(batch_ids))
        .group_by(col(Job.batch_id), col(Job.status))
    )
    for batch_id, status, count in by_status:
        assert batch_id is not None
        counts[batch_id][Status(status)] = count
    job_ids: dict[uuid.UUID, list[uuid.UUID]] = {batch_id: [] for batch_id in batch_ids}
    latencies: dict[uuid.UUID, list[float]] = {batch_id: [] for batch_id in batch_ids}
    jobs = session.exec(
        select(Job.batch_id, Job.id, Job.latency_s)
        .where(col(Job.batch_id).in_(batch_ids))
        .order_by(col(Job.id))
    )
    for batch_id, job_id, latency_s in jobs:
        assert batch_id is not None
        job_ids[batch_id].append(job_id)
        if latency_s is not None:
            latencies[batch_id].append(latency_s)
    shares: dict[uuid.UUID, list[WorkerShare]] = {batch_id: [] for batch_id in batch_ids}
    by_worker = session.execute(
        select(Job.batch_id, Job.worker, func.count(), func.min(col(Job.started_at)))
        .add_columns(func.max(col(Job.finished_at)))
        .where(col(Job.batch_id).in_(batch_ids), col(Job.worker).is_not(None))
        .where(col(Job.status).in_([Status.SUCCEEDED, Status.FAILED]))
        .group_by(col(Job.batch_id), col(Job.worker))
        .order_by(col(Job.worker))
    )
    for batch_id, worker, count, first_start, last_finish in by_worker:
        assert batch_id is not None
        assert worker is not None
        wall_s = (last_finish - first_start).total_seconds() if first_start and last_finish else 0
        shares[batch_id].append(WorkerShare(worker=worker, jobs=count, wall_s=wall_s))
    return [
        batch_public(
            batch, counts[batch.id], job_ids[batch.id], latencies[batch.id], shares[batch.id]
        )
        for batch in batches
    ]


def batch_public(
    batch: Batch,
    counts: Counter[Status],
    job_ids: list[uuid.UUID],
    latencies: list[float],
    shares: list[WorkerShare],
) -> BatchPublic:
    succeeded = counts[Status.SUCCEEDED]
    return BatchPublic(
        id=batch.id,
        status=batch.status,
        error=batch.error,
        runner=batch.runner,
        workers=batch.workers,
        pipeline=batch.pipeline,
        queued_at=batch.queued_at,
        started_at=batch.started_at,
        finished_at=batch.finished_at,
        gil_enabled=batch.gil_enabled,
        progress=Progress(
            done=sum(counts[status] for status in Status if status.finished),
            total=counts.total(),
            queued=counts[Status.QUEUED],
            running=counts[Status.RUNNING],
            succeeded=succeeded,
            failed=counts[Status.FAILED],
            cancelled=counts[Status.CANCELLED],
        ),
        aggregates=BatchAggregates(
            wall_s=batch.wall_s,
            setup_s=batch.setup_s,
            throughput_images_per_s=succeeded / batch.wall_s if batch.wall_s else None,
            latency_p50_s=percentile(latencies, 50) if latencies else None,
            latency_p95_s=percentile(latencies, 95) if latencies else None,
            cpu_user_s=batch.cpu_user_s,
            cpu_system_s=batch.cpu_system_s,
            peak_rss_bytes=batch.peak_rss_bytes,
        ),
        ran_on=shares,
        job_ids=job_ids,
    )


def count_for_metrics(engine: Engine) -> StoreCounts:
    """The figures /metrics reports from the jobs table (core's collector asks, by this)."""
    with Session(engine) as session:
        rows = session.exec(
            select(Job.status, Job.runner, func.count()).group_by(Job.status, Job.runner)
        ).all()
        holding = session.exec(
            select(func.count(func.distinct(Job.worker))).where(
                Job.status == Status.RUNNING, col(Job.lease_expires_at) > utc_now()
            )
        ).one()
    return StoreCounts({(Status(status), runner): count for status, runner, count in rows}, holding)
