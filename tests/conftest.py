import os
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import NoReturn, Protocol

import pytest
from fastapi.testclient import TestClient

from nogil_bench.core.config import Settings
from nogil_bench.core.logging import LATER
from nogil_bench.core.migrations import upgrade_database
from nogil_bench.main import create_app
from nogil_bench.tables import METADATA
from tests.utils import mariadb, postgres
from tests.utils.database import URL_FIXTURES, database_server
from tests.utils.rabbitmq_server import INSTALL_HINT as RABBITMQ_INSTALL_HINT
from tests.utils.rabbitmq_server import RabbitMQServer, find_rabbitmq_server
from tests.utils.redis_server import INSTALL_HINT as REDIS_INSTALL_HINT
from tests.utils.redis_server import RedisServer, find_redis_server

# The database-backed tests run on each store the service supports.
DATABASES = ["sqlite", "postgresql", "mariadb"]

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


@pytest.fixture(autouse=True)
def _access_lines_logged_within_their_test() -> Iterator[None]:
    """Access lines are logged on a thread of their own (core.logging.LaterLines): each
    test's are logged before it ends, so that pytest shows them with that test's output."""
    yield
    LATER.flush()


def server_missing(message: str) -> NoReturn:
    """A server the tests need is not installed: they are skipped with `message` (the install
    hint), except under CI, where they fail."""
    if os.environ.get("CI", "").lower() not in {"", "0", "false"}:
        pytest.fail(message)
    pytest.skip(message)


class StartedServer(Protocol):
    def start(self) -> None: ...
    def stop(self) -> object: ...


def session_server[S: StartedServer](
    switch: str, name: str, make: Callable[[], S] | None, missing: str
) -> Iterator[S]:
    """The server `make` builds, started for the session's fixture and stopped after it.
    NOGIL_BENCH_TEST_<switch>=0 skips its tests everywhere (the Docker image's test stage,
    which has no server); without the server installed (`make` is None) they are skipped with
    `missing` (the install hint), or fail under CI."""
    if os.environ.get(f"NOGIL_BENCH_TEST_{switch}") == "0":
        pytest.skip(f"{name} tests turned off (NOGIL_BENCH_TEST_{switch}=0)")
    if make is None:
        server_missing(missing)
    for attempt in range(1, PORT_ATTEMPTS + 1):
        server = make()
        try:
            server.start()
        except RuntimeError as error:
            server.stop()
            # Its free port was taken (by another xdist worker) before it bound: new ports.
            if attempt == PORT_ATTEMPTS or not port_taken(str(error)):
                raise
            continue
        break
    try:
        yield server
    finally:
        server.stop()


# How often a session's server is started on new ports when the ones picked were taken.
PORT_ATTEMPTS = 3


def port_taken(why: str) -> bool:
    """Whether a server's failure to start says its port was taken meanwhile."""
    return any(sign in why.lower() for sign in ("eaddrinuse", "address already in use"))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[postgres.PostgresServer]:
    """One PostgreSQL server for the whole run. Without the binaries the PostgreSQL tests are
    skipped with the install hint, or fail under CI; NOGIL_BENCH_TEST_POSTGRES=0 skips them
    everywhere (the Docker image's test stage, which has no server)."""
    if os.environ.get("NOGIL_BENCH_TEST_POSTGRES") == "0":
        pytest.skip("PostgreSQL tests turned off (NOGIL_BENCH_TEST_POSTGRES=0)")
    bindir = postgres.find_bindir()
    if bindir is None:
        server_missing(
            f"PostgreSQL's server (initdb, pg_ctl, postgres) is not installed: "
            f"{postgres.INSTALL_HINT}"
        )
    if (client_error := postgres.missing_client()) is not None:
        server_missing(f"psycopg cannot load libpq ({client_error}): {postgres.INSTALL_HINT}")
    server = postgres.PostgresServer(bindir)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[mariadb.MariaDBServer]:
    """One MariaDB server for the whole run (of each xdist worker); see `session_server`."""
    binaries = mariadb.find_bindir()
    yield from session_server(
        "MARIADB",
        "MariaDB",
        None if binaries is None else partial(mariadb.MariaDBServer, binaries),
        f"MariaDB's server (mariadb-install-db, mariadbd) is not installed: {mariadb.INSTALL_HINT}",
    )


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One Redis server for the whole run (Debian's redis-server); see `session_server`."""
    binary = find_redis_server()
    yield from session_server(
        "REDIS",
        "Redis",
        None if binary is None else partial(RedisServer, binary),
        f"redis-server is not installed: {REDIS_INSTALL_HINT}",
    )


@pytest.fixture
def broker_url(redis_server: RedisServer) -> str:
    """The tests' Redis, emptied."""
    redis_server.client().flushall()
    return redis_server.url


@pytest.fixture(scope="session")
def rabbitmq_server() -> Iterator[RabbitMQServer]:
    """One RabbitMQ for the whole run (of each xdist worker that needs it: it takes about 6 s
    to start); see `session_server`."""
    binary = find_rabbitmq_server()
    yield from session_server(
        "RABBITMQ",
        "RabbitMQ",
        None if binary is None else partial(RabbitMQServer, binary),
        f"rabbitmq-server is not installed: {RABBITMQ_INSTALL_HINT}",
    )


@pytest.fixture
def amqp_url(rabbitmq_server: RabbitMQServer) -> str:
    """The tests' RabbitMQ, its queues deleted."""
    rabbitmq_server.purge()
    return rabbitmq_server.url


# The brokers the service speaks; a test that takes `any_broker_url` runs on each.
BROKERS = {"redis": "broker_url", "rabbitmq": "amqp_url"}


@pytest.fixture(params=list(BROKERS))
def any_broker_url(request: pytest.FixtureRequest) -> str:
    """The URL of each broker in turn (Redis, RabbitMQ), emptied."""
    url: str = request.getfixturevalue(BROKERS[request.param])
    return url


@pytest.fixture(scope="session")
def postgres_database(
    postgres_server: postgres.PostgresServer,
) -> Iterator[postgres.ReusedDatabase]:
    """The tests' database, its schema made once by the migrations."""
    url = postgres_server.create_database("nogil_bench")
    upgrade_database(url)
    database = postgres.ReusedDatabase(url, [table.name for table in METADATA.sorted_tables])
    yield database
    database.close()


@pytest.fixture
def postgres_url(postgres_database: postgres.ReusedDatabase) -> str:
    """The URL of the tests' PostgreSQL database, every table emptied."""
    postgres_database.empty()
    return postgres_database.url


@pytest.fixture(scope="session")
def mariadb_database(mariadb_server: mariadb.MariaDBServer) -> Iterator[mariadb.ReusedDatabase]:
    """The tests' database, its schema made once by the migrations."""
    url = mariadb_server.create_database("nogil_bench")
    upgrade_database(url)
    database = mariadb.ReusedDatabase(url, [table.name for table in METADATA.sorted_tables])
    yield database
    database.close()


@pytest.fixture
def mariadb_url(mariadb_database: mariadb.ReusedDatabase) -> str:
    """The URL of the tests' MariaDB database, every table emptied."""
    mariadb_database.empty()
    return mariadb_database.url


@pytest.fixture(params=DATABASES)
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a database without tables: a new SQLite file, or a new database on the
    PostgreSQL or MariaDB server (dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'nogil_bench.db'}"
        return
    server = database_server(request, request.param)
    name = f"empty_{uuid.uuid4().hex}"
    yield server.create_database(name)
    server.drop_database(name)


@pytest.fixture(params=DATABASES)
def database_kind(request: pytest.FixtureRequest) -> str:
    """Each store the service supports, in turn: a test that uses it runs once on each."""
    kind: str = request.param
    return kind


@pytest.fixture
def settings(database_kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """The service's settings on each database: SQLite in `tmp_path`, or the tests' database
    on the PostgreSQL or MariaDB server this run started, emptied."""
    database_url = (
        None if database_kind == "sqlite" else request.getfixturevalue(URL_FIXTURES[database_kind])
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
