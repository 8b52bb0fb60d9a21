"""The rules every kind of queued work follows, whichever driver runs it.

Claims: a claim is one write transaction (`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite's
write lock serialises it), so each piece of work is claimed by exactly one process. What a
process runs carries a lease (`lease_expires_at`) that its heartbeat renews; a lease that runs
out means its process died (or stalled that long), and any process then puts the work back in
the queue, or fails it after MAX_ATTEMPTS runs. Every write about running work names the
process (its boot id), so a process that lost its claim cannot overwrite what another one now
runs.
"""

import uuid
from collections.abc import Callable
from datetime import timedelta

from loguru import logger
from sqlalchemy import Engine, and_, case, func, or_, update
from sqlmodel import Session, col, select

from nogil_bench.core.db import write
from nogil_bench.core.metrics import QueueCounts
from nogil_bench.core.models import QueuedWork, Status, utc_now
from nogil_bench.core.work import Claim, Context, Delivery, WorkKind
from nogil_bench.work.registry import WORK_KINDS, UnknownWorkKindError, get_kind


def take(row: QueuedWork, kind: WorkKind, boot_id: uuid.UUID, lease_s: float, worker: str) -> None:
    """Marks queued `row` running by `boot_id` (named `worker`): its attempt counted, its lease
    taken. Not committed."""
    now = utc_now()
    row.status = Status.RUNNING
    row.boot_id = boot_id
    row.worker = worker
    row.attempts += 1
    row.lease_expires_at = now + timedelta(seconds=lease_s)
    if row.started_at is None or kind.restarts_clock:
        row.started_at = now


def claim_next(
    engine: Engine, boot_id: uuid.UUID, lease_s: float, worker: str = ""
) -> Claim | None:
    """Claims the oldest queued work of any kind for `boot_id`: marked running, its attempt
    counted, its lease taken."""

    def claim(session: Session) -> Claim | None:
        candidates: list[tuple[WorkKind, QueuedWork]] = []
        for kind in WORK_KINDS.values():
            oldest = session.exec(
                select(kind.table)
                .where(kind.table.status == Status.QUEUED, *kind.claimable())
                .order_by(col(kind.table.id))
                .limit(1)
                .with_for_update(skip_locked=True)
            ).first()
            if oldest is not None:
                candidates.append((kind, oldest))
        if not candidates:
            return None
        kind, row = min(candidates, key=lambda candidate: candidate[1].id)
        take(row, kind, boot_id, lease_s, worker)
        session.add(row)
        return Claim(kind.name, row.id)

    return write(engine, claim)


def claim_queued(
    engine: Engine, claim: Claim, boot_id: uuid.UUID, lease_s: float, worker: str
) -> bool:
    """Claims this one piece of work if it is still queued (a Celery task names its work);
    False when it ran elsewhere, finished, was cancelled or deleted meanwhile. Running only
    what is still queued is what makes a redelivered task harmless."""
    kind = get_kind(claim.kind)

    def claim_it(session: Session) -> bool:
        # FOR UPDATE without SKIP LOCKED: the dispatcher holds the row's lock until its pass
        # commits, and a task can arrive before that; skipping would drop queued work.
        row = session.exec(
            select(kind.table)
            .where(kind.table.id == claim.id, kind.table.status == Status.QUEUED)
            .with_for_update()
        ).first()
        if row is None:
            return False
        take(row, kind, boot_id, lease_s, worker)
        session.add(row)
        return True

    return write(engine, claim_it)


def renew_leases(engine: Engine, boot_id: uuid.UUID, lease_s: float) -> None:
    """Extends the lease of everything `boot_id` runs."""
    expires = utc_now() + timedelta(seconds=lease_s)

    def renew(session: Session) -> None:
        for kind in WORK_KINDS.values():
            session.execute(
                update(kind.table)
                .where(col(kind.table.status) == Status.RUNNING, col(kind.table.boot_id) == boot_id)
                .values(lease_expires_at=expires)
            )

    write(engine, renew)


def requeue_own_work(engine: Engine, boot_id: uuid.UUID) -> dict[str, int]:
    """At the shutdown deadline: what `boot_id` still runs goes back to the queue. The service
    cut these runs short, not the work, so they do not count as attempts. Returns how many
    rows of each kind."""

    def requeue(session: Session) -> dict[str, int]:
        requeued: dict[str, int] = {}
        for kind in WORK_KINDS.values():
            rows = session.exec(
                select(kind.table)
                .where(kind.table.status == Status.RUNNING, kind.table.boot_id == boot_id)
                .order_by(col(kind.table.id))
                .with_for_update()
            ).all()
            for row in rows:
                row.put_back()
                session.add(row)
            if rows:
                requeued[kind.name] = len(rows)
        return requeued

    return write(engine, requeue)


def count_queues(engine: Engine) -> dict[str, QueueCounts]:
    """For /metrics: each queue's waiting rows, how long the oldest has waited, and the rows
    running under a live lease, over the kinds of work that go to it (`WorkKind.queue`)."""
    now = utc_now()
    queued: dict[str, int] = {}
    oldest: dict[str, float] = {}
    leases: dict[str, int] = {}
    with Session(engine) as session:
        for kind in WORK_KINDS.values():
            # One query a kind, over its queued and running rows only (by the status index).
            table, conditions = kind.dispatched()
            waiting = col(table.status) == Status.QUEUED
            held = and_(col(table.status) == Status.RUNNING, col(table.lease_expires_at) > now)
            counts, first, holding = session.exec(
                select(
                    func.sum(case((waiting, 1), else_=0)),
                    func.min(case((waiting, col(table.queued_at)))),
                    func.sum(case((held, 1), else_=0)),
                ).where(col(table.status).in_((Status.QUEUED, Status.RUNNING)), *conditions)
            ).one()
            queued[kind.queue] = queued.get(kind.queue, 0) + int(counts or 0)
            leases[kind.queue] = leases.get(kind.queue, 0) + int(holding or 0)
            if first is not None:
                waited_s = max(0.0, (now - first).total_seconds())
                oldest[kind.queue] = max(oldest.get(kind.queue, 0.0), waited_s)
    return {
        queue: QueueCounts(queued[queue], oldest.get(queue, 0.0), leases[queue]) for queue in queued
    }


def recover_expired(engine: Engine, max_attempts: int) -> int:
    """Work whose lease ran out: the process running it died (or stalled past its lease). It
    goes back to the queue, unless it has had `max_attempts` runs already (work that keeps
    killing its process, say by running it out of memory): then it fails, with the reason.
    Returns how many rows."""

    def recover(session: Session) -> int:
        now = utc_now()
        recovered = 0
        for kind in WORK_KINDS.values():
            lease = col(kind.table.lease_expires_at)
            rows = session.exec(
                select(kind.table)
                .where(kind.table.status == Status.RUNNING, or_(lease.is_(None), lease < now))
                .with_for_update(skip_locked=True)
            ).all()
            for row in rows:
                # Rows from before boot ids were recorded have none.
                dead = f"boot {row.boot_id}" if row.boot_id else "an unrecorded boot"
                if kind.fails_after_max_attempts and row.attempts >= max_attempts:
                    row.status = Status.FAILED
                    row.finished_at = now
                    row.error = (
                        f"interrupted: the service process running it ({dead}) died, on "
                        f"attempt {row.attempts} of {max_attempts} (max_attempts); not retried"
                    )
                    logger.error("{} {} failed after {} attempts", kind.name, row.id, row.attempts)
                else:
                    row.requeue()
                    logger.warning(
                        "{} {} was left running by the process of {}, which died: requeued "
                        "(its lease ran out; attempt {} of {} done)",
                        kind.name,
                        row.id,
                        dead,
                        row.attempts,
                        max_attempts,
                    )
                row.boot_id = None
                row.lease_expires_at = None
                session.add(row)
            recovered += len(rows)
        return recovered

    return write(engine, recover)


def fail_claim(
    engine: Engine,
    claim: Claim,
    boot_id: uuid.UUID,
    error: str,
    abandoned: Callable[[], bool] = lambda: False,
) -> None:
    """A run raised: the work and whatever of it has not finished are failed, with the error.
    Unless `abandoned()` (a drain put the work back in the queue): that is checked holding the
    rows' locks, which the drain's requeue needs too, so the two cannot interleave. Only what
    `boot_id` still runs is touched: a lost claim is another process's now."""
    kind = get_kind(claim.kind)

    def fail(session: Session) -> None:
        kind.lock(session, claim.id)
        if not abandoned():
            kind.fail(session, claim.id, boot_id, error)

    write(engine, fail)


def run_claimed(context: Context, claim: Claim, abandoned: Callable[[], bool]) -> None:
    """Runs work claimed for this process; a failure is written on its rows, unless the
    work was `abandoned()` to the queue meanwhile (a drain's deadline)."""
    kind = get_kind(claim.kind)
    with logger.contextualize(**{f"{claim.kind}_id": str(claim.id)}):
        logger.info("running {} {}", claim.kind, claim.id)
        try:
            kind.run(context, claim.id)
        except Exception as error:
            if abandoned():
                logger.info("{} {} was cut short at shutdown: {}", claim.kind, claim.id, error)
                return
            logger.exception("{} {} failed", claim.kind, claim.id)
            fail_claim(
                context.engine,
                claim,
                context.boot_id,
                f"{type(error).__name__}: {error}",
                abandoned,
            )


class UndeliverableError(ValueError):
    """A delivery that no dispatcher of this version sends: an unknown kind, or work sent in
    parts that goes out whole (or the other way round)."""


def run_delivery(context: Context, delivery: Delivery) -> int:
    """What a worker does with a delivery: runs what of it is still queued (a redelivered one
    finds it taken or finished, and does nothing); returns how many rows ran."""
    try:
        kind = get_kind(delivery.kind)
    except UnknownWorkKindError as error:
        raise UndeliverableError(str(error)) from None
    if bool(delivery.part) != kind.delivered_in_parts:
        how = "in parts" if kind.delivered_in_parts else "whole"
        raise UndeliverableError(f"{kind.name} {delivery.id}: this kind is handed out {how}")
    if delivery.part:
        with logger.contextualize(**{f"{kind.name}_id": str(delivery.id)}):
            return kind.run_part(context, delivery)
    claim = Claim(kind.name, delivery.id)
    settings = context.settings
    if not claim_queued(
        context.engine, claim, context.boot_id, settings.LEASE_SECONDS, context.worker
    ):
        return 0
    run_claimed(context, claim, lambda: False)
    return 1
