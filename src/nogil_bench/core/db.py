"""The database: one engine per app, short transactions, and writes that retry when busy.

Reads start a plain (deferred) transaction: with SQLite's WAL they run beside a writer and never
wait for its lock. Writes go through `write()`: one short transaction that takes the write lock
as it begins (`BEGIN IMMEDIATE` on SQLite, so it cannot fail half-way on a lock upgrade), and
that is retried with a bounded, jittered backoff when the database is busy (SQLite's lock,
PostgreSQL's serialization failures and deadlocks, MySQL's deadlocks and lock wait timeouts).
Within one process SQLite writers queue on a lock of their own rather than in SQLite's
sleep-and-poll busy handler, which is fairer and wastes no sleep, for at most
WRITE_LOCK_TIMEOUT_SECONDS (then 503); the busy timeout still covers writers in other processes.
PostgreSQL, MySQL and MariaDB run at READ COMMITTED, with row locks (`SELECT ... FOR UPDATE`)
where a transaction reads what it is about to change.
"""

import math
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from sqlite3 import Connection as SQLiteConnection
from typing import Annotated, Any
from weakref import WeakKeyDictionary

from fastapi import Depends, Request
from loguru import logger
from sqlalchemy import (
    Engine,
    Select,
    event,
    func,
    literal_column,
    make_url,
)
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.pool import ConnectionPoolEntry
from sqlmodel import Session, SQLModel, col, create_engine, select
from sqlmodel.sql.expression import SelectOfScalar

from nogil_bench.core.config import Settings
from nogil_bench.core.errors import (
    DATABASE_RETRY_AFTER_S,
    NotFoundError,
    ServiceUnavailableError,
)

# An execution option that marks a write transaction (see `write`).
_WRITE = "nogil_bench_write"
# SQLite has one writer at a time: this process's writers take turns here first, each waiting
# at most the given seconds.
_SQLITE_WRITE_LOCKS: WeakKeyDictionary[Engine, tuple[threading.Lock, float]] = WeakKeyDictionary()
# SQLSTATEs worth retrying: serialization_failure (MySQL's deadlocks too), deadlock_detected.
_RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})
# SQLAlchemy's names for MySQL's dialect and MariaDB's (a mysql:// URL may reach either).
MYSQL_DIALECTS = ("mysql", "mariadb")
# MySQL and MariaDB error codes worth retrying: ER_LOCK_DEADLOCK (also SQLSTATE 40001, when the
# server sends one), ER_LOCK_WAIT_TIMEOUT (SQLSTATE HY000, like most errors).
_RETRYABLE_MYSQL_ERRORS = frozenset({1213, 1205})
# Where a MySQL connection keeps the names of the GET_LOCK locks it holds for its transaction.
_HELD_LOCKS = "nogil_bench_held_locks"
WRITE_RETRY_FIRST_DELAY_S = 0.01
WRITE_RETRY_MAX_DELAY_S = 0.5


def make_engine(settings: Settings) -> Engine:
    url = settings.database_url
    pool = {
        "pool_size": settings.db_pool_size,
        "max_overflow": 0,
        "pool_timeout": settings.DB_POOL_TIMEOUT_SECONDS,
    }
    if make_url(url).get_backend_name() in MYSQL_DIALECTS:
        return _mysql_engine(url, pool, settings.WRITE_LOCK_TIMEOUT_SECONDS)
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True, **pool)
    settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={
            "check_same_thread": False,  # sessions are per request, connections are pooled
            "timeout": settings.SQLITE_BUSY_TIMEOUT_MS / 1000,
        },
        **pool,
    )
    busy_timeout_ms = settings.SQLITE_BUSY_TIMEOUT_MS
    _SQLITE_WRITE_LOCKS[engine] = (threading.Lock(), settings.WRITE_LOCK_TIMEOUT_SECONDS)

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
    def _begin(connection: Any) -> None:
        # Writers take the lock up front; readers take none and see a snapshot.
        if connection.get_execution_options().get(_WRITE, False):
            # Through SQLAlchemy, so that a busy database's error is the one `write` retries.
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            # A deferred BEGIN takes no lock and cannot be busy: sent on the driver's own
            # connection, it skips ~50 us of SQLAlchemy's execution path on every read.
            connection.connection.driver_connection.execute("BEGIN")

    return engine


def _mysql_engine(url: str, pool: dict[str, Any], lock_timeout_s: float) -> Engine:
    engine = create_engine(
        url,
        pool_pre_ping=True,
        # PostgreSQL's level, which the row locks here were written and tested for: every
        # statement reads the latest commits, and a locking read locks the rows it returns.
        # InnoDB's default, REPEATABLE READ, differs twice: a transaction's plain reads keep
        # its first snapshot while its locking reads see newer rows, and locking reads and
        # UPDATEs also lock the gaps between the index entries they scan, so inserts wait.
        isolation_level="READ COMMITTED",
        connect_args={
            "charset": "utf8mb4",  # all of Unicode, as the tables store it
            # A row lock is waited for as long as SQLite's turn, then retried by `write`
            # (ER_LOCK_WAIT_TIMEOUT); InnoDB's default wait is 50 s, for each attempt.
            "init_command": "SET SESSION innodb_lock_wait_timeout = "
            f"{max(1, math.ceil(lock_timeout_s))}",
        },
        **pool,
    )

    @event.listens_for(engine, "checkin")
    def _release_transaction_locks(
        dbapi_connection: DBAPIConnection | None, record: ConnectionPoolEntry
    ) -> None:
        # Back in the pool: its transaction has committed or rolled back. (A connection that
        # was closed instead has lost its locks with its session.)
        held: set[str] | None = record.info.pop(_HELD_LOCKS, None)
        if held and dbapi_connection is not None:
            cursor = dbapi_connection.cursor()
            try:
                for name in held:
                    cursor.execute("DO RELEASE_LOCK(%s)", (name,))
            finally:
                cursor.close()

    return engine


class DatabaseBusyError(ServiceUnavailableError):
    """The database stayed busy through every retry: 503, try again shortly."""

    def __init__(self, detail: str) -> None:
        super().__init__(
            f"the database is busy; retry in {DATABASE_RETRY_AFTER_S} s ({detail})",
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)},
        )


def is_busy(error: BaseException) -> bool:
    """True for errors that mean "busy right now", which a retry can get past."""
    if not isinstance(error, DBAPIError):
        return False
    orig = error.orig
    if getattr(orig, "sqlstate", None) in _RETRYABLE_SQLSTATES:  # psycopg, PyMySQL
        return True
    code = getattr(orig, "args", ())[:1]
    if code and code[0] in _RETRYABLE_MYSQL_ERRORS:  # PyMySQL: (code, message)
        return True
    message = str(orig).lower()
    return "database is locked" in message or "database is busy" in message


@contextmanager
def _writers_turn(engine: Engine) -> Iterator[None]:
    """This process's turn to write to a SQLite database (any time for other databases);
    DatabaseBusyError when another writer keeps it past WRITE_LOCK_TIMEOUT_SECONDS."""
    turn = _SQLITE_WRITE_LOCKS.get(engine)
    if turn is None:
        yield
        return
    lock, timeout_s = turn
    if not lock.acquire(timeout=timeout_s):
        raise DatabaseBusyError(f"no turn to write within {timeout_s:g} s")
    try:
        yield
    finally:
        lock.release()


@contextmanager
def writing(engine: Engine) -> Iterator[Session]:
    """One write transaction, committed at the end of the block (rolled back on an error).
    Objects stay readable after the commit: nothing is read again."""
    with _writers_turn(engine), Session(engine, expire_on_commit=False) as session:
        session.connection(execution_options={_WRITE: True})
        yield session
        session.commit()


def write[T](engine: Engine, work: Callable[[Session], T], *, attempts: int = 8) -> T:
    """`work(session)` in a write transaction, retried from the start while the database is
    busy (so `work` must only touch the database). DatabaseBusyError after the last attempt."""
    delay_s = WRITE_RETRY_FIRST_DELAY_S
    for attempt in range(1, attempts + 1):
        try:
            with writing(engine) as session:
                return work(session)
        except DBAPIError as error:
            if not is_busy(error):
                raise
            if attempt == attempts:
                raise DatabaseBusyError(str(error.orig)) from error
            logger.debug("database busy (attempt {} of {}): {}", attempt, attempts, error.orig)
            time.sleep(random.uniform(delay_s / 2, delay_s))  # noqa: S311 - jitter, not secrets
            delay_s = min(delay_s * 2, WRITE_RETRY_MAX_DELAY_S)
    raise AssertionError("unreachable")


def lock_until_transaction_ends(session: Session, key: int) -> None:
    """Takes the lock `key` names for the rest of the session's transaction: transactions that
    take it run one after another. PostgreSQL: a transaction-level advisory lock. MySQL and
    MariaDB: a GET_LOCK lock, which belongs to the connection, so it is released when the
    connection goes back to the pool after the commit or rollback (see `_mysql_engine`); it
    is waited for as long as a row lock (innodb_lock_wait_timeout), then 503. SQLite: nothing
    to take, its writers run one after another already."""
    connection = session.connection()
    dialect = connection.dialect.name
    if dialect == "postgresql":
        session.exec(select(func.pg_advisory_xact_lock(key)))
    elif dialect in MYSQL_DIALECTS:
        # Named per database, as PostgreSQL's advisory locks are; GET_LOCK's are server-wide.
        name = f"{connection.engine.url.database}/nogil_bench/{key}"
        held: set[str] = connection.info.setdefault(_HELD_LOCKS, set())
        if name in held:
            return
        taken = session.exec(
            select(func.get_lock(name, literal_column("@@innodb_lock_wait_timeout")))
        ).one()
        if taken != 1:
            raise DatabaseBusyError(f"lock {name} not free within innodb_lock_wait_timeout")
        held.add(name)


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


def engine_of(request: Request) -> Engine:
    """The app's engine, which `create_app` keeps on its state."""
    engine: Engine = request.app.state.engine
    return engine


async def get_engine(request: Request) -> Engine:
    return engine_of(request)


# No `SessionDep`, a generator dependency: FastAPI wraps those in `contextlib.contextmanager`
# on every request, and the `functools.wraps` in it sets a new function's `__name__` and
# `__doc__`, a stop-the-world pause on free-threaded 3.14 (see core/sqlalchemy_memo.py). Routes
# open `with Session(engine)` around their reads instead: short, and visibly so.
EngineDep = Annotated[Engine, Depends(get_engine)]


def get_owned[T: SQLModel](
    session: Session, table: type[T], row_id: uuid.UUID, owner_id: uuid.UUID
) -> T:
    """The row, if `owner_id` owns it. Another user's row is "not found", not "forbidden":
    ids must not reveal what exists."""
    row = session.get(table, row_id)
    if row is None or getattr(row, "owner_id", None) != owner_id:
        raise NotFoundError(f"no {table.__name__.lower()} {row_id}")
    return row


def count_of(query: Select[Any] | SelectOfScalar[Any]) -> SelectOfScalar[int]:
    # Over the query as a derived table: a scalar subquery over the table itself would be
    # correlated with the outer select's row, and count 1.
    return select(func.count()).select_from(query.subquery())


def newest_first[T: SQLModel](
    session: Session, query: SelectOfScalar[T], table: type[T], *, limit: int, offset: int
) -> tuple[list[T], int]:
    """One page of the query's rows, newest first (ids are UUIDv7), and the total count.

    One statement: the count rides on every row as an uncorrelated scalar subquery, which each
    database evaluates once; the page keeps its top-N sort (a `count(*) over ()` window would
    materialise every matching row first). Only a page past the end, with no row to carry it,
    asks for the count on its own. `query` is `select(table).where(...)`: its WHERE clause is
    what the page keeps."""
    newest = col(getattr(table, "id")).desc()  # noqa: B009 - every table here has an id
    paged = select(table, count_of(query).scalar_subquery())
    if query.whereclause is not None:
        paged = paged.where(query.whereclause)
    page = session.exec(paged.order_by(newest).offset(offset).limit(limit)).all()
    if page:
        return [row for row, _ in page], page[0][1]
    return [], session.exec(count_of(query)).one()
