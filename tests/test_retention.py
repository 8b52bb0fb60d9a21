"""Retention: finished work goes, with its files, RETENTION_DAYS after it finished; files no job
references go an hour after they were last written. Time is given, never waited for. On each
database, with each file store."""

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, insert, update
from sqlmodel import Session, col, select

from nogil_bench.auth.models import User
from nogil_bench.benchmarks.models import Benchmark
from nogil_bench.core.config import OUTPUTS_DIR, UPLOADS_DIR, Settings
from nogil_bench.core.db import make_engine
from nogil_bench.core.migrations import upgrade_database
from nogil_bench.core.models import QueuedWork, Status
from nogil_bench.core.storage import DatabaseStore, FileStore, StoredFile, get_store
from nogil_bench.jobs.models import Batch, Job
from nogil_bench.retention import Purged, purge_expired

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=31)  # past the default 30 days
RECENT = NOW - timedelta(days=29)
# Later than anything a test writes: every stored key was written before it.
END_OF_TIME = datetime(9000, 1, 1, tzinfo=UTC)


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings)
    upgrade_database(engine)
    yield engine
    engine.dispose()


@pytest.fixture(params=["local", "database"])
def store(request: pytest.FixtureRequest, settings: Settings, engine: Engine) -> FileStore:
    settings.FILE_STORE = request.param
    return get_store(settings, engine)


@pytest.fixture
def owner_id(engine: Engine) -> uuid.UUID:
    with Session(engine) as session:
        user = User(email="owner@example.com", hashed_password="x")
        session.add(user)
        session.commit()
        return user.id


def write_file(store: FileStore, key: str, written: datetime = OLD) -> str:
    """A file in the store, as if written at `written`."""
    store.save(key, b"image")
    if isinstance(store, DatabaseStore):
        with Session(store.engine) as session:
            session.execute(
                update(StoredFile).where(col(StoredFile.key) == key).values(created_at=written)
            )
            session.commit()
    else:
        path = store.local_path(key)
        assert path is not None
        os.utime(path, (written.timestamp(), written.timestamp()))
    return key


def write_half_a_file(store: FileStore, key: str, written: datetime) -> str:
    """What a crash while `key` was written leaves behind: a temp file, or a header row without
    its size; returns its key."""
    if isinstance(store, DatabaseStore):
        with Session(store.engine) as session:
            session.execute(insert(StoredFile).values(key=key, created_at=written))
            session.commit()
        return key
    folder, name = key.split("/")
    return write_file(store, f"{folder}/.{name}.x1y2", written)


def stored(store: FileStore) -> set[str]:
    return set(store.keys_written_before(END_OF_TIME))


def keys(job: Job) -> set[str]:
    return {key for key in (job.upload_path, job.output_path) if key is not None}


def add_job(
    engine: Engine,
    store: FileStore,
    owner_id: uuid.UUID,
    *,
    status: Status = Status.SUCCEEDED,
    finished_at: datetime | None = OLD,
    batch_id: uuid.UUID | None = None,
) -> Job:
    """A job with an uploaded source and, once finished, an output file."""
    job = Job(
        owner_id=owner_id,
        batch_id=batch_id,
        runner="threads",
        workers=2,
        pipeline=[],
        width=8,
        height=8,
        status=status,
        queued_at=(finished_at or NOW) - timedelta(minutes=1),
        finished_at=finished_at,
    )
    job.upload_path = write_file(store, f"{UPLOADS_DIR}/{job.id}")
    if status.finished:
        job.output_path = write_file(store, f"{OUTPUTS_DIR}/{job.id}.png")
    with Session(engine, expire_on_commit=False) as session:
        session.add(job)
        session.commit()
    return job


def add_batch(
    engine: Engine,
    store: FileStore,
    owner_id: uuid.UUID,
    *,
    status: Status = Status.SUCCEEDED,
    finished_at: datetime | None = OLD,
    jobs: int = 2,
) -> tuple[Batch, list[Job]]:
    batch = Batch(
        owner_id=owner_id,
        runner="threads",
        workers=2,
        pipeline=[],
        status=status,
        finished_at=finished_at,
    )
    with Session(engine, expire_on_commit=False) as session:
        session.add(batch)
        session.commit()
    job_status = status if status.finished else Status.SUCCEEDED
    return batch, [
        add_job(engine, store, owner_id, status=job_status, batch_id=batch.id) for _ in range(jobs)
    ]


def add_benchmark(
    engine: Engine,
    owner_id: uuid.UUID,
    *,
    status: Status = Status.SUCCEEDED,
    finished_at: datetime | None = OLD,
) -> Benchmark:
    benchmark = Benchmark(owner_id=owner_id, spec={}, status=status, finished_at=finished_at)
    with Session(engine, expire_on_commit=False) as session:
        session.add(benchmark)
        session.commit()
    return benchmark


def remaining(engine: Engine, table: type[QueuedWork]) -> set[uuid.UUID]:
    with Session(engine) as session:
        return set(session.exec(select(table.id)).all())


def test_work_that_finished_before_the_retention_goes_with_its_files(
    engine: Engine, settings: Settings, store: FileStore, owner_id: uuid.UUID
) -> None:
    old_job = add_job(engine, store, owner_id, status=Status.FAILED)
    recent_job = add_job(engine, store, owner_id, finished_at=RECENT)
    _, old_batch_jobs = add_batch(engine, store, owner_id, status=Status.FAILED)
    recent_batch, recent_batch_jobs = add_batch(engine, store, owner_id, finished_at=RECENT)
    add_benchmark(engine, owner_id, status=Status.CANCELLED)
    recent_benchmark = add_benchmark(engine, owner_id, finished_at=RECENT)

    purged = purge_expired(engine, settings, NOW)

    assert purged == Purged(jobs=3, batches=1, benchmarks=1, files=6)
    assert remaining(engine, Job) == {recent_job.id, *(job.id for job in recent_batch_jobs)}
    assert remaining(engine, Batch) == {recent_batch.id}
    assert remaining(engine, Benchmark) == {recent_benchmark.id}
    for job in [old_job, *old_batch_jobs]:
        assert stored(store).isdisjoint(keys(job))
    for job in [recent_job, *recent_batch_jobs]:
        assert keys(job) <= stored(store)


def test_the_retention_is_counted_from_when_the_work_finished(
    engine: Engine, settings: Settings, store: FileStore, owner_id: uuid.UUID
) -> None:
    settings.RETENTION_DAYS = 7
    kept = add_job(engine, store, owner_id, finished_at=NOW - timedelta(days=7, seconds=-1))
    add_job(engine, store, owner_id, finished_at=NOW - timedelta(days=7, seconds=1))

    assert purge_expired(engine, settings, NOW).jobs == 1
    assert remaining(engine, Job) == {kept.id}


def test_unfinished_work_is_kept_however_old(
    engine: Engine, settings: Settings, store: FileStore, owner_id: uuid.UUID
) -> None:
    long_ago = NOW - timedelta(days=365)
    for status in (Status.QUEUED, Status.RUNNING):
        job = add_job(engine, store, owner_id, status=status, finished_at=None)
        with Session(engine) as session:
            row = session.get(Job, job.id)
            assert row is not None
            row.queued_at = long_ago
            session.add(row)
            session.commit()
        add_benchmark(engine, owner_id, status=status, finished_at=None)
    # A batch put back in the queue keeps the jobs it already finished, however long ago.
    add_batch(engine, store, owner_id, status=Status.QUEUED, finished_at=None)

    purged = purge_expired(engine, settings, NOW)

    assert purged == Purged()
    assert len(remaining(engine, Job)) == 4
    assert len(remaining(engine, Batch)) == 1
    assert len(remaining(engine, Benchmark)) == 2


def test_work_cancelled_before_any_time_was_recorded_counts_from_when_it_was_queued(
    engine: Engine, settings: Settings, store: FileStore, owner_id: uuid.UUID
) -> None:
    job = add_job(engine, store, owner_id, status=Status.CANCELLED, finished_at=None)
    with Session(engine) as session:
        row = session.get(Job, job.id)
        assert row is not None
        row.queued_at = OLD
        session.add(row)
        session.commit()

    assert purge_expired(engine, settings, NOW).jobs == 1


def test_a_retention_of_zero_days_keeps_every_row(
    engine: Engine, settings: Settings, store: FileStore, owner_id: uuid.UUID
) -> None:
    settings.RETENTION_DAYS = 0
    job = add_job(engine, store, owner_id, finished_at=NOW - timedelta(days=3650))
    add_batch(engine, store, owner_id, finished_at=NOW - timedelta(days=3650))
    add_benchmark(engine, owner_id, finished_at=NOW - timedelta(days=3650))

    assert purge_expired(engine, settings, NOW) == Purged()
    assert job.id in remaining(engine, Job)
    assert keys(job) <= stored(store)


def test_files_no_job_references_go_an_hour_after_they_were_written(
    engine: Engine, settings: Settings, store: FileStore, owner_id: uuid.UUID
) -> None:
    settings.RETENTION_DAYS = 0  # orphans are swept whatever the retention
    referenced = add_job(engine, store, owner_id)
    orphans = {
        write_file(store, f"{UPLOADS_DIR}/{uuid.uuid7()}", NOW - timedelta(minutes=61)),
        write_file(store, f"{OUTPUTS_DIR}/{uuid.uuid7()}.png", NOW - timedelta(days=2)),
        write_half_a_file(store, f"{OUTPUTS_DIR}/{uuid.uuid7()}.png", NOW - timedelta(hours=2)),
    }
    young = {
        write_file(store, f"{UPLOADS_DIR}/{uuid.uuid7()}", NOW - timedelta(minutes=59)),
        write_file(store, f"{OUTPUTS_DIR}/{uuid.uuid7()}.png", NOW),
        write_half_a_file(store, f"{OUTPUTS_DIR}/{uuid.uuid7()}.png", NOW),
    }

    purged = purge_expired(engine, settings, NOW)

    assert purged == Purged(files=3)
    assert stored(store) == young | keys(referenced)
    assert orphans.isdisjoint(stored(store))


def test_a_purge_larger_than_one_transaction_deletes_everything(
    engine: Engine,
    settings: Settings,
    store: FileStore,
    owner_id: uuid.UUID,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("nogil_bench.retention.CHUNK_ROWS", 2)
    monkeypatch.setattr("nogil_bench.core.storage.DELETE_KEYS_PER_TRANSACTION", 3)
    for _ in range(5):
        add_job(engine, store, owner_id)
    for _ in range(3):
        add_batch(engine, store, owner_id, jobs=1)

    purged = purge_expired(engine, settings, NOW)

    assert purged == Purged(jobs=8, batches=3, files=16)
    assert remaining(engine, Job) == set()
    assert stored(store) == set()


def test_now_must_be_aware(engine: Engine, settings: Settings) -> None:
    with pytest.raises(ValueError, match="aware"):
        purge_expired(engine, settings, NOW.replace(tzinfo=None))
