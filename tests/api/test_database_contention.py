"""A busy database never makes a 500: reads never wait for SQLite's write lock, writes wait and
retry, and a lock held past every retry answers 503 with Retry-After, storing nothing.

The lock is held by another connection to the same file, as another process would hold it.
"""

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from nogil_bench.core.config import Settings
from nogil_bench.main import create_app
from tests.api.conftest import Headers, register_and_login
from tests.api.test_jobs import JOBS, synthetic_job

# Far below the default busy timeout: a read that waited for the lock would take 10 s or fail.
READ_BUDGET_S = 2.0


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


def test_reads_and_logins_do_not_wait_for_a_writer(
    client: TestClient, alice: Headers, settings: Settings
) -> None:
    form = {"username": "alice@example.com", "password": "a fine password"}
    with write_lock_held(database_file(settings)):
        started = time.monotonic()
        me = client.get("/api/v1/users/me", headers=alice)
        jobs = client.get(JOBS, headers=alice)
        token = client.post("/api/v1/auth/token", data=form)
        elapsed_s = time.monotonic() - started

    assert (me.status_code, jobs.status_code, token.status_code) == (200, 200, 200)
    assert elapsed_s < READ_BUDGET_S


def test_a_write_waits_for_the_lock_then_succeeds(
    client: TestClient, alice: Headers, settings: Settings
) -> None:
    released = threading.Event()

    def hold_briefly() -> None:
        with write_lock_held(database_file(settings)):
            released.wait(0.5)

    holder = threading.Thread(target=hold_briefly)
    holder.start()
    time.sleep(0.1)  # the holder has the lock
    response = client.post(JOBS, headers=alice, json=synthetic_job())
    holder.join()

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
