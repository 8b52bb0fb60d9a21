"""Fixtures for the HTTP API: a live app per test, users logged in through the real endpoints."""

from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from nogil_bench.core.config import Settings
from nogil_bench.work.executor import Executor
from tests.utils.api import Headers, register_and_login, stored_files


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


@pytest.fixture
def no_leftovers(client: TestClient, alice: Headers, settings: Settings) -> Iterator[None]:
    """Asserts, after the test, that alice has no jobs, batches or files."""
    yield
    assert client.get("/api/v1/jobs", headers=alice).json()["count"] == 0
    assert client.get("/api/v1/batches", headers=alice).json()["count"] == 0
    assert stored_files(settings) == []
