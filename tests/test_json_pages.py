"""A page read for JSON (`core.json_pages`) takes each column's value as the driver gives it and
writes what pydantic would write for the column's Python value, whatever form the driver chose.
tests/test_database_values.py checks the same through each real store."""

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic_core import to_json
from sqlalchemy import JSON, Boolean, Column, Dialect, Engine, Enum, Integer, String, Uuid
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from nogil_bench.auth.models import User
from nogil_bench.core.config import Settings
from nogil_bench.core.db import make_engine
from nogil_bench.core.json_pages import (
    enum_member,
    json_document,
    json_value,
    newest_first_values,
    page_statement,
    utc_timestamp,
    uuid_text,
)
from nogil_bench.core.migrations import upgrade_database
from nogil_bench.core.models import HexUuid, Status, UTCDateTime
from nogil_bench.jobs import service
from nogil_bench.jobs.models import Batch, Job

SQLITE = sqlite.dialect()
PG = postgresql.psycopg.dialect()  # type: ignore[no-untyped-call]
MARIADB = mysql.pymysql.dialect(is_mariadb=True)
AN_ID = uuid.UUID("01a2440f-2992-7308-9c74-35aee2bbd861")


@pytest.mark.parametrize(
    "stored",
    [AN_ID.hex, AN_ID.hex.upper(), str(AN_ID), AN_ID],
    ids=["32 hex digits (SQLite, MySQL)", "upper case", "36 characters", "uuid.UUID (PostgreSQL)"],
)
def test_a_uuid_is_written_as_pydantic_writes_it(stored: object) -> None:
    assert to_json(uuid_text(stored)) == to_json(AN_ID)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("stored", "meant"),
    [
        ("2026-12-05 02:36:14.098083", datetime(2026, 12, 5, 2, 36, 14, 98_083, tzinfo=UTC)),
        ("2026-12-05 02:36:14.000000", datetime(2026, 12, 5, 2, 36, 14, tzinfo=UTC)),
        ("2026-12-05 02:36:14.000001", datetime(2026, 12, 5, 2, 36, 14, 1, tzinfo=UTC)),
        ("0999-01-02 03:04:05.500000", datetime(999, 1, 2, 3, 4, 5, 500_000, tzinfo=UTC)),
        ("2026-12-05 02:36:14", datetime(2026, 12, 5, 2, 36, 14, tzinfo=UTC)),
        ("2026-12-05T02:36:14.25", datetime(2026, 12, 5, 2, 36, 14, 250_000, tzinfo=UTC)),
        (datetime(2026, 12, 5, 2, 36, 14, 7), datetime(2026, 12, 5, 2, 36, 14, 7, tzinfo=UTC)),
        (
            datetime(2026, 12, 5, 3, 36, 14, tzinfo=timezone(timedelta(hours=1))),
            datetime(2026, 12, 5, 2, 36, 14, tzinfo=UTC),
        ),
    ],
    ids=[
        "SQLite's text",
        "SQLite's text on the second",
        "one microsecond",
        "a year before 1000",
        "text with no fraction",
        "other ISO text",
        "a naive datetime (PostgreSQL, MySQL)",
        "an aware datetime elsewhere",
    ],
)
def test_a_utc_timestamp_is_written_as_pydantic_writes_an_aware_utc_datetime(
    stored: str | datetime, meant: datetime
) -> None:
    assert to_json(utc_timestamp(stored)) == to_json(meant)


def test_an_enum_stored_by_name_is_written_by_value() -> None:
    member = enum_member(Status)
    assert member("SUCCEEDED") is Status.SUCCEEDED
    assert to_json(member("CANCELLED")) == b'"cancelled"'
    with pytest.raises(KeyError):
        member("succeeded")  # not a name SQLAlchemy stores


@pytest.mark.parametrize(
    "stored",
    ['[{"op": "blur", "params": {"radius": 1.5}}]', b'[{"op":"blur","params":{"radius":1.5}}]'],
    ids=["text", "bytes"],
)
def test_a_json_column_stored_as_text_is_written_as_its_document(stored: str | bytes) -> None:
    assert json_document(stored) == [{"op": "blur", "params": {"radius": 1.5}}]


def test_a_json_column_a_driver_decodes_itself_is_not_parsed_again() -> None:
    # psycopg decodes JSON: a document that is itself a JSON string comes as that `str`.
    assert json_value(Column("pipeline", JSON()), PG) is None


@pytest.mark.parametrize(
    ("column", "dialect", "stored", "written"),
    [
        (
            Column("at", UTCDateTime()),
            SQLITE,
            "2026-12-05 02:36:14.000000",
            b'"2026-12-05T02:36:14Z"',
        ),
        (Column("at", UTCDateTime()), PG, datetime(2026, 12, 5), b'"2026-12-05T00:00:00Z"'),
        (Column("id", HexUuid), SQLITE, AN_ID.hex, to_json(AN_ID)),
        (Column("id", Uuid()), PG, AN_ID, to_json(AN_ID)),
        (Column("status", Enum(Status)), PG, "QUEUED", b'"queued"'),
        (Column("pipeline", JSON()), SQLITE, '"[1]"', b'"[1]"'),
        (Column("pipeline", JSON()), MARIADB, "[]", b"[]"),
        (Column("gil", Boolean()), MARIADB, 0, b"false"),
    ],
    ids=[
        "SQLite timestamp",
        "PostgreSQL timestamp",
        "hex uuid",
        "native uuid",
        "enum",
        "a JSON string stored as text",
        "JSON text",
        "boolean as 0",
    ],
)
def test_each_column_type_gets_its_conversion(
    column: Column[object], dialect: Dialect, stored: object, written: bytes
) -> None:
    convert = json_value(column, dialect)
    assert convert is not None
    assert to_json(convert(stored)) == written


@pytest.mark.parametrize("column_type", [Integer(), String()], ids=["integer", "text"])
def test_values_every_driver_gives_as_python_values_are_left_alone(
    column_type: Integer | String,
) -> None:
    for dialect in (SQLITE, PG, MARIADB):
        assert json_value(Column("plain", column_type), dialect) is None


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(Settings(DATA_DIR=tmp_path, _env_file=None))  # type: ignore[call-arg]
    upgrade_database(engine)
    yield engine
    engine.dispose()


def test_a_page_of_a_users_jobs_is_read_in_index_order_not_sorted(sqlite_engine: Engine) -> None:
    # Sorting every job the user has, for each page, would make a long history slow to page.
    jobs = Job.__table__  # type: ignore[attr-defined]
    page = page_statement(tuple(jobs.c), ("owner_id",)).compile(sqlite_engine)
    with sqlite_engine.connect() as connection:
        plan = connection.exec_driver_sql(
            f"EXPLAIN QUERY PLAN {page}", tuple(None for _ in page.positiontup or ())
        ).all()
    steps = [step[-1] for step in plan]
    assert any("ix_job_owner_id_id" in step for step in steps), steps
    assert not any("TEMP B-TREE" in step for step in steps), steps


def test_on_sqlite_each_filter_is_bound_as_sqlalchemy_binds_it(sqlite_engine: Engine) -> None:
    # SQLite's page goes to the driver itself (`DriverStatement`): its filters' values must be
    # stored forms (hex UUIDs, enum names) exactly as the ORM's own query binds them.
    with Session(sqlite_engine) as session:
        user = User(email="a@example.com", hashed_password="not a real hash")
        session.add(user)
        session.flush()
        batch = Batch(owner_id=user.id, runner="threads", workers=1, pipeline=[])
        session.add(batch)
        session.flush()
        for index in range(6):
            session.add(
                Job(
                    owner_id=user.id,
                    batch_id=batch.id if index % 2 else None,
                    status=Status.SUCCEEDED if index % 3 else Status.QUEUED,
                    runner="threads" if index < 3 else "processes",
                    workers=1,
                    pipeline=[],
                    width=8,
                    height=8,
                )
            )
        session.commit()
        user_id, batch_id = user.id, batch.id
    filters: list[dict[str, Any]] = [
        {},
        {"status": Status.SUCCEEDED},
        {"runner": "processes"},
        {"batch_id": batch_id},
        {"status": Status.QUEUED, "runner": "threads", "batch_id": batch_id},
        {"runner": "nobody's"},
    ]

    for narrowed in filters:
        query = {"status": None, "runner": None, "batch_id": None} | narrowed
        with Session(sqlite_engine) as session:
            models, model_count = service.list_jobs(
                session=session, owner_id=user_id, limit=4, offset=1, **query
            )
        with sqlite_engine.connect() as connection:
            page, count = newest_first_values(
                connection,
                tuple(Job.__table__.c),  # type: ignore[attr-defined]
                equal={"owner_id": user_id, **narrowed},
                limit=4,
                offset=1,
            )
            assert connection.in_transaction()  # the request's later reads: one snapshot

        assert [row["id"] for row in page] == [str(job.id) for job in models], narrowed
        assert count == model_count, narrowed


def test_a_driver_error_comes_out_as_sqlalchemys(sqlite_engine: Engine) -> None:
    # So the service answers it as any other database error (a locked database: 503).
    with sqlite_engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE job RENAME TO job_elsewhere")

    with sqlite_engine.connect() as connection, pytest.raises(OperationalError, match="job"):
        newest_first_values(
            connection,
            tuple(Job.__table__.c),  # type: ignore[attr-defined]
            equal={"owner_id": AN_ID},
            limit=20,
            offset=0,
        )


def test_postgresqls_page_is_packed_after_it_is_cut() -> None:
    # One JSON array a row (psycopg hands over one value, not 26), built for the page's rows
    # only: packed before the offset, a deep page would pack every row it skips.
    statement = page_statement(tuple(Job.__table__.c), ("owner_id",), packed=True)  # type: ignore[attr-defined]
    sql = " ".join(str(statement.compile(dialect=PG)).split())

    packing, _, page = sql.partition(" FROM (SELECT ")
    assert packing.startswith("SELECT CAST(json_build_array(page.id, ")
    assert "LIMIT" not in packing
    assert page.endswith(
        " LIMIT %(page_limit)s OFFSET %(page_offset)s) AS page ORDER BY page.id DESC"
    )
