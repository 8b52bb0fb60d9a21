"""Running claimed jobs: a single job, or a batch in chunks, on one runner, measured.

A batch runs in chunks of a few tasks per worker inside one pool: progress and cancellations
show between chunks, and a stop request (shutdown) leaves the rest queued.
"""

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from loguru import logger
from sqlalchemy import Engine, func, update
from sqlmodel import Session, col, select

from nogil_bench.bench.measure import RunMeter
from nogil_bench.core import metrics, runtime
from nogil_bench.core.config import Settings
from nogil_bench.core.db import write
from nogil_bench.core.models import Status, fail_unfinished, utc_now
from nogil_bench.core.storage import get_store, output_key
from nogil_bench.jobs.models import Batch, Job
from nogil_bench.runners import BaseRunner, get_runner
from nogil_bench.runners.base import warm_up
from nogil_bench.runners.deadline import ExecutionTimeoutError, run_with_deadline
from nogil_bench.runners.timing import Outcome
from nogil_bench.workloads.images import ImageJob, SyntheticSource, run_jobs_captured
from nogil_bench.workloads.model import steps_from_json

TASKS_PER_WORKER_PER_CHUNK = 4


def image_job(engine: Engine, settings: Settings, job: Job) -> ImageJob:
    """The job's work, its upload read whole from the file store."""
    steps = steps_from_json(job.pipeline)
    if job.upload_path is not None:
        data = get_store(settings, engine).read(job.upload_path)
        return ImageJob(data, steps, max_pixels=settings.MAX_IMAGE_PIXELS)
    assert job.seed is not None
    return ImageJob(SyntheticSource(job.width, job.height, job.seed), steps)


def claim_chunk(
    engine: Engine,
    job_ids: Sequence[uuid.UUID],
    boot_id: uuid.UUID,
    lease_s: float,
    worker: str = "",
) -> list[Job]:
    """Mark the still-queued jobs among `job_ids` running by `boot_id` (skipping cancelled
    ones), counting the attempt and taking their lease."""

    def claim(session: Session) -> list[Job]:
        jobs = list(
            session.exec(
                select(Job)
                .where(col(Job.id).in_(job_ids), Job.status == Status.QUEUED)
                .order_by(col(Job.id))
                .with_for_update()  # PostgreSQL: a cancel waits, or this skips what it cancelled
            ).all()
        )
        now = utc_now()
        for job in jobs:
            job.status = Status.RUNNING
            job.boot_id = boot_id
            job.worker = worker
            job.started_at = now
            job.lease_expires_at = now + timedelta(seconds=lease_s)
            job.attempts += 1
            session.add(job)
        return jobs

    return write(engine, claim)


def record_outcomes(
    engine: Engine,
    settings: Settings,
    jobs: Sequence[Job],
    outcomes: Sequence[Outcome[bytes]],
    boot_id: uuid.UUID,
    figures: dict[str, float] | None = None,
) -> None:
    """The outcomes of those of `jobs` this process still runs, with `figures`, their run's,
    when given: on each job, and for a chunk of a batch, counted towards the batch's."""
    gil_enabled = runtime.is_gil_enabled()
    store = get_store(settings, engine)
    # Outputs are stored before the transaction (nothing slow under the write lock), each
    # under a key of this run's own, so a run that lost its claim removes only its files.
    outputs: dict[uuid.UUID, str] = {}
    for job, outcome in zip(jobs, outcomes, strict=True):
        if outcome.value is not None:
            outputs[job.id] = output_key(job.id)
            store.save(outputs[job.id], outcome.value)

    def record(session: Session) -> set[uuid.UUID]:
        recorded: set[uuid.UUID] = set()
        for job, outcome in zip(jobs, outcomes, strict=True):
            row = session.get(Job, job.id, with_for_update=True)
            if row is None or row.status != Status.RUNNING or row.boot_id != boot_id:
                # Deleted meanwhile, put back in the queue at a shutdown's deadline, or taken
                # over after this process's lease ran out: the outcome is dropped.
                continue
            started = datetime.fromtimestamp(outcome.started_at, UTC)
            row.started_at = started
            row.finished_at = datetime.fromtimestamp(outcome.started_at + outcome.wall_s, UTC)
            row.latency_s = outcome.wall_s
            row.cpu_s = outcome.cpu_s
            row.gil_enabled = gil_enabled
            row.lease_expires_at = None
            for name, value in (figures or {}).items():
                setattr(row, name, value)
            if outcome.value is None:
                row.status = Status.FAILED
                row.error = outcome.error
            else:
                row.status = Status.SUCCEEDED
                row.output_path = outputs[job.id]
                row.output_bytes = len(outcome.value)
            session.add(row)
            recorded.add(job.id)
        if figures and recorded and jobs[0].batch_id is not None:
            count_chunk(session, jobs[0].batch_id, figures)
        return recorded

    try:
        recorded = write(engine, record)
    except BaseException:
        recorded = set()
        raise
    finally:
        store.delete(key for job_id, key in outputs.items() if job_id not in recorded)
    gil = "1" if gil_enabled else "0"
    for job, outcome in zip(jobs, outcomes, strict=True):
        if job.id not in recorded:
            continue
        metrics.JOB_SECONDS.labels(job.runner, gil).observe(outcome.wall_s)
        job_log = logger.bind(job_id=str(job.id))
        if outcome.value is None:
            job_log.warning("job failed after {:.3f} s: {}", outcome.wall_s, outcome.error)
        else:
            job_log.info("job succeeded in {:.3f} s", outcome.wall_s)


# Added up over a batch's chunks; its wall time is first start to last finish instead.
SUMMED_FIGURES = ("setup_s", "cpu_user_s", "cpu_system_s", "ctx_voluntary", "ctx_involuntary")


def count_chunk(session: Session, batch_id: uuid.UUID, figures: dict[str, float]) -> None:
    """With a broker: a chunk's run counts towards its batch's figures, which then mean what
    the one pool of an embedded run measures: every pool start-up, CPU second and context
    switch spent on the batch, and the highest peak RSS of a process (tree) that ran it."""
    batch = session.get(Batch, batch_id, with_for_update=True)  # after its jobs: the lock order
    if batch is None:
        return
    for name in SUMMED_FIGURES:
        setattr(batch, name, (getattr(batch, name) or 0) + figures[name])
    batch.peak_rss_bytes = max(batch.peak_rss_bytes or 0, int(figures["peak_rss_bytes"]))
    session.add(batch)


def fail_jobs(engine: Engine, jobs: Sequence[Job], boot_id: uuid.UUID, error: str) -> None:
    """Fails those of `jobs` this process still runs (not those put back in the queue or
    taken over meanwhile)."""
    ids = [job.id for job in jobs]
    write(
        engine,
        lambda session: fail_unfinished(
            session, Job, col(Job.id).in_(ids), boot_id=boot_id, error=error
        ),
    )


def fail_batch_jobs(session: Session, batch_id: uuid.UUID, boot_id: uuid.UUID, error: str) -> None:
    """Fails the batch's jobs that `boot_id` still runs and those never started (without a
    run, so without counting an attempt). Not committed."""
    fail_unfinished(
        session, Job, col(Job.batch_id) == batch_id, boot_id=boot_id, error=error, queued_too=True
    )


def run_bounded(
    runner: BaseRunner, jobs: Sequence[ImageJob], settings: Settings
) -> list[Outcome[bytes]]:
    """The jobs on the runner, within EXECUTION_TIMEOUT_SECONDS."""
    return run_with_deadline(
        runner,
        lambda running: run_jobs_captured(running, jobs),
        timeout_s=settings.EXECUTION_TIMEOUT_SECONDS,
    )


def pool_failure(runner: BaseRunner, error: Exception) -> str:
    if isinstance(error, ExecutionTimeoutError):
        return str(error)
    return f"the {runner.name} pool failed: {error}"


def run_chunks(
    engine: Engine,
    settings: Settings,
    runner: BaseRunner,
    job_ids: Sequence[uuid.UUID],
    should_stop: Callable[[], bool],
    boot_id: uuid.UUID,
    worker: str = "",
) -> None:
    """Run the jobs chunk by chunk, until done or stopped (the rest stay queued)."""
    size = runner.workers * TASKS_PER_WORKER_PER_CHUNK
    for start in range(0, len(job_ids), size):
        if should_stop():
            return
        chunk = job_ids[start : start + size]
        jobs = claim_chunk(engine, chunk, boot_id, settings.LEASE_SECONDS, worker)
        if jobs:
            run_claimed_chunk(engine, settings, runner, jobs, should_stop, boot_id)


def run_claimed_chunk(
    engine: Engine,
    settings: Settings,
    runner: BaseRunner,
    jobs: Sequence[Job],
    should_stop: Callable[[], bool],
    boot_id: uuid.UUID,
    figures: Callable[[], dict[str, float]] | None = None,
) -> None:
    """Runs claimed `jobs` on the runner and records their outcomes (with `figures()`, taken
    after the run, when given). A pool failure fails them, then raises."""
    try:
        image_jobs = [image_job(engine, settings, job) for job in jobs]
        outcomes = run_bounded(runner, image_jobs, settings)
    except Exception as error:
        # The pool itself failed (a worker process died, say) or hung: these jobs did not
        # finish.
        if should_stop():  # its processes stopped at a shutdown's deadline: expected
            logger.info("{} pool stopped under its chunk: {}", runner.name, error)
        else:
            ids = [job.id for job in jobs]
            logger.exception("{} runner failed on jobs {}", runner.name, ids)
        fail_jobs(engine, jobs, boot_id, pool_failure(runner, error))
        raise
    record_outcomes(
        engine, settings, jobs, outcomes, boot_id, figures() if figures is not None else None
    )


def run_figures(meter: RunMeter, setup_s: float) -> dict[str, float]:
    return {"setup_s": setup_s, **meter.figures()}


def execute_job(engine: Engine, settings: Settings, job: Job, boot_id: uuid.UUID) -> None:
    """A claimed single job: it becomes succeeded or failed together with its run's figures."""
    with RunMeter() as meter, get_runner(job.runner)(job.workers) as runner:
        warm_up(runner)
        setup_s = meter.elapsed_s()
        try:
            outcomes = run_bounded(runner, [image_job(engine, settings, job)], settings)
        except Exception as error:
            fail_jobs(engine, [job], boot_id, pool_failure(runner, error))
            raise
        meter.stop()
    record_outcomes(engine, settings, [job], outcomes, boot_id, run_figures(meter, setup_s))


def execute_batch(
    engine: Engine,
    settings: Settings,
    batch: Batch,
    should_stop: Callable[[], bool],
    boot_id: uuid.UUID,
    worker: str = "",
) -> None:
    """A claimed batch, chunk by chunk; then the run's figures go on the batch and its jobs.
    When stopped early, the batch goes back to the queue with its unfinished jobs."""
    with Session(engine) as session:
        job_ids = list(
            session.exec(select(Job.id).where(Job.batch_id == batch.id).order_by(col(Job.id))).all()
        )
    error: str | None = None
    with RunMeter() as meter, get_runner(batch.runner)(batch.workers) as runner:
        warm_up(runner)
        setup_s = meter.elapsed_s()
        try:
            run_chunks(engine, settings, runner, job_ids, should_stop, boot_id, worker)
        except Exception as failure:
            error = pool_failure(runner, failure)
            if not should_stop():  # when stopping, unstarted jobs wait for the next start
                not_run = "not run: " + error
                write(engine, lambda session: fail_batch_jobs(session, batch.id, boot_id, not_run))
        meter.stop()
    figures = run_figures(meter, setup_s)

    def finish(session: Session) -> None:
        row = session.get(Batch, batch.id, with_for_update=True)
        if row is None or row.status != Status.RUNNING or row.boot_id != boot_id:
            return  # put back at a shutdown's deadline, or taken over: no longer ours
        statuses = [
            Status(value)
            for value in session.exec(select(Job.status).where(Job.batch_id == batch.id)).all()
        ]
        if not all(status.finished for status in statuses):  # stopped between chunks
            row.put_back()
        else:
            row.status, row.error = batch_outcome(statuses, error)
            row.finished_at = utc_now()
            row.lease_expires_at = None
            row.gil_enabled = runtime.is_gil_enabled()
            for name, value in figures.items():
                setattr(row, name, value)
            session.execute(update(Job).where(col(Job.batch_id) == batch.id).values(**figures))
        session.add(row)

    write(engine, finish)


def batch_outcome(statuses: Sequence[Status], error: str | None) -> tuple[Status, str | None]:
    failed = sum(status is Status.FAILED for status in statuses)
    if error is not None:
        return Status.FAILED, error
    if failed:
        return Status.FAILED, f"{failed} of {len(statuses)} jobs failed"
    if statuses and all(status is Status.CANCELLED for status in statuses):
        return Status.CANCELLED, "every job was cancelled"
    return Status.SUCCEEDED, None


def execute_chunk(
    engine: Engine,
    settings: Settings,
    batch_id: uuid.UUID,
    job_ids: Sequence[uuid.UUID],
    should_stop: Callable[[], bool],
    boot_id: uuid.UUID,
    worker: str,
) -> int:
    """With a broker: one chunk of a batch, as a Celery task hands it to a worker. Only the
    jobs still queued run (a redelivered task finds the rest taken or finished); their
    figures are this chunk's run. The batch finishes with its last job, whoever ran it.
    Returns how many jobs ran."""
    with Session(engine) as session:
        batch = session.get(Batch, batch_id)
    if batch is None or batch.status.finished:
        return 0
    jobs = claim_chunk(engine, job_ids, boot_id, settings.LEASE_SECONDS, worker)
    if jobs:
        mark_batch_running(engine, batch_id, boot_id, settings.LEASE_SECONDS, worker)
        try:
            with RunMeter() as meter, get_runner(batch.runner)(batch.workers) as runner:
                warm_up(runner)
                setup_s = meter.elapsed_s()

                def figures() -> dict[str, float]:
                    meter.stop()
                    return run_figures(meter, setup_s)

                run_claimed_chunk(engine, settings, runner, jobs, should_stop, boot_id, figures)
        except Exception as error:
            logger.exception("batch {}: a chunk of {} jobs failed", batch_id, len(jobs))
            # Its runner could not start (run_claimed_chunk fails the jobs of a run that
            # failed): left running, this worker's heartbeat would hold them for ever.
            fail_jobs(engine, jobs, boot_id, f"the {batch.runner} runner failed: {error}")
    finish_batch_if_done(engine, batch_id)
    return len(jobs)


def mark_batch_running(
    engine: Engine, batch_id: uuid.UUID, boot_id: uuid.UUID, lease_s: float, worker: str
) -> None:
    """A chunk of the batch starts: the batch runs, held by the newest chunk's process."""
    now = utc_now()
    write(
        engine,
        lambda session: session.execute(
            update(Batch)
            .where(
                col(Batch.id) == batch_id,
                col(Batch.status).in_([Status.QUEUED, Status.RUNNING]),
            )
            .values(
                status=Status.RUNNING,
                boot_id=boot_id,
                worker=worker,
                lease_expires_at=now + timedelta(seconds=lease_s),
                started_at=func.coalesce(col(Batch.started_at), now),
            )
        ),
    )


def finish_batch_if_done(engine: Engine, batch_id: uuid.UUID) -> bool:
    """With a broker: once every job of the batch has finished, the batch does too, with its
    outcome, its wall time (first start to last finish) and the GIL state its jobs ran with.
    True when this call finished it."""

    def finish(session: Session) -> bool:
        row = session.get(Batch, batch_id, with_for_update=True)
        if row is None or row.status.finished:
            return False
        jobs = session.exec(
            select(Job.status, Job.started_at, Job.finished_at, Job.gil_enabled).where(
                Job.batch_id == batch_id
            )
        ).all()
        statuses = [Status(status) for status, *_ in jobs]
        if not statuses or not all(status.finished for status in statuses):
            return False
        started = [started for _, started, _, _ in jobs if started is not None]
        finished = [finished for _, _, finished, _ in jobs if finished is not None]
        gil_states = {gil for *_, gil in jobs if gil is not None}
        row.status, row.error = batch_outcome(statuses, None)
        row.finished_at = max(finished, default=utc_now())
        row.started_at = row.started_at or min(started, default=row.finished_at)
        row.wall_s = (row.finished_at - min(started, default=row.started_at)).total_seconds()
        row.gil_enabled = gil_states.pop() if len(gil_states) == 1 else None
        row.boot_id = None
        row.lease_expires_at = None
        session.add(row)
        return True

    return write(engine, finish)


def finish_done_batches(engine: Engine) -> int:
    """With a broker: finishes batches whose every job has finished (normally the last chunk's
    worker does; this covers a worker that died between its last job and the batch)."""
    with Session(engine) as session:
        open_batches = session.exec(
            select(Batch.id).where(col(Batch.status).in_([Status.QUEUED, Status.RUNNING]))
        ).all()
        unfinished = set(
            session.exec(
                select(Job.batch_id).where(
                    col(Job.batch_id).in_(open_batches),
                    col(Job.status).in_([Status.QUEUED, Status.RUNNING]),
                )
            ).all()
        )
    return sum(
        finish_batch_if_done(engine, batch_id)
        for batch_id in open_batches
        if batch_id not in unfinished
    )
