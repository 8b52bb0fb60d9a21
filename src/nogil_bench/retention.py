"""Retention: finished work is deleted with its files once it is RETENTION_DAYS old, and upload
and output files that no job references any more are swept, in whichever file store is set.
One entry point, `purge_expired`, to be called periodically (by the executor)."""

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import batched

from loguru import logger
from sqlalchemy import ColumnElement, Engine, delete, func
from sqlmodel import Session, col, select

from nogil_bench.benchmarks.models import Benchmark
from nogil_bench.core.config import Settings
from nogil_bench.core.db import write
from nogil_bench.core.idempotency import forget_expired
from nogil_bench.core.models import QueuedWork, Status
from nogil_bench.core.storage import FileStore, get_store
from nogil_bench.jobs.models import Batch, Job

# A file younger than this may belong to a submission or a result not committed yet.
ORPHAN_GRACE = timedelta(hours=1)
# Rows per transaction, so that a large purge never holds the write lock for long.
CHUNK_ROWS = 500
FINISHED = [status for status in Status if status.finished]


@dataclass(frozen=True, slots=True)
class Purged:
    """What one sweep deleted."""

    jobs: int = 0  # single jobs, and the jobs of the deleted batches
    batches: int = 0
    benchmarks: int = 0
    files: int = 0  # the deleted jobs' files and the orphans


def purge_expired(engine: Engine, settings: Settings, now: datetime) -> Purged:
    """Deletes the jobs, batches and benchmarks that finished (succeeded, failed or cancelled)
    more than RETENTION_DAYS before `now`, with their upload and output files; with
    RETENTION_DAYS = 0 every row is kept. A batch goes whole, with all its jobs, once it has
    finished; its jobs never go on their own. Work cancelled before it ran counts from when it
    was cancelled, or from when it was queued where no time was recorded.

    Then, whatever the retention, removes the uploads and outputs that no job references and
    that were written more than an hour before `now`: what a crash or a failed submission left
    behind.

    Safe to run beside the service: it deletes only finished rows, in short transactions."""
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime (UTC)")
    store = get_store(settings, engine)
    jobs = batches = benchmarks = files = 0
    if settings.RETENTION_DAYS > 0:
        cutoff = now - timedelta(days=settings.RETENTION_DAYS)
        single = col(Job.batch_id).is_(None)
        while deleted := write(engine, lambda session: _delete_jobs(session, Job, cutoff, single)):
            jobs += deleted.rows
            files += _remove_all(store, deleted.paths)
        while deleted := write(engine, lambda session: _delete_jobs(session, Batch, cutoff)):
            batches += deleted.rows
            jobs += len(deleted.paths)
            files += _remove_all(store, deleted.paths)
        while deleted := write(engine, lambda session: _delete_rows(session, Benchmark, cutoff)):
            benchmarks += deleted.rows
    write(engine, lambda session: forget_expired(session, now))
    files += _sweep_orphans(engine, store, now - ORPHAN_GRACE)
    purged = Purged(jobs, batches, benchmarks, files)
    if purged != Purged():
        logger.info(
            "retention: deleted {} jobs, {} batches, {} benchmarks and {} files",
            jobs,
            batches,
            benchmarks,
            files,
        )
    return purged


@dataclass(frozen=True, slots=True)
class Deleted:
    """One transaction's deletions: rows of the table, and the file pairs of their jobs."""

    rows: int
    paths: list[tuple[str | None, str | None]]

    def __bool__(self) -> bool:
        return self.rows > 0


def _expired_ids(
    session: Session, table: type[QueuedWork], cutoff: datetime, *where: ColumnElement[bool]
) -> list[uuid.UUID]:
    """Up to CHUNK_ROWS ids of `table`'s rows finished before `cutoff`."""
    finished_at = func.coalesce(col(table.finished_at), col(table.queued_at))
    return list(
        session.exec(
            select(col(table.id))
            .where(col(table.status).in_(FINISHED), finished_at < cutoff, *where)
            .order_by(col(table.id))
            .limit(CHUNK_ROWS)
        ).all()
    )


def _delete_jobs(
    session: Session,
    table: type[Job] | type[Batch],
    cutoff: datetime,
    *where: ColumnElement[bool],
) -> Deleted:
    """One chunk of expired single jobs, or of expired batches with all their jobs."""
    ids = _expired_ids(session, table, cutoff, *where)
    owned = col(Job.id).in_(ids) if table is Job else col(Job.batch_id).in_(ids)
    paths = list(session.exec(select(Job.upload_path, Job.output_path).where(owned)).all())
    session.execute(delete(Job).where(owned))
    if table is Batch:
        session.execute(delete(Batch).where(col(Batch.id).in_(ids)))
    return Deleted(len(ids), paths)


def _delete_rows(session: Session, table: type[Benchmark], cutoff: datetime) -> Deleted:
    ids = _expired_ids(session, table, cutoff)
    session.execute(delete(table).where(col(table.id).in_(ids)))
    return Deleted(len(ids), [])


def _remove_all(store: FileStore, paths: Iterable[tuple[str | None, str | None]]) -> int:
    """Removes the files (after their rows are gone); how many there were."""
    return store.delete(key for pair in paths for key in pair if key is not None)


def _sweep_orphans(engine: Engine, store: FileStore, written_before: datetime) -> int:
    """Removes the uploads and outputs written before `written_before` that no job references."""
    candidates = store.keys_written_before(written_before)
    referenced: set[str | None] = set()
    with Session(engine) as session:
        for chunk in batched(candidates, CHUNK_ROWS, strict=False):
            for column in (col(Job.upload_path), col(Job.output_path)):
                referenced.update(session.exec(select(column).where(column.in_(chunk))).all())
    return store.delete(key for key in candidates if key not in referenced)
