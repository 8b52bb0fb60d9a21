"""Alembic migrations: a database release 0.1.0 made is upgraded in place and keeps its rows
(it ran on SQLite and PostgreSQL); the models and the migrations describe the same schema;
upgraders take turns. On SQLite, PostgreSQL and MariaDB."""

import sqlite3
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from fastapi.testclient import TestClient
from loguru import logger
from sqlalchemy import Engine, create_engine, make_url
from sqlmodel import Session, select

from nogil_bench.auth.models import User
from nogil_bench.benchmarks.models import Benchmark
from nogil_bench.core.config import Settings
from nogil_bench.core.migrations import (
    INITIAL_REVISION,
    current_revision,
    head_revision,
    upgrade_database,
)
from nogil_bench.core.models import Status
from nogil_bench.jobs.models import Batch, Job
from nogil_bench.main import create_app
from nogil_bench.tables import METADATA
from tests.utils.postgres import connect
from tests.utils.waiting import wait_until

FIXTURES = Path(__file__).parent / "fixtures"
# The stores release 0.1.0 ran on (tests/fixtures/release-0.1.0.*.sql).
RELEASE_0_1_STORES = pytest.mark.parametrize(
    "empty_database", ["sqlite", "postgresql"], indirect=True
)
QUEUED_JOB_ID = uuid.UUID("019a3f00-0000-7000-8000-000000000004")
WAIT_TIMEOUT_S = 60.0


def make_release_0_1_database(url: str) -> None:
    """What release 0.1.0 left behind: its tables (made by create_all, no Alembic) and rows."""
    parsed = make_url(url)
    script = (FIXTURES / f"release-0.1.0.{parsed.get_backend_name()}.sql").read_text()
    if parsed.get_backend_name() == "sqlite":
        assert parsed.database is not None
        with sqlite3.connect(parsed.database) as database:
            database.executescript(script)
        return
    with connect(url) as database:
        database.execute(script.encode())


def schema_differences(url: str) -> list[Any]:
    """What autogenerate would write into a new revision: types and server defaults included."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "compare_server_default": True}
            )
            return list(compare_metadata(context, METADATA))
    finally:
        engine.dispose()


def wait_until_finished(engine: Engine, job_id: uuid.UUID) -> Job:
    def finished_job() -> Job | None:
        with Session(engine) as session:
            job = session.get(Job, job_id)
        assert job is not None
        return job if job.status.finished else None

    job = wait_until(finished_job, f"job {job_id} to finish", timeout_s=WAIT_TIMEOUT_S)
    assert job is not None
    return job


@RELEASE_0_1_STORES
def test_a_release_0_1_database_is_upgraded_and_keeps_its_rows(empty_database: str) -> None:
    make_release_0_1_database(empty_database)

    assert upgrade_database(empty_database) == head_revision()

    assert schema_differences(empty_database) == []
    engine = create_engine(empty_database)
    with Session(engine) as session:
        assert session.exec(select(User.email)).all() == ["old@example.com"]
        assert session.exec(select(Batch.runner, Batch.status, Batch.attempts)).all() == [
            ("threads", Status.SUCCEEDED, 1)
        ]
        jobs = session.exec(select(Job).order_by(Job.seed)).all()  # type: ignore[arg-type]
        assert [(job.seed, job.status, job.batch_id is not None) for job in jobs] == [
            (3, Status.SUCCEEDED, True),
            (4, Status.QUEUED, False),
        ]
        assert jobs[0].pipeline == [{"op": "invert", "params": {}}]
        assert jobs[0].queued_at.tzinfo is not None
        benchmark = session.exec(select(Benchmark)).one()
        assert benchmark.spec == {"runners": ["sequential"], "count": 1}
        # The upgraded columns take what release 0.1.0's could not hold on PostgreSQL.
        jobs[1].seed = 2**63 - 1
        session.add(jobs[1])
        session.commit()
    engine.dispose()


@RELEASE_0_1_STORES
def test_the_service_upgrades_a_release_0_1_database_at_start_and_runs_its_queue(
    empty_database: str, tmp_path: Path
) -> None:
    make_release_0_1_database(empty_database)
    settings = Settings(  # type: ignore[call-arg]
        DATA_DIR=tmp_path / "data", DATABASE_URL=empty_database, _env_file=None
    )
    app = create_app(settings)  # sets up logging: the sink goes after it
    lines: list[str] = []
    sink_id = logger.add(lambda message: lines.append(message.record["message"]), level="INFO")
    try:
        with TestClient(app) as client:
            assert client.get("/health/ready").status_code == 200
            job = wait_until_finished(client.app.state.engine, QUEUED_JOB_ID)  # type: ignore[attr-defined]
    finally:
        logger.remove(sink_id)

    assert job.status is Status.SUCCEEDED, job.error
    assert f"stamped at the initial revision {INITIAL_REVISION}" in "\n".join(lines)
    assert (
        f"database schema upgraded from revision {INITIAL_REVISION} to revision {head_revision()}"
        in lines
    )


def test_models_and_migrations_agree(empty_database: str) -> None:
    """A model change without its revision fails here: write one with `alembic revision
    --autogenerate` (docs/database.md)."""
    assert upgrade_database(empty_database) == head_revision()

    assert schema_differences(empty_database) == []


def test_an_up_to_date_database_is_left_as_it_is(empty_database: str) -> None:
    upgrade_database(empty_database)
    lines: list[str] = []
    sink_id = logger.add(lambda message: lines.append(message.record["message"]), level="INFO")
    try:
        assert upgrade_database(empty_database) == head_revision()
    finally:
        logger.remove(sink_id)

    assert f"database schema at revision {head_revision()}: up to date" in lines
    assert not [line for line in lines if "upgraded" in line or "stamped" in line]


def test_concurrent_upgraders_take_turns(empty_database: str) -> None:
    """Several service processes starting at once on a new database: one creates the tables,
    the others wait for its lock and find them made."""
    errors: list[BaseException] = []
    revisions: list[str] = []

    def upgrade() -> None:
        try:
            revisions.append(upgrade_database(empty_database))
        except BaseException as error:
            errors.append(error)

    upgraders = [threading.Thread(target=upgrade) for _ in range(4)]
    for upgrader in upgraders:
        upgrader.start()
    for upgrader in upgraders:
        upgrader.join()

    assert errors == []
    assert revisions == [head_revision()] * 4
    engine = create_engine(empty_database)
    with engine.connect() as connection:
        assert current_revision(connection) == head_revision()
    engine.dispose()
