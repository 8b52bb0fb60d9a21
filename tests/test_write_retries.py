"""A write the database refuses for now is run again from the start (`core.db.write`), and
succeeds: a deadlock, which PostgreSQL and MariaDB break by failing one of its transactions,
and on MariaDB a row lock waited for past its timeout. (SQLite's writers take turns, so no
deadlock forms there; its busy lock is tests/api/test_database_contention.py's.)"""

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Engine, update
from sqlmodel import Session, col

from nogil_bench.auth.models import User
from nogil_bench.core.config import Settings
from nogil_bench.core.db import make_engine, write
from nogil_bench.core.migrations import upgrade_database
from nogil_bench.jobs.models import Job
from tests.utils.waiting import wait_until

BARRIER_TIMEOUT_S = 30.0


@pytest.fixture
def engine(settings: Settings, database_kind: str) -> Iterator[Engine]:
    if database_kind == "sqlite":
        pytest.skip("SQLite's writers take turns: nothing to deadlock or wait on a row")
    # innodb_lock_wait_timeout follows it: a row lock is waited for 1 s on MariaDB.
    engine = make_engine(settings.model_copy(update={"WRITE_LOCK_TIMEOUT_SECONDS": 1}))
    upgrade_database(engine)
    yield engine
    engine.dispose()


def two_jobs(engine: Engine) -> tuple[uuid.UUID, uuid.UUID]:
    user = User(email="writer@example.com", hashed_password="not a real hash")
    with Session(engine) as session:
        session.add(user)
        session.commit()
        jobs = [
            Job(owner_id=user.id, runner="threads", workers=1, pipeline=[], width=8, height=8)
            for _ in range(2)
        ]
        session.add_all(jobs)
        session.commit()
        return jobs[0].id, jobs[1].id


def test_writers_that_deadlock_both_succeed(engine: Engine) -> None:
    first, second = two_jobs(engine)
    both_hold_one = threading.Barrier(2, timeout=BARRIER_TIMEOUT_S)
    attempts: list[str] = []

    def lock_in_turn(name: str, rows: tuple[uuid.UUID, uuid.UUID]) -> str:
        def work(session: Session) -> str:
            attempts.append(name)
            session.get(Job, rows[0], with_for_update=True)
            if attempts.count(name) == 1:
                both_hold_one.wait()  # then each asks for the row the other holds
            session.get(Job, rows[1], with_for_update=True)
            return name

        return write(engine, work)

    with ThreadPoolExecutor(2) as pool:
        one = pool.submit(lock_in_turn, "one", (first, second))
        other = pool.submit(lock_in_turn, "other", (second, first))
        results = {one.result(timeout=60), other.result(timeout=60)}

    assert results == {"one", "other"}
    assert sorted(attempts.count(name) for name in results) == [1, 2]  # one was run again


def test_a_row_lock_waited_for_past_its_timeout_is_tried_again(
    engine: Engine, database_kind: str
) -> None:
    if database_kind != "mariadb":
        pytest.skip("PostgreSQL waits for a row lock without a timeout")
    job_id, _ = two_jobs(engine)
    attempts: list[int] = []

    def mark_failed(session: Session) -> None:
        attempts.append(len(attempts) + 1)
        session.execute(update(Job).where(col(Job.id) == job_id).values(error="marked"))

    with Session(engine) as holder, ThreadPoolExecutor(1) as pool:
        holder.get(Job, job_id, with_for_update=True)
        writing = pool.submit(write, engine, mark_failed)
        wait_until(lambda: len(attempts) >= 2, "the write to time out once and start again")
        holder.commit()
        writing.result(timeout=60)

    with Session(engine) as session:
        job = session.get(Job, job_id)
        assert job is not None
        assert job.error == "marked"
