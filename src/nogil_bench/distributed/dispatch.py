"""The service's side with a broker: hand queued work to Celery, in FIFO order.

The dispatcher takes the executor's place (same thread, heartbeat, drain), but instead of
running the oldest queued work it marks it dispatched and sends a task for it: what each kind
of work hands out is its own (`WorkKind.deliveries`: a single job or a benchmark whole, a
batch's queued jobs in chunks, so that the batch spreads over every worker). Rows stay `queued`
until a worker claims them. Work put back in the queue (a dead worker's lease ran out, a warm
shutdown) loses its mark and is dispatched again; so is work still queued REDISPATCH_SECONDS
after it was sent (a broker restarted without its data).
"""

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from celery import Celery
from loguru import logger
from sqlalchemy import Engine, or_, update
from sqlmodel import Session, col, select

from nogil_bench.core.config import Settings
from nogil_bench.core.db import write
from nogil_bench.core.metrics import BrokerQueues
from nogil_bench.core.models import QueuedWork, Status, utc_now
from nogil_bench.core.work import Delivery, WorkKind
from nogil_bench.distributed.broker import TIMEOUT_OPTIONS, queue_lengths
from nogil_bench.distributed.celery_app import RUN_TASK, dead_queue, work_queue
from nogil_bench.distributed.dead_letters import described, list_dead
from nogil_bench.work.executor import Executor
from nogil_bench.work.registry import WORK_KINDS, WORK_QUEUES

# Rows looked at, and marked, per kind and pass.
DISPATCH_ROWS = 500


def task_args(delivery: Delivery) -> list[object]:
    """RUN_TASK's arguments: kind and id, then the part's row ids when it is a part."""
    args: list[object] = [delivery.kind, str(delivery.id)]
    if delivery.part:
        args.append([str(row_id) for row_id in delivery.part])
    return args


def dispatch_pending(engine: Engine, settings: Settings, celery: Celery) -> int:
    """Hands every queued row not yet dispatched (or dispatched too long ago) to the broker,
    in FIFO order; returns how many rows went out.

    The rows are marked dispatched in one short transaction, and their tasks published after
    it commits: a slow or stopped broker then holds no lock a request needs, and a publish
    gives up within a few BROKER_TIMEOUT_S (redis-py retries a command that timed out). When
    a publish fails, the rows not yet sent lose their mark again, so the next pass sends them,
    in order, once the broker answers; if even that cannot be written (or the process dies
    between commit and publish), REDISPATCH_SECONDS sends them again. A row whose task went
    out twice (a publish that timed out after the broker had it) runs once: a worker runs only
    what is still queued."""
    now = utc_now()
    deliveries = write(engine, lambda session: mark_due(session, settings, now))
    sent = publish(celery, settings, deliveries)
    if sent < len(deliveries):
        unmark(engine, deliveries[sent:], now)
    dispatched = sum(len(rows_of(delivery)) for delivery in deliveries[:sent])
    if dispatched:
        logger.info("dispatched {} queued rows to the broker", dispatched)
    return dispatched


def mark_due(session: Session, settings: Settings, now: datetime) -> list[Delivery]:
    """Marks the queued rows due for dispatch with `now`; returns their deliveries, oldest
    first. Not committed."""
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
    horizon = min((found[-1].id for _, found in pages if len(found) == DISPATCH_ROWS), default=None)
    deliveries: list[Delivery] = []
    for kind, found in pages:
        taken = [row for row in found if horizon is None or row.id <= horizon]
        for row in taken:
            row.dispatched_at = now
            session.add(row)
        deliveries += kind.deliveries(taken)
    return sorted(deliveries, key=lambda delivery: delivery.fifo_key)


def publish(celery: Celery, settings: Settings, deliveries: Sequence[Delivery]) -> int:
    """Sends a task for each delivery to its kind's queue, in order, until one fails; returns
    how many went."""
    if not deliveries:
        return 0
    assert settings.broker_kind is not None
    options = TIMEOUT_OPTIONS[settings.broker_kind]
    sent = 0
    try:
        with celery.connection_for_write(transport_options=options) as connection:
            for delivery in deliveries:
                # No retry: the next pass is the retry. No result: executions report through
                # the database, and a result would subscribe this process to it, untimed.
                celery.send_task(
                    RUN_TASK,
                    args=task_args(delivery),
                    queue=work_queue(WORK_KINDS[delivery.kind].queue),
                    connection=connection,
                    retry=False,
                    ignore_result=True,
                )
                sent += 1
    except Exception as error:  # any transport error: the rest wait for the next pass
        logger.warning(
            "the broker took {} of {} tasks, then failed: {!r}", sent, len(deliveries), error
        )
    return sent


def unmark(engine: Engine, deliveries: Sequence[Delivery], marked_at: datetime) -> None:
    """Makes the rows of deliveries that were marked at `marked_at` but never sent due again."""
    by_table: dict[type[QueuedWork], list[uuid.UUID]] = {}
    for delivery in deliveries:
        table, _ = WORK_KINDS[delivery.kind].dispatched()
        by_table.setdefault(table, []).extend(rows_of(delivery))

    def clear(session: Session) -> None:
        for table, ids in by_table.items():
            session.execute(
                update(table)
                .where(col(table.id).in_(ids), col(table.dispatched_at) == marked_at)
                .values(dispatched_at=None)
            )

    try:
        write(engine, clear)
    except Exception:  # the database is failing too: REDISPATCH_SECONDS sends them again
        logger.exception("could not unmark {} undelivered tasks", len(deliveries))


def rows_of(delivery: Delivery) -> tuple[uuid.UUID, ...]:
    """The ids of the rows a delivery hands out (in its kind's dispatched table)."""
    return delivery.part or (delivery.id,)


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

    def dead_letters(self, queues: Sequence[str], limit: int) -> list[dict[str, Any]]:
        assert self.settings.broker_kind is not None
        found = list_dead(self.celery, self.settings.broker_kind, queues, limit)
        return [described(letter) for letter in found]

    def queue_depths(self) -> BrokerQueues:
        """Tasks waiting in the broker, in each kind of work's queue (by its broker name), and
        kept as dead letters (by the queue's, e.g. jobs)."""
        assert self.settings.broker_kind is not None
        waiting = {work_queue(queue): queue for queue in WORK_QUEUES}
        dead = {dead_queue(queue): queue for queue in WORK_QUEUES}
        lengths = queue_lengths(self.celery, self.settings.broker_kind, [*waiting, *dead])
        return BrokerQueues(
            {name: lengths[name] for name in waiting},
            {queue: lengths[name] for name, queue in dead.items()},
        )
