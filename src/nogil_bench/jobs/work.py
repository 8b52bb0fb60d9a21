"""Single jobs and batches as kinds of queued work (`nogil_bench.work`).

A single job runs whole. A batch runs chunk by chunk in one pool on the executor; with a
broker its queued jobs go out in chunks instead, so that the batch spreads over every worker,
and it finishes with its last job, whoever ran it.
"""

import uuid
from collections.abc import Sequence
from itertools import batched
from typing import ClassVar

from sqlalchemy import ColumnElement, Engine
from sqlmodel import Session, col, select

from nogil_bench.core.models import QueuedWork, fail_unfinished
from nogil_bench.core.work import Context, Delivery, WorkKind
from nogil_bench.jobs import runs
from nogil_bench.jobs.models import Batch, Job


def load[Row: (Job, Batch)](context: Context, table: type[Row], work_id: uuid.UUID) -> Row | None:
    """The row, detached: runs take minutes and must not hold a session open meanwhile."""
    with Session(context.engine) as session:
        row = session.get(table, work_id)
        if row is not None:
            session.expunge(row)
        return row


class SingleJobs(WorkKind):
    """Jobs outside a batch are claimed and handed out whole. Its table holds a batch's jobs
    too: leases, recoveries and requeues treat every job row alike, as a job."""

    name = "job"
    table: ClassVar[type[QueuedWork]] = Job
    restarts_clock = True

    def claimable(self) -> Sequence[ColumnElement[bool]]:
        return (col(Job.batch_id).is_(None),)  # a batch's jobs run with their batch

    def run(self, context: Context, work_id: uuid.UUID) -> None:
        job = load(context, Job, work_id)
        if job is not None:
            runs.execute_job(context.engine, context.settings, job, context.boot_id)

    def lock(self, session: Session, work_id: uuid.UUID) -> None:
        session.exec(select(Job.id).where(Job.id == work_id).with_for_update()).all()

    def fail(self, session: Session, work_id: uuid.UUID, boot_id: uuid.UUID, error: str) -> None:
        fail_unfinished(session, Job, col(Job.id) == work_id, boot_id=boot_id, error=error)


class Batches(WorkKind):
    name = "batch"
    table: ClassVar[type[QueuedWork]] = Batch
    delivered_in_parts = True  # with a broker, its jobs go out in chunks
    fails_after_max_attempts = False  # its jobs carry the attempts

    def run(self, context: Context, work_id: uuid.UUID) -> None:
        batch = load(context, Batch, work_id)
        if batch is not None:
            runs.execute_batch(
                context.engine,
                context.settings,
                batch,
                context.should_stop,
                context.boot_id,
                context.worker,
            )

    def lock(self, session: Session, work_id: uuid.UUID) -> None:
        session.exec(
            select(Job.id).where(Job.batch_id == work_id).order_by(col(Job.id)).with_for_update()
        ).all()
        session.exec(select(Batch.id).where(Batch.id == work_id).with_for_update()).all()

    def fail(self, session: Session, work_id: uuid.UUID, boot_id: uuid.UUID, error: str) -> None:
        runs.fail_batch_jobs(session, work_id, boot_id, error)
        fail_unfinished(session, Batch, col(Batch.id) == work_id, boot_id=boot_id, error=error)

    def dispatched(self) -> tuple[type[QueuedWork], Sequence[ColumnElement[bool]]]:
        return Job, (col(Job.batch_id).is_not(None),)

    def deliveries(self, rows: Sequence[QueuedWork]) -> list[Delivery]:
        """The batches' queued jobs, in chunks of a few tasks per pool worker of the batch."""
        by_batch: dict[uuid.UUID, list[Job]] = {}
        for job in rows:
            assert isinstance(job, Job)
            assert job.batch_id is not None
            by_batch.setdefault(job.batch_id, []).append(job)
        return [
            Delivery(self.name, batch_id, tuple(job.id for job in chunk))
            for batch_id, members in by_batch.items()
            for chunk in batched(
                members,
                max(1, members[0].workers * runs.TASKS_PER_WORKER_PER_CHUNK),
                strict=False,
            )
        ]

    def run_part(self, context: Context, delivery: Delivery) -> int:
        return runs.execute_chunk(
            context.engine,
            context.settings,
            delivery.id,
            delivery.part,
            context.should_stop,
            context.boot_id,
            context.worker,
        )

    def settle(self, engine: Engine) -> int:
        return runs.finish_done_batches(engine)
