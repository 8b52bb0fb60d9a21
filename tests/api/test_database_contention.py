"""A busy database never makes a 500: reads never wait for SQLite's write lock, writes wait and
retry, and a lock held past every retry answers 503 with Retry-After, storing nothing.

The lock is held by another connection to the same file, as another process would hold it.
"""

import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from nogil_bench.core.config import Settings
from nogil_bench.main import create_app
from tests.utils.api import JOBS, Headers, register_and_login, synthetic_job
from tests.utils.database import lock_watch
from tests.utils.waiting import wait_until


@pytest.fixture(autouse=True)
def sqlite_only(settings: Settings) -> None:
    if not settings.database_url.startswith("sqlite"):
        pytest.skip("holds SQLite's file lock from a second connection")


@contextmanager
def write_lock_held(database: Path) -> Iterator[None]:
    """Another connection holds the write lock (BEGIN IMMEDIATE) while the block runs."""
    holder = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def database_file(settings: Settings) -> Path:
    return settings.DATA_DIR / "nogil_bench.db"


def test_reads_and_logins_do_not_wait_for_a_writer(settings: Settings) -> None:
    # A read that waited for the lock would give up after 20 ms, held as it is throughout.
    impatient = settings.model_copy(update={"SQLITE_BUSY_TIMEOUT_MS": 20})
    form = {"username": "alice@example.com", "password": "a fine password"}
    with TestClient(create_app(impatient)) as client:
        alice = register_and_login(client, "alice@example.com")
        with write_lock_held(database_file(settings)):
            me = client.get("/api/v1/users/me", headers=alice)
            jobs = client.get(JOBS, headers=alice)
            token = client.post("/api/v1/auth/token", data=form)

    assert (me.status_code, jobs.status_code, token.status_code) == (200, 200, 200)


def test_a_write_waits_for_the_lock_then_succeeds(
    client: TestClient, alice: Headers, settings: Settings, paused: Callable[[], None]
) -> None:
    # `paused`: the executor writes nothing meanwhile, so the one waiting write is this one.
    engine = client.app.state.engine  # type: ignore[attr-defined]
    with lock_watch(engine) as watch, ThreadPoolExecutor(1) as pool:
        with write_lock_held(database_file(settings)):
            submitted = pool.submit(client.post, JOBS, headers=alice, json=synthetic_job())
            wait_until(watch.waiting, "the submission to wait for the write lock")
            assert not submitted.done()
        response = submitted.result(timeout=60)

    assert response.status_code == 202, response.text
    assert client.get(response.headers["Location"], headers=alice).status_code == 200


def test_a_lock_held_past_every_retry_answers_503_and_stores_nothing(settings: Settings) -> None:
    impatient = settings.model_copy(update={"SQLITE_BUSY_TIMEOUT_MS": 20})
    with TestClient(create_app(impatient)) as client:
        alice = register_and_login(client, "alice@example.com")
        with write_lock_held(database_file(settings)):
            response = client.post(JOBS, headers=alice, json=synthetic_job())

        assert response.status_code == 503, response.text
        assert int(response.headers["Retry-After"]) >= 1
        assert "database is busy" in response.json()["detail"]
        assert client.get(JOBS, headers=alice).json()["count"] == 0
