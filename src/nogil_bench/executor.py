"""The background executor: one thread that takes queued work in FIFO order and runs it.

Single jobs, batches and benchmarks share one queue, ordered by their UUIDv7 ids (creation
time). One execution runs at a time per process, so two batches or benchmarks never share the
CPUs and never skew each other's timings; requests only read and write rows meanwhile.

Several service processes may share one database. A claim is one write transaction (`FOR
UPDATE SKIP LOCKED` on PostgreSQL; SQLite's write lock serialises it), so each piece of work is
claimed by exactly one process. What a process runs carries a lease (`lease_expires_at`) that
its heartbeat thread renews every third of LEASE_SECONDS; a lease that runs out means its
process died (or stalled that long), and any process then puts the work back in the queue, or
fails it after MAX_ATTEMPTS runs. Every write about running work names the process (its boot
id), so a process that lost its claim cannot overwrite what another one now runs.
"""

import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from loguru import logger
from sqlalchemy import Engine, or_, update
from sqlmodel import Session, col, select

from nogil_bench.benchmarks import runs as benchmark_runs
from nogil_bench.benchmarks.models import Benchmark
from nogil_bench.core import runtime
from nogil_bench.core.config import Settings
from nogil_bench.core.db import write
from nogil_bench.core.models import QueuedWork, Status, utc_now
from nogil_bench.jobs import runs as job_runs
from nogil_bench.jobs.models import Batch, Job
from nogil_bench.retention import purge_expired

type WorkKind = Literal["job", "batch", "benchmark"]

RETENTION_SWEEP_S = 3600.0


@dataclass(frozen=True, slots=True)
class Claim:
    kind: WorkKind
    id: uuid.UUID


TABLES: dict[WorkKind, type[Job] | type[Batch] | type[Benchmark]] = {
    "job": Job,
    "batch": Batch,
    "benchmark": Benchmark,
}


def lower_priority(niceness: int) -> None:
    """This thread, and the threads and processes it starts from now on, yield the CPU to the
    rest of the service (Linux: nice values are per thread, and inherited)."""
    if niceness and sys.platform == "linux":
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)


def keep_interrupts_from_children() -> None:
    """Blocks SIGINT in this thread, and so in every process it starts: the signal mask survives
    fork and exec, so pool workers, the forkserver and the benchmark engine's workers have it
    blocked from their first instruction. Ctrl+C signals the whole process group; the service
    decides how its children stop (the drain), and the main thread still takes the signal. A
    handler set in a worker's initializer would leave a window while the worker boots."""
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})


def take(row: QueuedWork, kind: WorkKind, boot_id: uuid.UUID, lease_s: float, worker: str) -> None:
    """Marks queued `row` running by `boot_id` (named `worker`): its attempt counted, its lease
    taken. Not committed."""
    now = utc_now()
    row.status = Status.RUNNING
    row.boot_id = boot_id
    row.worker = worker
    row.attempts += 1
    row.lease_expires_at = now + timedelta(seconds=lease_s)
    if row.started_at is None or kind == "job":
        row.started_at = now


def claim_next(
    engine: Engine, boot_id: uuid.UUID, lease_s: float, worker: str = ""
) -> Claim | None:
    """Claims the oldest queued single job, batch or benchmark for `boot_id`: marked running,
    its attempt counted, its lease taken."""

    def claim(session: Session) -> Claim | None:
        candidates: list[tuple[WorkKind, QueuedWork]] = []
        for kind, table in TABLES.items():
            query = select(table).where(table.status == Status.QUEUED)
            if table is Job:  # a batch's jobs run with their batch
                query = query.where(col(Job.batch_id).is_(None))
            oldest = session.exec(
                query.order_by(col(table.id)).limit(1).with_for_update(skip_locked=True)
            ).first()
            if oldest is not None:
                candidates.append((kind, oldest))
        if not candidates:
            return None
        kind, row = min(candidates, key=lambda candidate: candidate[1].id)
        take(row, kind, boot_id, lease_s, worker)
        session.add(row)
        return Claim(kind, row.id)

    return write(engine, claim)


def claim_queued(
    engine: Engine, claim: Claim, boot_id: uuid.UUID, lease_s: float, worker: str
) -> bool:
    """Claims this one single job or benchmark if it is still queued (a Celery task names its
    work); False when it ran elsewhere, finished, was cancelled or deleted meanwhile. Running
    only what is still queued is what makes a redelivered task harmless."""

    def claim_it(session: Session) -> bool:
        table = TABLES[claim.kind]
        # FOR UPDATE without SKIP LOCKED: the dispatcher holds the row's lock until its pass
        # commits, and a task can arrive before that; skipping would drop queued work.
        row = session.exec(
            select(table)
            .where(table.id == claim.id, table.status == Status.QUEUED)
            .with_for_update()
        ).first()
        if row is None:
            return False
        take(row, claim.kind, boot_id, lease_s, worker)
        session.add(row)
        return True

    return write(engine, claim_it)


def renew_leases(engine: Engine, boot_id: uuid.UUID, lease_s: float) -> None:
    """Extends the lease of everything `boot_id` runs."""
    expires = utc_now() + timedelta(seconds=lease_s)

    def renew(session: Session) -> None:
        for table in TABLES.values():
            session.execute(
                update(table)
                .where(col(table.status) == Status.RUNNING, col(table.boot_id) == boot_id)
                .values(lease_expires_at=expires)
            )

    write(engine, renew)


class Executor:
    """Runs queued work on one thread. `boot_id` names this service process on the rows it
    runs, so the next start can tell work a dead process left running."""

    def __init__(
        self, engine: Engine, settings: Settings, boot_id: uuid.UUID, name: str | None = None
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.boot_id = boot_id
        self.name = name or settings.WORKER_NAME or runtime.process_name("service")
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._heartbeat: threading.Thread | None = None
        self._drain_lock = threading.Lock()
        self._drained: bool | None = None
        # Set when a drain gave up on running work: its rows are back in the queue, and a
        # failure of that work (its pool stopped under it) must not be written over them.
        self._abandoned = threading.Event()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="nogil-bench-executor", daemon=True)
        self._thread.start()
        self._heartbeat = threading.Thread(
            target=self._beat, name="nogil-bench-heartbeat", daemon=True
        )
        self._heartbeat.start()

    def _beat(self) -> None:
        """Renews this process's leases, and requeues work whose lease ran out elsewhere.
        Runs until the executor thread has ended (a drain still holds its leases)."""
        interval_s = self.settings.LEASE_SECONDS / 3
        next_purge = time.monotonic()  # retention runs at start, then every RETENTION_SWEEP_S
        while self._thread is not None and self._thread.is_alive():
            try:
                renew_leases(self.engine, self.boot_id, self.settings.LEASE_SECONDS)
                if recover_expired(self.engine, self.settings.MAX_ATTEMPTS):
                    self.notify()
                if time.monotonic() >= next_purge:
                    next_purge = time.monotonic() + RETENTION_SWEEP_S
                    purge_expired(self.engine, self.settings, utc_now())
            except Exception:
                logger.exception("heartbeat: could not renew leases, recover or purge")
            self._thread.join(interval_s)

    def broker_check(self) -> str | None:
        """With a broker: "ok", or why it does not answer; None when there is none."""
        return None

    def queue_depths(self) -> dict[str, int]:
        """With a broker: the tasks waiting in each of its queues; none without one."""
        return {}

    def notify(self) -> None:
        """New work was queued: look now rather than at the next poll."""
        self._wake.set()

    def stop(self, timeout_s: float | None = None) -> bool:
        """Finish the current chunk, leave the rest queued; True when the thread ended."""
        self._stopping.set()
        self._wake.set()
        if self._thread is None:
            return True
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def drain(self, grace_s: float, cut_short: threading.Event | None = None) -> bool:
        """Take no more work and let what runs finish, for up to `grace_s` seconds (or until
        `cut_short` is set). Work still running then goes back to the queue for the next
        start. True when nothing was left running. Once drained, later calls return at once."""
        with self._drain_lock:
            if self._drained is None:
                self._drained = False  # stays so if the drain fails: it is not tried twice
                self._drained = self._drain(grace_s, cut_short or threading.Event())
            return self._drained

    @property
    def drained(self) -> bool | None:
        """None before a drain; then whether it ended with nothing left running."""
        return self._drained

    def _drain(self, grace_s: float, cut_short: threading.Event) -> bool:
        logger.info("draining: running work may finish within {} s, queued work stays", grace_s)
        deadline = time.monotonic() + grace_s
        self.stop(timeout_s=0)
        while self.alive and not cut_short.is_set() and time.monotonic() < deadline:
            self.stop(timeout_s=min(0.1, max(0.0, deadline - time.monotonic())))
        if not self.alive:
            logger.info("drained: no work left running")
            return True
        why = "stop requested again" if cut_short.is_set() else f"{grace_s} s grace period over"
        self._abandoned.set()
        requeued = requeue_own_work(self.engine, self.boot_id)
        logger.warning(
            "{}: put back in the queue what was still running ({}); it resumes at the next start",
            why,
            ", ".join(f"{count} {kind}" for kind, count in requeued.items()) or "nothing",
        )
        return False

    @property
    def stopping(self) -> bool:
        """True once a stop was asked for: no more work will be taken."""
        return self._stopping.is_set()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        lower_priority(self.settings.EXECUTOR_NICENESS)
        keep_interrupts_from_children()
        logger.info("executor started")
        while not self._stopping.is_set():
            try:
                worked = self.run_next()
            except Exception:
                logger.exception("executor: an execution failed")
                worked = True
            if not worked:
                self._wake.wait(self.settings.EXECUTOR_POLL_SECONDS)
                self._wake.clear()
        logger.info("executor stopped")

    def run_next(self) -> bool:
        """Run the oldest queued work; False when the queue is empty."""
        claim = claim_next(self.engine, self.boot_id, self.settings.LEASE_SECONDS, self.name)
        if claim is None:
            return False
        self.run_claim(claim)
        return True

    def run_claim(self, claim: Claim) -> None:
        """Runs work claimed for this process; a failure is written on its rows."""
        with logger.contextualize(**{f"{claim.kind}_id": str(claim.id)}):
            logger.info("running {} {}", claim.kind, claim.id)
            self._run_claim(claim)

    def _run_claim(self, claim: Claim) -> None:
        try:
            self._execute(claim)
        except Exception as error:
            if self._abandoned.is_set():
                logger.info("{} {} was cut short at shutdown: {}", claim.kind, claim.id, error)
                return
            logger.exception("{} {} failed", claim.kind, claim.id)
            fail_claim(
                self.engine,
                claim,
                self.boot_id,
                f"{type(error).__name__}: {error}",
                self._abandoned.is_set,
            )

    def _execute(self, claim: Claim) -> None:
        should_stop = self._stopping.is_set
        if claim.kind == "benchmark":
            benchmark_runs.execute(
                self.engine,
                claim.id,
                should_stop,
                self.boot_id,
                timeout_s=self.settings.EXECUTION_TIMEOUT_SECONDS,
            )
            return
        with Session(self.engine) as session:
            unit: Batch | Job | None = (
                session.get(Batch, claim.id)
                if claim.kind == "batch"
                else session.get(Job, claim.id)
            )
            if unit is None:
                return
            session.expunge(unit)
        if isinstance(unit, Batch):
            job_runs.execute_batch(
                self.engine, self.settings, unit, should_stop, self.boot_id, self.name
            )
        else:
            job_runs.execute_job(self.engine, self.settings, unit, self.boot_id)


def lock_claim(session: Session, claim: Claim) -> None:
    """Locks the claim's rows (FOR UPDATE) in the order `requeue_own_work` does: jobs by id,
    then the batch or benchmark. SQLite renders no FOR UPDATE: its write lock covers it."""
    if claim.kind == "benchmark":
        session.exec(select(Benchmark.id).where(Benchmark.id == claim.id).with_for_update()).all()
        return
    owner = col(Job.batch_id) if claim.kind == "batch" else col(Job.id)
    session.exec(
        select(Job.id).where(owner == claim.id).order_by(col(Job.id)).with_for_update()
    ).all()
    if claim.kind == "batch":
        session.exec(select(Batch.id).where(Batch.id == claim.id).with_for_update()).all()


def requeue_own_work(engine: Engine, boot_id: uuid.UUID) -> dict[WorkKind, int]:
    """At the shutdown deadline: what `boot_id` still runs goes back to the queue. The service
    cut these runs short, not the work, so they do not count as attempts."""

    def requeue(session: Session) -> dict[WorkKind, int]:
        requeued: dict[WorkKind, int] = {}
        for kind, table in TABLES.items():
            rows = session.exec(
                select(table)
                .where(table.status == Status.RUNNING, table.boot_id == boot_id)
                .order_by(col(table.id))
                .with_for_update()
            ).all()
            for row in rows:
                row.put_back()
                session.add(row)
            if rows:
                requeued[kind] = len(rows)
        return requeued

    return write(engine, requeue)


def recover_expired(engine: Engine, max_attempts: int) -> int:
    """Work whose lease ran out: the process running it died (or stalled past its lease). It
    goes back to the queue, unless it has had `max_attempts` runs already (work that keeps
    killing its process, say by running it out of memory): then it fails, with the reason. A
    batch itself is always requeued; its jobs carry the attempts. Returns how many rows."""

    def recover(session: Session) -> int:
        now = utc_now()
        recovered = 0
        for kind, table in TABLES.items():
            lease = col(table.lease_expires_at)
            rows = session.exec(
                select(table)
                .where(table.status == Status.RUNNING, or_(lease.is_(None), lease < now))
                .with_for_update(skip_locked=True)
            ).all()
            for row in rows:
                # Rows from before boot ids were recorded have none.
                dead = f"boot {row.boot_id}" if row.boot_id else "an unrecorded boot"
                if kind != "batch" and row.attempts >= max_attempts:
                    row.status = Status.FAILED
                    row.finished_at = now
                    row.error = (
                        f"interrupted: the service process running it ({dead}) died, on "
                        f"attempt {row.attempts} of {max_attempts} (max_attempts); not retried"
                    )
                    logger.error("{} {} failed after {} attempts", kind, row.id, row.attempts)
                else:
                    row.requeue()
                    logger.warning(
                        "{} {} was left running by the process of {}, which died: requeued "
                        "(its lease ran out; attempt {} of {} done)",
                        kind,
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
    """An execution raised: it and whatever of it has not finished are failed, with the error.
    Unless `abandoned()` (a drain put the work back in the queue): that is checked holding the
    write lock, which the drain's requeue needs too, so the two cannot interleave. Only what
    `boot_id` still runs is touched: a lost claim is another process's now."""
    failed = {"status": Status.FAILED, "error": error, "finished_at": utc_now()}

    def fail(session: Session) -> None:
        lock_claim(session, claim)  # PostgreSQL: the rows' locks, as the requeue takes
        if abandoned():
            return
        if claim.kind == "benchmark":
            session.execute(
                update(Benchmark)
                .where(col(Benchmark.id) == claim.id, col(Benchmark.boot_id) == boot_id)
                .values(**failed)
            )
            return
        owner = col(Job.batch_id) if claim.kind == "batch" else col(Job.id)
        # Queued jobs of the batch never ran; running ones are this process's.
        session.execute(
            update(Job)
            .where(
                owner == claim.id,
                or_(
                    col(Job.status) == Status.QUEUED,
                    (col(Job.status) == Status.RUNNING) & (col(Job.boot_id) == boot_id),
                ),
            )
            .values(**failed)
        )
        session.execute(
            update(Batch)
            .where(col(Batch.id) == claim.id, col(Batch.boot_id) == boot_id)
            .values(**failed)
        )

    write(engine, fail)
