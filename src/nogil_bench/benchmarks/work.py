"""Benchmarks as a kind of queued work (`nogil_bench.work`): measured whole, on one machine."""

import uuid
from typing import ClassVar

from sqlmodel import Session, col, select

from nogil_bench.benchmarks import runs
from nogil_bench.benchmarks.models import Benchmark
from nogil_bench.core.models import QueuedWork, fail_unfinished
from nogil_bench.core.work import Context, WorkKind


class Benchmarks(WorkKind):
    name = "benchmark"
    table: ClassVar[type[QueuedWork]] = Benchmark
    # Apart from jobs: a job behind a benchmark would wait minutes, and one beside it would
    # disturb its timings.
    queue = "benchmarks"

    def run(self, context: Context, work_id: uuid.UUID) -> None:
        runs.execute(
            context.engine,
            work_id,
            context.should_stop,
            context.boot_id,
            timeout_s=context.settings.EXECUTION_TIMEOUT_SECONDS,
        )

    def lock(self, session: Session, work_id: uuid.UUID) -> None:
        session.exec(select(Benchmark.id).where(Benchmark.id == work_id).with_for_update()).all()

    def fail(self, session: Session, work_id: uuid.UUID, boot_id: uuid.UUID, error: str) -> None:
        fail_unfinished(
            session, Benchmark, col(Benchmark.id) == work_id, boot_id=boot_id, error=error
        )
