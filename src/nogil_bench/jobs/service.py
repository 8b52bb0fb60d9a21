"""Submitting, reading and deleting jobs and batches. Everything is checked before anything is
written, and what is written (rows and upload files) lands together or not at all."""

import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from nogil_bench.bench.stats import percentile
from nogil_bench.core.config import UPLOADS_DIR, Settings
from nogil_bench.core.db import get_owned, newest_first
from nogil_bench.core.errors import (
    ConflictError,
    InvalidInputError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
)
from nogil_bench.core.files import write_atomically
from nogil_bench.core.models import Status
from nogil_bench.jobs.models import Batch, Job
from nogil_bench.jobs.schemas import (
    BatchAggregates,
    BatchPublic,
    Progress,
    StepIn,
    SyntheticSet,
    SyntheticSource,
)
from nogil_bench.runners import BaseRunner, UnknownRunnerError, UnsupportedWorkError, get_runner
from nogil_bench.workloads.images import (
    InvalidImageError,
    UnsupportedImageError,
    check_runner_can_run,
    decode_image,
    validate_steps,
)
from nogil_bench.workloads.model import InvalidStepError, Step


@dataclass(frozen=True, slots=True)
class ExecutionSpec:
    """A checked runner, worker count and pipeline."""

    runner: str
    workers: int
    steps: tuple[Step, ...]

    def pipeline(self) -> list[dict[str, Any]]:
        return [{"op": step.op, "params": dict(step.params)} for step in self.steps]


@dataclass(frozen=True, slots=True)
class Upload:
    filename: str
    data: bytes


type Source = SyntheticSource | Upload


def check_runner(name: str) -> type[BaseRunner]:
    try:
        return get_runner(name)
    except UnknownRunnerError as error:
        raise InvalidInputError(str(error)) from None


def check_workers(workers: int, settings: Settings) -> int:
    if not 1 <= workers <= settings.MAX_WORKERS:
        raise InvalidInputError(
            f"workers must be between 1 and {settings.MAX_WORKERS}, got {workers}"
        )
    return workers


def check_pipeline(pipeline: Sequence[StepIn]) -> tuple[Step, ...]:
    try:
        return validate_steps([Step(step.op, step.params) for step in pipeline])
    except InvalidStepError as error:
        raise InvalidInputError(str(error)) from None


def check_spec(
    *, runner: str, workers: int, pipeline: Sequence[StepIn], settings: Settings
) -> ExecutionSpec:
    runner_class = check_runner(runner)
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


def source_size(source: Source, settings: Settings) -> tuple[int, int]:
    """The source's width and height, once it is known to be acceptable."""
    if isinstance(source, SyntheticSource):
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
    check_upload_size(source.filename, len(source.data), settings)
    try:
        image = decode_image(source.data, max_pixels=settings.MAX_IMAGE_PIXELS)
    except UnsupportedImageError as error:
        raise UnsupportedMediaTypeError(f"{source.filename!r}: {error}") from None
    except InvalidImageError as error:
        raise InvalidInputError(f"{source.filename!r}: {error}") from None
    return image.width, image.height


def submit(
    *,
    session: Session,
    settings: Settings,
    owner_id: uuid.UUID,
    spec: ExecutionSpec,
    sources: Sequence[Source],
    as_batch: bool,
) -> list[Job]:
    """Queue one job per source (in a new batch when `as_batch`); returns the jobs."""
    check_batch_size(len(sources), settings)
    sizes = [source_size(source, settings) for source in sources]  # every check before any write
    pipeline = spec.pipeline()
    batch = None
    if as_batch:
        batch = Batch(
            owner_id=owner_id, runner=spec.runner, workers=spec.workers, pipeline=pipeline
        )
        session.add(batch)
    jobs: list[Job] = []
    written: list[Path] = []
    try:
        for source, (width, height) in zip(sources, sizes, strict=True):
            job = Job(
                owner_id=owner_id,
                batch_id=batch.id if batch else None,
                runner=spec.runner,
                workers=spec.workers,
                pipeline=pipeline,
                width=width,
                height=height,
            )
            if isinstance(source, Upload):
                relative = UPLOADS_DIR / str(job.id)
                write_atomically(settings.DATA_DIR / relative, source.data, mode=0o600)
                written.append(settings.DATA_DIR / relative)
                job.upload_path = str(relative)
                job.upload_filename = source.filename
            else:
                job.seed = source.seed
            session.add(job)
            jobs.append(job)
        session.commit()
    except BaseException:
        session.rollback()
        for path in written:
            path.unlink(missing_ok=True)
        raise
    for job in jobs:
        session.refresh(job)
    return jobs


def expand_set(source: SyntheticSet) -> list[SyntheticSource]:
    """Image i of a synthetic set uses seed + i."""
    return [
        SyntheticSource(width=source.width, height=source.height, seed=source.seed + index)
        for index in range(source.count)
    ]


def get_job(*, session: Session, owner_id: uuid.UUID, job_id: uuid.UUID) -> Job:
    return get_owned(session, Job, job_id, owner_id)


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
    query = select(Job).where(Job.owner_id == owner_id)
    if status is not None:
        query = query.where(Job.status == status)
    if runner is not None:
        query = query.where(Job.runner == runner)
    if batch_id is not None:
        query = query.where(Job.batch_id == batch_id)
    return newest_first(session, query, Job, limit=limit, offset=offset)


def result_path(job: Job, settings: Settings) -> Path:
    if job.status is not Status.SUCCEEDED or job.output_path is None:
        raise ConflictError(f"job {job.id} is {job.status}; its result exists once it succeeds")
    return settings.DATA_DIR / job.output_path


def delete_job(*, session: Session, settings: Settings, job: Job) -> Job | None:
    """Cancel a queued job (returned, now cancelled), or delete a finished one (None)."""
    session.refresh(job, with_for_update=True)  # PostgreSQL: the executor may be claiming it
    if job.status is Status.QUEUED:
        job.status = Status.CANCELLED
        job.error = "cancelled by its owner before it ran"
        session.add(job)
        session.commit()
        session.refresh(job)
        remove_files(job, settings)
        return job
    if job.status is Status.RUNNING:
        raise ConflictError(f"job {job.id} is running; it can be deleted once it finishes")
    session.delete(job)
    session.commit()
    remove_files(job, settings)
    return None


def remove_files(job: Job, settings: Settings) -> None:
    for relative in (job.upload_path, job.output_path):
        if relative is not None:
            (settings.DATA_DIR / relative).unlink(missing_ok=True)


def get_batch(*, session: Session, owner_id: uuid.UUID, batch_id: uuid.UUID) -> Batch:
    return get_owned(session, Batch, batch_id, owner_id)


def list_batches(
    *, session: Session, owner_id: uuid.UUID, limit: int, offset: int
) -> tuple[list[Batch], int]:
    query = select(Batch).where(Batch.owner_id == owner_id)
    return newest_first(session, query, Batch, limit=limit, offset=offset)


def describe_batch(*, session: Session, batch: Batch) -> BatchPublic:
    jobs = session.exec(select(Job).where(Job.batch_id == batch.id).order_by(col(Job.id))).all()
    counts = Counter(job.status for job in jobs)
    latencies = [job.latency_s for job in jobs if job.latency_s is not None]
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
            total=len(jobs),
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
        job_ids=[job.id for job in jobs],
    )
