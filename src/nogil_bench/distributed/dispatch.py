"""The service's side with a broker: hand queued work to Celery, in FIFO order.

The dispatcher takes the executor's place (same thread, heartbeat, drain), but instead of
running the oldest queued work it sends a task for it and marks it dispatched: a single job or
a benchmark is one task; a batch's queued jobs go out in chunks, so that the batch spreads over
every worker. Rows stay `queued` until a worker claims them. Work put back in the queue (a
dead worker's lease ran out, a warm shutdown) loses its mark and is dispatched again; so is
work still queued REDISPATCH_SECONDS after it was sent (a broker restarted without its data).
"""

import uuid
from collections.abc import Sequence
from datetime import timedelta
from itertools import batched

from celery import Celery
from loguru import logger
from sqlalchemy import Engine, or_
from sqlmodel import Session, col, select

from nogil_bench.benchmarks.models import Benchmark
from nogil_bench.core.config import Settings
from nogil_bench.core.db import write
from nogil_bench.core.models import QueuedWork, Status, utc_now
from nogil_bench.distributed.celery_app import EXECUTIONS_QUEUE, RUN_CHUNK_TASK, RUN_TASK
from nogil_bench.executor import Executor
from nogil_bench.jobs.models import Batch, Job
from nogil_bench.jobs.runs import TASKS_PER_WORKER_PER_CHUNK, finish_batch_if_done

# How long a probe (readiness, metrics) waits for the broker.
BROKER_TIMEOUT_S = 2
# Rows looked at per pass: a pass holds their row locks while it publishes.
DISPATCH_ROWS = 500

type Message = tuple[uuid.UUID, str, list[object]]  # FIFO key, task name, arguments


def chunk_messages(jobs: Sequence[Job]) -> list[Message]:
    """A batch's queued jobs, in chunks of a few tasks per pool worker of the batch."""
    by_batch: dict[uuid.UUID, list[Job]] = {}
    for job in jobs:
        assert job.batch_id is not None
        by_batch.setdefault(job.batch_id, []).append(job)
    messages: list[Message] = []
    for batch_id, members in by_batch.items():
        size = max(1, members[0].workers * TASKS_PER_WORKER_PER_CHUNK)
        for chunk in batched(members, size, strict=False):
            ids = [str(job.id) for job in chunk]
            messages.append((chunk[0].id, RUN_CHUNK_TASK, [str(batch_id), ids]))
    return messages


def dispatch_pending(engine: Engine, settings: Settings, celery: Celery) -> int:
    """Sends a task for every queued row not yet dispatched (or dispatched too long ago), in
    FIFO order, and marks them; returns how many rows. Publishing happens inside the
    transaction: if the broker is down nothing is marked, and the next pass tries again. A
    failure after publishing leaves rows unmarked, so they go out twice: harmless, as a
    worker runs only what is still queued."""

    def dispatch(session: Session) -> int:
        now = utc_now()
        stale = now - timedelta(seconds=settings.REDISPATCH_SECONDS)
        rows: list[QueuedWork] = []
        messages: list[Message] = []
        for table in (Job, Benchmark):
            due = or_(col(table.dispatched_at).is_(None), col(table.dispatched_at) < stale)
            found = session.exec(
                select(table)
                .where(col(table.status) == Status.QUEUED, due)
                .order_by(col(table.id))
                .limit(DISPATCH_ROWS)
                .with_for_update(skip_locked=True)
            ).all()
            rows += found
            if table is Benchmark:
                messages += [(row.id, RUN_TASK, ["benchmark", str(row.id)]) for row in found]
                continue
            jobs = [row for row in found if isinstance(row, Job)]
            messages += [
                (job.id, RUN_TASK, ["job", str(job.id)]) for job in jobs if not job.batch_id
            ]
            messages += chunk_messages([job for job in jobs if job.batch_id])
        for _, name, args in sorted(messages, key=lambda message: message[0]):
            celery.send_task(name, args=args, queue=EXECUTIONS_QUEUE)
        for row in rows:
            row.dispatched_at = now
            session.add(row)
        return len(rows)

    dispatched = write(engine, dispatch)
    if dispatched:
        logger.info("dispatched {} queued rows to the broker", dispatched)
    return dispatched


def finish_done_batches(engine: Engine) -> int:
    """Finishes batches whose every job has finished (normally the last chunk's worker does;
    this covers a worker that died between its last job and the batch)."""
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


class Dispatcher(Executor):
    """The executor's thread, heartbeat and drain, handing work to Celery workers instead of
    running it: the service process itself runs nothing."""

    def __init__(
        self, engine: Engine, settings: Settings, boot_id: uuid.UUID, celery: Celery
    ) -> None:
        super().__init__(engine, settings, boot_id)
        self.celery = celery

    def run_next(self) -> bool:
        """One dispatch pass; False when there was nothing to hand out."""
        finish_done_batches(self.engine)
        return dispatch_pending(self.engine, self.settings, self.celery) > 0

    def broker_check(self) -> str:
        try:
            self.queue_depths()
        except Exception as error:  # any transport error: the probe reports it
            return f"not answering: {error}"
        return "ok"

    def queue_depths(self) -> dict[str, int]:
        """Tasks waiting in the broker (Redis keeps a queue as a list)."""
        with self.celery.connection_for_read() as connection:
            connection.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_S)
            client = connection.default_channel.client  # type: ignore[attr-defined]
            return {EXECUTIONS_QUEUE: int(client.llen(EXECUTIONS_QUEUE))}
