"""The tests' database servers, as the fixtures see them; and seeing, from a test, that a
transaction waits for a lock another one holds."""

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import pytest
from sqlalchemy import Engine, event

# The fixtures (tests/conftest.py) of each store but SQLite: the run's server, and the URL of
# the tests' database on it, emptied.
SERVER_FIXTURES = {"postgresql": "postgres_server", "mariadb": "mariadb_server"}
URL_FIXTURES = {"postgresql": "postgres_url", "mariadb": "mariadb_url"}
# For a test whose costly part does not touch the store (a whole measurement, then what is drawn
# or exported from its document): it runs on SQLite only, and the store's part is left to the
# tests that run on every store. About 25-50 s saved per test and server on 2 cores.
sqlite_only = pytest.mark.parametrize("database_kind", ["sqlite"], indirect=True)

# What waits for a row lock, as each server tells it.
LOCK_WAITS = {
    "postgresql": "SELECT count(*) FROM pg_locks WHERE NOT granted",
    "mysql": "SELECT count(*) FROM information_schema.innodb_trx WHERE trx_state = 'LOCK WAIT'",
}
# InnoDB refreshes what innodb_trx shows only once it has gone unread this long: polled more
# often, it never changes.
INNODB_TRX_REFRESH_S = 0.15


class DatabaseServer(Protocol):
    """A server the tests started (tests/utils/postgres.py, tests/utils/mariadb.py)."""

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of `database` on it."""
        ...

    def create_database(self, name: str) -> str:
        """A new, empty database; its URL."""
        ...

    def drop_database(self, name: str) -> None: ...


def database_server(request: pytest.FixtureRequest, store: str) -> DatabaseServer:
    """The run's server of `store` (not SQLite), from its fixture."""
    server: DatabaseServer = request.getfixturevalue(SERVER_FIXTURES[store])
    return server


class LockWatch:
    """Whether a transaction on `engine`'s database waits for a lock. PostgreSQL says so in
    pg_locks, MariaDB in InnoDB's transactions. SQLite cannot tell, but a write there starts
    with BEGIN IMMEDIATE, which returns only once it has the write lock: one sent and not yet
    answered is waiting."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._beginning = 0

    def _before(self, *args: Any) -> None:
        if args[2].startswith("BEGIN IMMEDIATE"):  # (conn, cursor, statement, ...)
            with self._lock:
                self._beginning += 1

    def _after(self, *args: Any) -> None:
        if args[2].startswith("BEGIN IMMEDIATE"):
            with self._lock:
                self._beginning -= 1

    def waiting(self) -> bool:
        if self.engine.dialect.name == "sqlite":
            with self._lock:
                return self._beginning > 0
        if self.engine.dialect.name == "mysql":
            time.sleep(INNODB_TRX_REFRESH_S)
        with self.engine.connect() as connection:
            waits = connection.exec_driver_sql(LOCK_WAITS[self.engine.dialect.name])
            return bool(waits.scalar_one())


@contextmanager
def lock_watch(engine: Engine) -> Iterator[LockWatch]:
    watch = LockWatch(engine)
    event.listen(engine, "before_cursor_execute", watch._before)
    event.listen(engine, "after_cursor_execute", watch._after)
    try:
        yield watch
    finally:
        event.remove(engine, "before_cursor_execute", watch._before)
        event.remove(engine, "after_cursor_execute", watch._after)
