"""Every store gives back what the service wrote, as it wrote it: timestamps to the microsecond
and in UTC, whole numbers up to 2**63 - 1, floats to the last bit, text of any length and in
any script, bytes past 64 KiB. (MySQL's plain DATETIME, INTEGER, FLOAT, VARCHAR and BLOB would
each lose some of it; see the initial migration.)"""

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, inspect
from sqlmodel import Session, SQLModel

from nogil_bench.auth.models import User
from nogil_bench.core.config import Settings
from nogil_bench.core.db import make_engine
from nogil_bench.core.migrations import upgrade_database
from nogil_bench.core.models import Status
from nogil_bench.core.storage import StoredFile, StoredFileChunk
from nogil_bench.jobs.models import Batch, Job
from nogil_bench.jobs.schemas import JobPublic, JobsPublic
from nogil_bench.jobs.service import jobs_page_json

# Past MySQL's TEXT and BLOB (64 KiB), with characters outside the Basic Multilingual Plane,
# which MySQL's three-byte "utf8" cannot hold.
LONG_TEXT = "naïve 日本語 🧵 " * 8_000
LONG_BYTES = bytes(range(256)) * 1_024


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings)
    upgrade_database(engine)
    yield engine
    engine.dispose()


def stored_and_read_back[T: SQLModel](engine: Engine, row: T) -> T:
    """`row` written in one session, and read by its primary key in a fresh one."""
    with Session(engine) as session:
        session.add(row)
        session.commit()
        primary_key = inspect(row).identity
    with Session(engine) as session:
        read = session.get(type(row), primary_key)
        assert read is not None
        return read


def owner(engine: Engine) -> uuid.UUID:
    user = User(email=f"{uuid.uuid4().hex}@example.com", hashed_password="not a real hash")
    with Session(engine) as session:
        session.add(user)
        session.commit()
        return user.id


def test_timestamps_keep_their_microseconds_and_come_back_in_utc(engine: Engine) -> None:
    queued_at = datetime(2026, 12, 3, 4, 5, 6, 789_012, tzinfo=UTC)
    job = Job(owner_id=owner(engine), runner="threads", workers=2, pipeline=[], width=8, height=8)
    job.queued_at = queued_at

    read = stored_and_read_back(engine, job)

    assert read.queued_at == queued_at
    assert read.queued_at.tzinfo is UTC


def test_numbers_keep_every_digit(engine: Engine) -> None:
    job = Job(
        owner_id=owner(engine),
        runner="threads",
        workers=2,
        pipeline=[{"op": "invert", "params": {}}],
        width=8,
        height=8,
        seed=2**63 - 1,
        output_bytes=5 * 2**40,
        wall_s=0.1 + 0.2,  # 0.30000000000000004: a single-precision float would round it
        latency_s=1e-9,
    )

    read = stored_and_read_back(engine, job)

    assert (read.seed, read.output_bytes) == (2**63 - 1, 5 * 2**40)
    assert (read.wall_s, read.latency_s) == (0.1 + 0.2, 1e-9)
    assert isinstance(read.wall_s, float)


def test_text_of_any_length_in_any_script_comes_back_whole(engine: Engine) -> None:
    job = Job(
        owner_id=owner(engine),
        runner="threads",
        workers=2,
        pipeline=[{"op": "invert", "params": {"note": "🧵"}}],
        width=8,
        height=8,
        upload_filename="фото 🧵.png",
        error=LONG_TEXT,
    )

    read = stored_and_read_back(engine, job)

    assert read.error == LONG_TEXT
    assert read.upload_filename == "фото 🧵.png"
    assert read.pipeline == [{"op": "invert", "params": {"note": "🧵"}}]


def test_bytes_past_64_kib_come_back_whole(engine: Engine) -> None:
    with Session(engine) as session:
        session.add(StoredFile(key="uploads/large"))
        session.commit()

    read = stored_and_read_back(
        engine, StoredFileChunk(key="uploads/large", seq=0, data=LONG_BYTES)
    )

    assert read.data == LONG_BYTES


def test_the_job_list_json_is_what_its_response_model_gives_on_every_store(
    engine: Engine,
) -> None:
    # `GET /jobs` writes its page's JSON from the rows' values, not through JobsPublic: each
    # store's types (native UUIDs, MariaDB's booleans, SQLite's text timestamps, PostgreSQL's
    # rows packed as JSON arrays) must still come out as the model would give them.
    user_id = owner(engine)
    batch_id = stored_and_read_back(
        engine, Batch(owner_id=user_id, runner="processes", workers=2, pipeline=[])
    ).id
    done = datetime(2026, 12, 3, 4, 5, 6, 789_012, tzinfo=UTC)
    on_the_second = datetime(2026, 12, 3, 4, 5, 6, tzinfo=UTC)  # written with no fraction
    half_past = datetime(2026, 12, 3, 4, 5, 6, 500_000, tzinfo=UTC)  # PostgreSQL writes ".5"
    rows = [
        Job(
            owner_id=user_id,
            runner="threads",
            workers=1,
            pipeline=[],
            width=8,
            height=8,
            status=Status.RUNNING,
            started_at=on_the_second,
        ),
        Job(
            owner_id=user_id,
            batch_id=batch_id,
            status=Status.SUCCEEDED,
            runner="processes",
            workers=2,
            pipeline=[{"op": "blur", "params": {"radius": 1.5}}],
            width=64,
            height=32,
            seed=7,
            started_at=done,
            finished_at=done,
            gil_enabled=False,
            latency_s=0.25,
            wall_s=0.1 + 0.2,
            peak_rss_bytes=2**40,
            output_bytes=1234,
            attempts=1,
            worker="celery@host",
        ),
        Job(
            owner_id=user_id,
            status=Status.FAILED,
            error=LONG_TEXT,
            runner="threads",
            workers=1,
            pipeline=[],
            width=8,
            height=8,
            gil_enabled=True,
            started_at=half_past,
            upload_filename="фото 🧵.png",
        ),
    ]
    with Session(engine) as session:
        session.add_all(rows)
        session.commit()
        for row in rows:
            session.refresh(row)
        expected = JobsPublic(
            data=[JobPublic.model_validate(row) for row in reversed(rows)], count=len(rows)
        ).model_dump(mode="json")

    with engine.connect() as connection:
        page, found = jobs_page_json(
            connection=connection,
            owner_id=user_id,
            status=None,
            runner=None,
            batch_id=None,
            limit=20,
            offset=0,
        )

    assert json.loads(page) == expected
    assert found
    assert expected["data"][1]["result_url"] is not None  # the succeeded job's, computed too
