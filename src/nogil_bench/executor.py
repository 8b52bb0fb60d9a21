"""The background executor: one thread that takes queued work in FIFO order and runs it.

Single jobs, batches and benchmarks share one queue, ordered by their UUIDv7 ids (creation
time). One execution runs at a time, so two batches or benchmarks never share the CPUs and
never skew each other's timings; requests only read and write rows meanwhile.
"""

import threading
import uuid
from dataclasses import dataclass
from typing import Literal

from loguru import logger
from sqlalchemy import Engine, update
from sqlmodel import Session, col, select

from nogil_bench.benchmarks import runs as benchmark_runs
from nogil_bench.benchmarks.models import Benchmark
from nogil_bench.core.config import Settings
from nogil_bench.core.models import Status, utc_now
from nogil_bench.jobs import runs as job_runs
from nogil_bench.jobs.models import Batch, Job

type WorkKind = Literal["job", "batch", "benchmark"]


@dataclass(frozen=True, slots=True)
class Claim:
    kind: WorkKind
    id: uuid.UUID


def claim_next(engine: Engine) -> Claim | None:
    """The oldest queued single job, batch or benchmark; batches and benchmarks are marked
    running here (a single job is marked running when its run starts)."""
    with Session(engine) as session:
        candidates: list[Claim] = []
        job_id = session.exec(
            select(Job.id)
            .where(Job.status == Status.QUEUED, col(Job.batch_id).is_(None))
            .order_by(col(Job.id))
            .limit(1)
        ).first()
        if job_id is not None:
            candidates.append(Claim("job", job_id))
        batch_id = session.exec(
            select(Batch.id).where(Batch.status == Status.QUEUED).order_by(col(Batch.id)).limit(1)
        ).first()
        if batch_id is not None:
            candidates.append(Claim("batch", batch_id))
        benchmark_id = session.exec(
            select(Benchmark.id)
            .where(Benchmark.status == Status.QUEUED)
            .order_by(col(Benchmark.id))
            .limit(1)
        ).first()
        if benchmark_id is not None:
            candidates.append(Claim("benchmark", benchmark_id))
        if not candidates:
            return None
        claim = min(candidates, key=lambda candidate: candidate.id)
        row: Batch | Benchmark | None = None
        if claim.kind == "batch":
            row = session.get(Batch, claim.id)
        elif claim.kind == "benchmark":
            row = session.get(Benchmark, claim.id)
        if row is not None:
            row.status = Status.RUNNING
            if row.started_at is None:
                row.started_at = utc_now()
            session.add(row)
            session.commit()
        return claim


class Executor:
    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="nogil-bench-executor", daemon=True)
        self._thread.start()

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

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
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
        claim = claim_next(self.engine)
        if claim is None:
            return False
        with logger.contextualize(**{f"{claim.kind}_id": str(claim.id)}):
            logger.info("running {} {}", claim.kind, claim.id)
            self._run_claim(claim)
        return True

    def _run_claim(self, claim: Claim) -> None:
        try:
            self._execute(claim)
        except Exception as error:
            logger.exception("{} {} failed", claim.kind, claim.id)
            fail_claim(self.engine, claim, f"{type(error).__name__}: {error}")

    def _execute(self, claim: Claim) -> None:
        should_stop = self._stopping.is_set
        if claim.kind == "benchmark":
            benchmark_runs.execute(self.engine, claim.id, should_stop)
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
            job_runs.execute_batch(self.engine, self.settings, unit, should_stop)
        else:
            job_runs.execute_job(self.engine, self.settings, unit)


def requeue_interrupted(engine: Engine) -> None:
    """Work left running by a process that died goes back to the queue (one service process
    owns the queue, so at start nothing can really be running)."""
    with Session(engine) as session:
        for table in (Job, Batch, Benchmark):
            rows = session.exec(select(table).where(table.status == Status.RUNNING)).all()
            for row in rows:
                row.status = Status.QUEUED
                session.add(row)
            if rows:
                logger.warning("requeued {} {} rows left running", len(rows), table.__name__)
        session.commit()


def fail_claim(engine: Engine, claim: Claim, error: str) -> None:
    """An execution raised: it and whatever of it has not finished are failed, with the error."""
    unfinished = col(Job.status).in_([Status.QUEUED, Status.RUNNING])
    with Session(engine) as session:
        if claim.kind == "benchmark":
            session.execute(
                update(Benchmark)
                .where(col(Benchmark.id) == claim.id)
                .values(status=Status.FAILED, error=error, finished_at=utc_now())
            )
        else:
            owner = col(Job.batch_id) if claim.kind == "batch" else col(Job.id)
            session.execute(
                update(Job)
                .where(owner == claim.id, unfinished)
                .values(status=Status.FAILED, error=error, finished_at=utc_now())
            )
            session.execute(
                update(Batch)
                .where(col(Batch.id) == claim.id)
                .values(status=Status.FAILED, error=error, finished_at=utc_now())
            )
        session.commit()
