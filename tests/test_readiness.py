"""Readiness and start-up: ready only when the database answers, the executor takes work and
the service is not draining; start-up waits for the database, boundedly, then exits non-zero."""

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import create_engine

from nogil_bench.core import db
from nogil_bench.core.config import Settings
from nogil_bench.main import create_app
from tests.utils.database import database_server
from tests.utils.live_server import NOGIL_BENCH, free_port


def test_ready_when_every_check_passes(client: TestClient) -> None:
    response = client.get("/health/ready")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "checks": {"database": "ok", "executor": "ok", "draining": "ok"},
    }


def test_not_ready_while_the_executor_is_stopped(client: TestClient) -> None:
    client.app.state.executor.stop(timeout_s=30)  # type: ignore[attr-defined]

    response = client.get("/health/ready")

    assert response.status_code == 503
    assert response.json()["checks"]["executor"] == "not running"


def test_not_ready_while_draining(client: TestClient) -> None:
    client.app.state.draining = True  # type: ignore[attr-defined]

    response = client.get("/health/ready")

    assert response.status_code == 503
    assert response.json()["checks"]["draining"].startswith("shutting down")


@pytest.fixture
def database_not_yet_there(
    database_kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[str, Callable[[], object]]]:
    """The URL of a database of the settings' kind that does not answer yet, and the function
    that brings it: a SQLite file in a missing directory, or a PostgreSQL or MariaDB database
    not created."""
    if database_kind == "sqlite":
        folder = tmp_path / "not-yet"
        yield f"sqlite:///{folder / 'db.sqlite'}", lambda: folder.mkdir(exist_ok=True)
        return
    server = database_server(request, database_kind)
    name = f"not_yet_{uuid.uuid4().hex}"
    yield server.url(name), lambda: server.create_database(name)
    server.drop_database(name)


def test_not_ready_when_the_database_does_not_answer(
    client: TestClient, database_not_yet_there: tuple[str, Callable[[], object]]
) -> None:
    state = client.app.state  # type: ignore[attr-defined]
    working = state.engine
    state.engine = create_engine(database_not_yet_there[0])
    try:
        response = client.get("/health/ready")
    finally:
        state.engine = working

    assert response.status_code == 503
    assert "not answering" in response.json()["checks"]["database"]
    assert client.get("/health/live").status_code == 200  # alive, just not ready


def unreachable(settings: Settings, url: str, attempts: int) -> Settings:
    return settings.model_copy(
        update={
            "DATABASE_URL": url,
            "DB_CONNECT_ATTEMPTS": attempts,
            "DB_CONNECT_BACKOFF_SECONDS": 0.25,
        }
    )


def test_start_up_retries_with_backoff_then_gives_up(
    settings: Settings,
    database_not_yet_there: tuple[str, Callable[[], object]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, _ = database_not_yet_there
    waits: list[float] = []
    monkeypatch.setattr("nogil_bench.core.db.time.sleep", waits.append)

    with (
        pytest.raises(db.DatabaseUnavailableError, match="did not answer after 4 attempts"),
        TestClient(create_app(unreachable(settings, url, attempts=4))),
    ):
        pass

    assert waits == [0.25, 0.5, 1.0]


def test_start_up_goes_on_once_the_database_answers(
    settings: Settings,
    database_not_yet_there: tuple[str, Callable[[], object]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, database_comes_up = database_not_yet_there
    monkeypatch.setattr("nogil_bench.core.db.time.sleep", lambda _: database_comes_up())

    with TestClient(create_app(unreachable(settings, url, attempts=3))) as client:
        assert client.get("/health/ready").status_code == 200


def test_the_server_exits_non_zero_with_a_clear_message_when_the_database_never_comes(
    tmp_path: Path,
) -> None:
    env = os.environ | {
        "NOGIL_BENCH_DATA_DIR": str(tmp_path / "data"),
        "NOGIL_BENCH_DATABASE_URL": f"sqlite:///{tmp_path / 'absent' / 'db.sqlite'}",
        "NOGIL_BENCH_DB_CONNECT_ATTEMPTS": "2",
        "NOGIL_BENCH_DB_CONNECT_BACKOFF_SECONDS": "0.1",
    }

    server = subprocess.run(
        [NOGIL_BENCH, "serve", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert server.returncode != 0
    assert "cannot start" in server.stderr
    assert "did not answer after 2 attempts" in server.stderr
