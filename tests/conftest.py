import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from nogil_bench.core.config import Settings
from nogil_bench.core.migrations import upgrade_database
from nogil_bench.main import create_app
from nogil_bench.tables import METADATA
from tests.utils.postgres import (
    INSTALL_HINT,
    PostgresServer,
    ReusedDatabase,
    find_bindir,
    missing_client,
)
from tests.utils.redis_server import INSTALL_HINT as REDIS_INSTALL_HINT
from tests.utils.redis_server import RedisServer, find_redis_server

# The database-backed tests run on each store the service supports.
DATABASES = ["sqlite", "postgresql"]

# What can behave differently with the GIL on: what runs the work in this process (the runners,
# the workloads, the service's jobs and queue on them, the Celery runners), the engine's own
# loop (measure, plan) and what reports the GIL's state. The engine's workers get their GIL mode
# from `-X gil=N` whatever this process has, and its statistics, charts and documents are plain
# functions: they run once. `make test`'s second pass (PYTHON_GIL=1) runs `-m gil_sensitive`.
GIL_SENSITIVE = (
    "tests/runners/",
    "tests/workloads/",
    "tests/bench/test_measure.py",
    "tests/bench/test_plan.py",
    "tests/api/test_jobs.py",
    "tests/api/test_queue.py",
    "tests/distributed/test_celery_runner.py",
    "tests/e2e/test_concurrency.py",
    "tests/test_health.py",
    "tests/test_runtime.py",
    "tests/test_free_threading_traps.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.nodeid.startswith(GIL_SENSITIVE):
            item.add_marker(pytest.mark.gil_sensitive)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the whole run. Without the binaries the PostgreSQL tests are
    skipped with the install hint, or fail under CI; NOGIL_BENCH_TEST_POSTGRES=0 skips them
    everywhere (the Docker image's test stage, which has no server)."""
    if os.environ.get("NOGIL_BENCH_TEST_POSTGRES") == "0":
        pytest.skip("PostgreSQL tests turned off (NOGIL_BENCH_TEST_POSTGRES=0)")
    bindir = find_bindir()
    client_error = missing_client()
    if bindir is None or client_error is not None:
        missing = (
            "PostgreSQL's server (initdb, pg_ctl, postgres) is not installed"
            if bindir is None
            else f"psycopg cannot load libpq ({client_error})"
        )
        message = f"{missing}: {INSTALL_HINT}"
        if os.environ.get("CI", "").lower() not in {"", "0", "false"}:
            pytest.fail(message)
        pytest.skip(message)
    assert bindir is not None
    server = PostgresServer(bindir)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One Redis server for the whole run (Debian's redis-server). Without it the broker tests
    are skipped with the install hint, or fail under CI; NOGIL_BENCH_TEST_REDIS=0 skips them
    everywhere (the Docker image's test stage, which has no server)."""
    if os.environ.get("NOGIL_BENCH_TEST_REDIS") == "0":
        pytest.skip("Redis tests turned off (NOGIL_BENCH_TEST_REDIS=0)")
    binary = find_redis_server()
    if binary is None:
        message = f"redis-server is not installed: {REDIS_INSTALL_HINT}"
        if os.environ.get("CI", "").lower() not in {"", "0", "false"}:
            pytest.fail(message)
        pytest.skip(message)
    server = RedisServer(binary)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def broker_url(redis_server: RedisServer) -> str:
    """The tests' Redis, emptied."""
    redis_server.client().flushall()
    return redis_server.url


@pytest.fixture(scope="session")
def postgres_database(postgres_server: PostgresServer) -> Iterator[ReusedDatabase]:
    """The tests' database, its schema made once by the migrations."""
    url = postgres_server.create_database("nogil_bench")
    upgrade_database(url)
    database = ReusedDatabase(url, [table.name for table in METADATA.sorted_tables])
    yield database
    database.close()


@pytest.fixture
def postgres_url(postgres_database: ReusedDatabase) -> str:
    """The URL of the tests' PostgreSQL database, every table emptied."""
    postgres_database.empty()
    return postgres_database.url


@pytest.fixture(params=DATABASES)
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a database without tables: a new SQLite file, or a new PostgreSQL database
    (dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'nogil_bench.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = f"empty_{uuid.uuid4().hex}"
    yield server.create_database(name)
    server.drop_database(name)


@pytest.fixture(params=DATABASES)
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """The service's settings on each database: SQLite in `tmp_path`, or the PostgreSQL server
    this run started, emptied."""
    database_url = (
        request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    )
    return Settings(  # type: ignore[call-arg]
        DATA_DIR=tmp_path / "data",
        DATABASE_URL=database_url,
        # Argon2's minimum cost: hashing at the production cost would dominate the suite's time.
        ARGON2_TIME_COST=1,
        ARGON2_MEMORY_KIB=8,
        _env_file=None,
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client
