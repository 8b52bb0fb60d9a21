"""The database: one engine per app, SQLite tuned for concurrent writers, a session per request.

SQLite allows one writer at a time. WAL lets readers go on while a writer commits, the busy
timeout makes a writer wait for the lock instead of failing, and `BEGIN IMMEDIATE` takes the
write lock when a transaction starts: a deferred transaction that reads and then writes can fail
with "database is locked" at once, without waiting, when another writer got in between.
"""

import time
import uuid
from collections.abc import Iterator
from sqlite3 import Connection as SQLiteConnection
from typing import Annotated, Any

from fastapi import Depends, Request
from loguru import logger
from sqlalchemy import Engine, event, func
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, SQLModel, col, create_engine, select
from sqlmodel.sql.expression import SelectOfScalar

from nogil_bench.core.config import Settings
from nogil_bench.core.errors import NotFoundError


def make_engine(settings: Settings) -> Engine:
    url = settings.database_url
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={
            "check_same_thread": False,  # sessions are per request, connections are pooled
            "timeout": settings.SQLITE_BUSY_TIMEOUT_MS / 1000,
        },
    )
    busy_timeout_ms = settings.SQLITE_BUSY_TIMEOUT_MS

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: SQLiteConnection, _record: Any) -> None:
        # pysqlite must not issue its own BEGIN: the "begin" listener below does.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoints; safe with WAL
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


MAX_BACKOFF_SECONDS = 8.0


class DatabaseUnavailableError(RuntimeError):
    """The database did not answer within the start-up attempts."""


def database_answers(engine: Engine) -> None:
    """Raises when the database cannot run a trivial query."""
    with engine.connect() as connection:
        connection.exec_driver_sql("SELECT 1")


def wait_for_database(engine: Engine, settings: Settings) -> None:
    """Bounded retries with exponential backoff; DatabaseUnavailableError after the last."""
    delay_s = settings.DB_CONNECT_BACKOFF_SECONDS
    for attempt in range(1, settings.DB_CONNECT_ATTEMPTS + 1):
        try:
            database_answers(engine)
        except SQLAlchemyError as error:
            if attempt == settings.DB_CONNECT_ATTEMPTS:
                raise DatabaseUnavailableError(
                    f"the database at {engine.url!r} did not answer after {attempt} attempts: "
                    f"{error.__cause__ or error}"
                ) from error
            logger.warning(
                "database not answering (attempt {} of {}), retrying in {:.1f} s: {}",
                attempt,
                settings.DB_CONNECT_ATTEMPTS,
                delay_s,
                error.__cause__ or error,
            )
            time.sleep(delay_s)
            delay_s = min(delay_s * 2, MAX_BACKOFF_SECONDS)
        else:
            return


def get_session(request: Request) -> Iterator[Session]:
    with Session(request.app.state.engine) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def get_owned[T: SQLModel](
    session: Session, table: type[T], row_id: uuid.UUID, owner_id: uuid.UUID
) -> T:
    """The row, if `owner_id` owns it. Another user's row is "not found", not "forbidden":
    ids must not reveal what exists."""
    row = session.get(table, row_id)
    if row is None or getattr(row, "owner_id", None) != owner_id:
        raise NotFoundError(f"no {table.__name__.lower()} {row_id}")
    return row


def newest_first[T: SQLModel](
    session: Session, query: SelectOfScalar[T], table: type[T], *, limit: int, offset: int
) -> tuple[list[T], int]:
    """One page of the query's rows, newest first (ids are UUIDv7), and the total count."""
    count = session.exec(select(func.count()).select_from(query.subquery())).one()
    newest = col(getattr(table, "id")).desc()  # noqa: B009 - every table here has an id
    page = session.exec(query.order_by(newest).offset(offset).limit(limit)).all()
    return list(page), count
