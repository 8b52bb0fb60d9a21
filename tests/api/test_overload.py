"""Overload is an answer, not an error: full queues and rate limits get 429 or 503 with
Retry-After and the reason, and store nothing."""

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2
import pytest
from fastapi.testclient import TestClient

from nogil_bench.core.config import Settings
from nogil_bench.core.db import writing
from nogil_bench.main import create_app
from tests.utils.api import (
    BATCHES,
    BENCHMARKS,
    JOBS,
    SMALL_BATCH,
    SMALL_BENCHMARK,
    register_and_login,
    synthetic_job,
)

# Well past WRITE_LOCK_TIMEOUT_SECONDS below: a writer with no timeout would wait longer.
ANSWER_DEADLINE_S = 10.0


@pytest.fixture
def tight(settings: Settings) -> Iterator[TestClient]:
    """A service with small queues and rate limits."""
    limited = settings.model_copy(
        update={
            "MAX_QUEUED_JOBS_PER_USER": 4,
            "MAX_QUEUED_JOBS": 6,
            "MAX_QUEUED_BENCHMARKS_PER_USER": 1,
            "MAX_QUEUED_BENCHMARKS": 2,
            "SUBMISSION_RATE_LIMIT": "100/minute",
            "LOGIN_FAILURE_LIMIT": "3/minute",
            "LOGIN_RATE_LIMIT": "8/minute",
        }
    )
    with TestClient(create_app(limited)) as client:
        assert client.app.state.executor.stop(timeout_s=30)  # type: ignore[attr-defined]
        yield client


def assert_refused(response: httpx2.Response, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    assert int(response.headers["Retry-After"]) >= 1
    for word in words:
        assert word in response.json()["detail"]


def test_a_users_full_queue_answers_429_and_stores_nothing(tight: TestClient) -> None:
    alice = register_and_login(tight, "alice@example.com")
    assert tight.post(BATCHES, headers=alice, json=SMALL_BATCH).status_code == 202  # 3 queued

    fourth = tight.post(JOBS, headers=alice, json=synthetic_job())
    assert fourth.status_code == 202

    over = tight.post(BATCHES, headers=alice, json=SMALL_BATCH)

    assert_refused(over, 429, "4 images queued", "limit is 4 per user")
    assert tight.get(JOBS, headers=alice).json()["count"] == 4
    # Room comes back as queued work leaves the queue.
    assert tight.delete(fourth.headers["Location"], headers=alice).status_code == 200
    assert tight.post(JOBS, headers=alice, json=synthetic_job()).status_code == 202


def test_the_services_full_queue_answers_503(tight: TestClient) -> None:
    alice = register_and_login(tight, "alice@example.com")
    bob = register_and_login(tight, "bob@example.com")
    for headers in (alice, bob):
        assert tight.post(BATCHES, headers=headers, json=SMALL_BATCH).status_code == 202

    assert_refused(tight.post(JOBS, headers=bob, json=synthetic_job()), 503, "6 images queued")


def test_queued_benchmarks_are_limited_per_user_and_in_all(tight: TestClient) -> None:
    alice = register_and_login(tight, "alice@example.com")
    bob = register_and_login(tight, "bob@example.com")
    carol = register_and_login(tight, "carol@example.com")
    assert tight.post(BENCHMARKS, headers=alice, json=SMALL_BENCHMARK).status_code == 202

    assert_refused(tight.post(BENCHMARKS, headers=alice, json=SMALL_BENCHMARK), 429)
    assert tight.post(BENCHMARKS, headers=bob, json=SMALL_BENCHMARK).status_code == 202
    assert_refused(tight.post(BENCHMARKS, headers=carol, json=SMALL_BENCHMARK), 503)


def test_submissions_over_the_rate_limit_answer_429(settings: Settings) -> None:
    limited = settings.model_copy(update={"SUBMISSION_RATE_LIMIT": "3/minute"})
    with TestClient(create_app(limited)) as client:
        alice = register_and_login(client, "alice@example.com")
        bob = register_and_login(client, "bob@example.com")
        for _ in range(3):
            assert client.post(JOBS, headers=alice, json=synthetic_job()).status_code == 202

        assert_refused(
            client.post(JOBS, headers=alice, json=synthetic_job()), 429, "3 per 1 minute"
        )
        assert client.post(JOBS, headers=bob, json=synthetic_job()).status_code == 202
        assert client.get(JOBS, headers=alice).json()["count"] == 3


def test_failed_logins_for_one_email_are_limited_then_even_the_right_password_waits(
    tight: TestClient,
) -> None:
    register_and_login(tight, "alice@example.com", "the right password")

    def login(password: str) -> httpx2.Response:
        form = {"username": "alice@example.com", "password": password}
        return tight.post("/api/v1/auth/token", data=form)

    for _ in range(3):
        assert login("a wrong password").status_code == 401
    assert_refused(login("a wrong password"), 429, "failed logins")
    assert_refused(login("the right password"), 429)


def test_login_attempts_from_one_address_are_limited(tight: TestClient) -> None:
    for index in range(8):  # one login each: the limit of 8 a minute reached
        register_and_login(tight, f"user{index}@example.com")

    form = {"username": "user0@example.com", "password": "a fine password"}
    assert_refused(tight.post("/api/v1/auth/token", data=form), 429, "login attempts")


def test_a_writer_kept_waiting_for_its_turn_answers_503_promptly(tmp_path: Path) -> None:
    """SQLite only: this process's writers take turns on a lock of their own, and one kept
    waiting past WRITE_LOCK_TIMEOUT_SECONDS is told to come back rather than left hanging."""
    settings = Settings(  # type: ignore[call-arg]
        DATA_DIR=tmp_path / "data", BCRYPT_ROUNDS=4, WRITE_LOCK_TIMEOUT_SECONDS=0.5, _env_file=None
    )
    with TestClient(create_app(settings)) as client, ThreadPoolExecutor(1) as pool:
        alice = register_and_login(client, "alice@example.com")
        with writing(client.app.state.engine):  # type: ignore[attr-defined]
            waiting = pool.submit(client.post, JOBS, headers=alice, json=synthetic_job())
            response = waiting.result(timeout=ANSWER_DEADLINE_S)

        assert_refused(response, 503, "database is busy", "no turn to write within 0.5 s")
        assert client.get(JOBS, headers=alice).json()["count"] == 0
