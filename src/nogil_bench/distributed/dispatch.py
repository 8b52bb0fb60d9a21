"""The service's side with a broker: hand queued work to Celery, in FIFO order.

The dispatcher takes the executor's place (same thread, heartbeat, drain), but instead of
running the oldest queued work it sends a task for it and marks it dispatched: what each kind
of work hands out is its own (`WorkKind.deliveries`: a single job or a benchmark whole, a
batch's queued jobs in chunks, so that the batch spreads over every worker). Rows stay `queued`
until a worker claims them. Work put back in the queue (a dead worker's lease ran out, a warm
shutdown) loses its mark and is dispatched again; so is work still queued REDISPATCH_SECONDS
after it was sent (a broker restarted without its data).
"""

import uuid
from collections.abc import Sequence
from datetime import timedelta

from celery import Celery
from loguru import logger
from sqlalchemy import Engine, or_
from sqlmodel import Session, col, select

from nogil_bench.core.config import Settings
from nogil_bench.core.db import write
from nogil_bench.core.models import QueuedWork, Status, utc_now
from nogil_bench.core.work import Delivery, WorkKind
from nogil_bench.distributed.celery_app import EXECUTIONS_QUEUE, RUN_TASK
from nogil_bench.work.executor import Executor
from nogil_bench.work.registry import WORK_KINDS

# How long a probe (readiness, metrics) waits for the broker.
BROKER_TIMEOUT_S = 2
# Rows looked at per kind and pass: a pass holds their row locks while it publishes.
DISPATCH_ROWS = 500


def task_args(delivery: Delivery) -> list[object]:
    """RUN_TASK's arguments: kind and id, then the part's row ids when it is a part."""
    args: list[object] = [delivery.kind, str(delivery.id)]
    if delivery.part:
        args.append([str(row_id) for row_id in delivery.part])
    return args


def dispatch_pending(engine: Engine, settings: Settings, celery: Celery) -> int:
    """Sends a task for every queued row not yet dispatched (or dispatched too long ago), in
    FIFO order, and marks them; returns how many rows. Publishing happens inside the
    transaction: if the broker is down nothing is marked, and the next pass tries again. A
    failure after publishing leaves rows unmarked, so they go out twice: harmless, as a
    worker runs only what is still queued."""

    def dispatch(session: Session) -> int:
        now = utc_now()
        stale = now - timedelta(seconds=settings.REDISPATCH_SECONDS)
        pages: list[tuple[WorkKind, Sequence[QueuedWork]]] = []
        for kind in WORK_KINDS.values():
            table, conditions = kind.dispatched()
            due = or_(col(table.dispatched_at).is_(None), col(table.dispatched_at) < stale)
            found = session.exec(
                select(table)
                .where(col(table.status) == Status.QUEUED, due, *conditions)
                .order_by(col(table.id))
                .limit(DISPATCH_ROWS)
                .with_for_update(skip_locked=True)
            ).all()
            pages.append((kind, found))
        # A full page may leave rows older than another kind's newest: this pass hands out
        # rows up to the earliest last row of a full page, so FIFO holds across passes.
        horizon = min(
            (found[-1].id for _, found in pages if len(found) == DISPATCH_ROWS), default=None
        )
        rows: list[QueuedWork] = []
        deliveries: list[Delivery] = []
        for kind, found in pages:
            taken = [row for row in found if horizon is None or row.id <= horizon]
            rows += taken
            deliveries += kind.deliveries(taken)
        for delivery in sorted(deliveries, key=lambda delivery: delivery.fifo_key):
            celery.send_task(RUN_TASK, args=task_args(delivery), queue=EXECUTIONS_QUEUE)
        for row in rows:
            row.dispatched_at = now
            session.add(row)
        return len(rows)

    dispatched = write(engine, dispatch)
    if dispatched:
        logger.info("dispatched {} queued rows to the broker", dispatched)
    return dispatched


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
        for kind in WORK_KINDS.values():
            kind.settle(self.engine)
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
