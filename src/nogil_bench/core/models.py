"""Table pieces more than one domain uses: UTC timestamps, and the life cycle of queued work."""

import uuid
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    DateTime,
    Dialect,
    Float,
    Integer,
    LargeBinary,
    String,
    Uuid,
    and_,
    func,
    or_,
    update,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, Session, SQLModel, col, select

from nogil_bench.core.db import MYSQL_DIALECTS, lock_until_transaction_ends
from nogil_bench.core.errors import (
    ConflictError,
    NotFoundError,
    ServiceUnavailableError,
    TooManyRequestsError,
)


def utc_now() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out (SQLite would hand back naive ones)."""

    # MySQL's DATETIME keeps whole seconds unless told its fraction's digits.
    impl = DateTime().with_variant(mysql.DATETIME(fsp=6), *MYSQL_DIALECTS)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: store UTC-aware datetimes only")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC)


# Whole numbers past 2**31 (seeds, bytes): PostgreSQL's and MySQL's INTEGER are 32-bit, so
# BIGINT there; SQLite's INTEGER already holds 64 bits, so its tables stay as they are.
BigInt = BigInteger().with_variant(Integer(), "sqlite")
# Text of any length: MySQL's VARCHAR needs a length and its TEXT stops at 64 KiB.
LongText = String().with_variant(mysql.LONGTEXT(), *MYSQL_DIALECTS)
# MySQL's FLOAT is single precision; PostgreSQL's and SQLite's hold a double.
Float64 = Float().with_variant(mysql.DOUBLE(asdecimal=False), *MYSQL_DIALECTS)
# UUIDs as 32 hex characters on MySQL, as on SQLite: MariaDB 10.7+ has a UUID type that
# SQLAlchemy would pick by the server's version (tables made on an older server would then be
# queried wrongly after an upgrade), and that sorts some UUID versions out of their text order.
HexUuid = Uuid().with_variant(Uuid(native_uuid=False), *MYSQL_DIALECTS)
# Bytes of any length: MySQL's BLOB stops at 64 KiB.
LongBlob = LargeBinary().with_variant(mysql.LONGBLOB(), *MYSQL_DIALECTS)


class Status(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in {Status.SUCCEEDED, Status.FAILED, Status.CANCELLED}


# The columns of the index each user's list is read by, newest first, a page at a time: by
# owner, then id (UUIDv7, in time order), the database reads a page in index order and stops at
# its end, rather than sorting every row the user has. It also serves the owner's foreign key.
OWNER_THEN_ID = ("owner_id", "id")


class QueuedWork(SQLModel):
    """What every queued thing records. Ids are UUIDv7: time-ordered, so sorting by id is FIFO."""

    id: uuid.UUID = Field(default_factory=uuid.uuid7, primary_key=True, sa_type=HexUuid)
    status: Status = Field(default=Status.QUEUED, index=True)
    error: str | None = Field(default=None, sa_type=LongText)
    queued_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    gil_enabled: bool | None = Field(default=None, description="The GIL's state when it ran.")
    attempts: int = Field(
        default=0,
        sa_column_kwargs={"server_default": "0"},
        description="Runs started, less those the service itself cut short at shutdown.",
    )
    boot_id: uuid.UUID | None = Field(
        default=None,
        sa_type=HexUuid,
        index=True,
        description="The service process (its boot id) that ran it; cleared when requeued.",
    )
    lease_expires_at: datetime | None = Field(
        default=None,
        sa_type=UTCDateTime,
        description="While running: the process holds it until then (its heartbeat renews it).",
    )
    worker: str | None = Field(
        default=None,
        sa_type=LongText,
        description="The process that ran it last: a Celery worker's name, or the service's.",
    )
    dispatched_at: datetime | None = Field(
        default=None,
        sa_type=UTCDateTime,
        description="With a broker: when it was handed to Celery; cleared when requeued.",
    )

    def requeue(self) -> None:
        """Back to the queue, to run again; the attempt it was on stays counted."""
        self.status = Status.QUEUED
        self.boot_id = None
        self.lease_expires_at = None
        self.dispatched_at = None

    def put_back(self) -> None:
        """Back to the queue because the service stopped (a shutdown), not because the work
        failed: the run it cut short is not counted as an attempt."""
        self.requeue()
        self.attempts = max(0, self.attempts - 1)


CANCELLED_BY_OWNER = "cancelled by its owner before it ran"


def cancel_queued(session: Session, table: type[QueuedWork], *where: ColumnElement[bool]) -> int:
    """Cancels `table`'s rows matching `where` that are still queued, in one conditional UPDATE,
    so that work claimed meanwhile is never marked cancelled; how many were. Not committed."""
    result = session.connection().execute(
        update(table)
        .where(col(table.status) == Status.QUEUED, *where)
        .values(status=Status.CANCELLED, error=CANCELLED_BY_OWNER, finished_at=utc_now())
    )
    return result.rowcount


def _nothing() -> None:
    pass


def cancel_or_delete[Work: QueuedWork](
    session: Session,
    table: type[Work],
    work_id: uuid.UUID,
    *,
    noun: str,
    before_delete: Callable[[], None] = _nothing,
) -> Work | None:
    """What deleting work means: a queued row is cancelled (returned, now cancelled), a finished
    one deleted, after `before_delete()` (None); 404 when it is gone, 409 while it runs. The
    cancel is one conditional UPDATE, so work claimed meanwhile is never marked cancelled. Not
    committed."""
    if cancel_queued(session, table, col(table.id) == work_id):
        cancelled = session.get(table, work_id)
        assert cancelled is not None
        return cancelled
    row = session.get(table, work_id, with_for_update=True)  # as it is now, under the write lock
    if row is None:
        raise NotFoundError(f"no {noun} {work_id}")
    if row.status is Status.RUNNING:
        raise ConflictError(f"{noun} {work_id} is running; it can be deleted once it finishes")
    before_delete()
    session.delete(row)
    return None


def fail_unfinished(
    session: Session,
    table: type[QueuedWork],
    *where: ColumnElement[bool],
    boot_id: uuid.UUID,
    error: str,
    queued_too: bool = False,
) -> None:
    """Fails `table`'s rows matching `where` that `boot_id` still runs (not those put back in
    the queue or taken over meanwhile), and with `queued_too` those never started, with
    `error`. Not committed."""
    unfinished = and_(col(table.status) == Status.RUNNING, col(table.boot_id) == boot_id)
    if queued_too:
        unfinished = or_(unfinished, col(table.status) == Status.QUEUED)
    session.execute(
        update(table)
        .where(unfinished, *where)
        .values(status=Status.FAILED, error=error, finished_at=utc_now())
    )


def queue_lock_key(table: type[QueuedWork]) -> int:
    """The lock that submitters to `table` take turns on (`lock_until_transaction_ends`): a
    stable number from the table's name."""
    return zlib.crc32(f"nogil_bench.queue.{table.__tablename__}".encode())


def check_queue_room(
    session: Session,
    table: type[QueuedWork],
    *,
    owner_id: uuid.UUID,
    adding: int,
    per_user: int,
    in_all: int,
    retry_after_s: int,
    noun: str,
) -> None:
    """429 when `adding` more of the user's queued rows of `table` would pass `per_user`, 503
    when the service's would pass `in_all`; both with Retry-After. Run it in the transaction
    that adds them: it takes that table's queue lock until the transaction ends, so that two
    submitters cannot both count the room one of them fills."""
    lock_until_transaction_ends(session, queue_lock_key(table))
    retry = {"Retry-After": str(retry_after_s)}
    queued = select(func.count()).select_from(table).where(col(table.status) == Status.QUEUED)
    mine = session.exec(queued.where(col(getattr(table, "owner_id")) == owner_id)).one()  # noqa: B009
    if mine + adding > per_user:
        raise TooManyRequestsError(
            f"you have {mine} {noun} queued; the limit is {per_user} per user, so {adding} "
            "more do not fit: retry once some have run",
            headers=retry,
        )
    everyone = session.exec(queued).one()
    if everyone + adding > in_all:
        raise ServiceUnavailableError(
            f"the service has {everyone} {noun} queued, its limit is {in_all}: retry in "
            f"{retry_after_s} s",
            headers=retry,
        )
