"""Fixtures for the HTTP API: a live app per test, users logged in through the real endpoints."""

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from nogil_bench.core.config import Settings
from nogil_bench.work.executor import Executor

type Headers = dict[str, str]
FINISHED = {"succeeded", "failed", "cancelled"}
WAIT_TIMEOUT_S = 90.0


def register_and_login(
    client: TestClient, email: str, password: str = "a fine password"
) -> Headers:
    registered = client.post("/api/v1/auth/register", json={"email": email, "password": password})
    assert registered.status_code == 201, registered.text
    token = client.post("/api/v1/auth/token", data={"username": email, "password": password})
    assert token.status_code == 200, token.text
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


@pytest.fixture
def alice(client: TestClient) -> Headers:
    return register_and_login(client, "alice@example.com")


@pytest.fixture
def bob(client: TestClient) -> Headers:
    return register_and_login(client, "bob@example.com")


@pytest.fixture
def paused(client: TestClient) -> Callable[[], None]:
    """Stops the executor, so submitted work stays queued until the returned function starts a
    new one."""
    state = client.app.state  # type: ignore[attr-defined]
    assert state.executor.stop(timeout_s=30)

    def resume() -> None:
        state.executor = Executor(state.engine, state.settings, state.executor.boot_id)
        state.executor.start()

    return resume


def wait_until_finished(client: TestClient, url: str, headers: Headers) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_TIMEOUT_S
    while True:
        body: dict[str, Any] = client.get(url, headers=headers).json()
        if body["status"] in FINISHED:
            return body
        assert time.monotonic() < deadline, f"{url} still {body['status']} after {WAIT_TIMEOUT_S} s"
        time.sleep(0.05)


def stored_files(settings: Settings) -> list[Path]:
    """Every upload and output file the service has written."""
    return sorted(
        path
        for folder in (settings.uploads_dir, settings.outputs_dir)
        if folder.exists()
        for path in folder.iterdir()
    )


@pytest.fixture
def no_leftovers(client: TestClient, alice: Headers, settings: Settings) -> Iterator[None]:
    """Asserts, after the test, that alice has no jobs, batches or files."""
    yield
    assert client.get("/api/v1/jobs", headers=alice).json()["count"] == 0
    assert client.get("/api/v1/batches", headers=alice).json()["count"] == 0
    assert stored_files(settings) == []
