"""Seeing, from a test, that a transaction waits for a lock another one holds."""

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, event


class LockWatch:
    """Whether a transaction on `engine`'s database waits for a lock. PostgreSQL says so in
    pg_locks. SQLite cannot tell, but a write there starts with BEGIN IMMEDIATE, which returns
    only once it has the write lock: one sent and not yet answered is waiting."""

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
        with self.engine.connect() as connection:
            waits = connection.exec_driver_sql("SELECT count(*) FROM pg_locks WHERE NOT granted")
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
