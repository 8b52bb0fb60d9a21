"""Newest-first pages of a table, read for a JSON answer with no ORM and no SQLAlchemy result
processing: each column's value as the database driver gives it, made ready for
`pydantic_core.to_json` by a converter chosen once from the column's type.

Why: on 3.14t a 20-row page of `GET /jobs` spent about half of its read in SQLAlchemy's
per-value result processors, Python functions for these types (a regex per SQLite timestamp,
`uuid.UUID` per id, `json.loads` per pipeline, the enum's lookup), and the JSON writer then
spent as much again turning those objects back into text (scripts/bench_request_cpu.py;
docs/serving.md, the request path). The converters here take the shortest way from each
driver's value (SQLite's text, PostgreSQL's and MySQL's objects) to the JSON the public schema
gives, and tests/test_database_values.py holds the result to that schema's own JSON on every
store."""

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum as PyEnum
from functools import cache
from typing import Any

from pydantic_core import from_json
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    ColumnElement,
    Connection,
    Dialect,
    Enum,
    Select,
    Table,
    Text,
    Uuid,
    bindparam,
    cast,
    func,
    type_coerce,
)
from sqlalchemy import select as sa_select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.types import NullType

from nogil_bench.core.db import count_of
from nogil_bench.core.models import UTCDateTime

type Convert = Callable[[Any], Any]

# The prefix of a filter's bound parameter, apart from the page's own `page_limit` and
# `page_offset`.
_EQUAL = "equal_"


def newest_first_values(
    connection: Connection,
    columns: Sequence[Column[Any]],
    *,
    equal: Mapping[str, object],
    limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], int]:
    """One page of the table's rows whose columns `equal` names hold the values it gives,
    newest first (ids are UUIDv7), and how many match: those columns of each row, by name,
    as values `to_json` writes as their public schema does (`json_value`). One statement, the
    count riding on each row as in `core.db.newest_first`."""
    reader = _page_reader(tuple(columns), tuple(sorted(equal)), connection.dialect)
    parameters = {_EQUAL + name: value for name, value in equal.items()}
    page_parameters = {**parameters, "page_limit": limit, "page_offset": offset}
    rows: Sequence[Sequence[Any]]
    if reader.driver_page is not None:
        rows = reader.driver_page.rows(connection, page_parameters)
    else:
        rows = connection.execute(reader.page, page_parameters).all()
    if not rows:
        return [], connection.execute(reader.count, parameters).scalar_one()
    if reader.packed:
        rows = [(*from_json(packed), count) for packed, count in rows]
    # Converted a column at a time, each in one comprehension: 12% less than row by row.
    values: list[Sequence[Any]] = list(zip(*rows, strict=True))  # a column's values each
    for index, convert in reader.converters:
        values[index] = [None if value is None else convert(value) for value in values[index]]
    # zip stops at the names: each row ends with the count.
    page = [dict(zip(reader.names, row, strict=False)) for row in zip(*values, strict=True)]
    return page, rows[0][-1]


@dataclass(frozen=True, slots=True)
class DriverStatement:
    """A statement compiled once, sent to the database driver's own connection: SQLite's reads
    are CPU in this process, and sent to the driver a 20-row page of `GET /jobs` is read in
    168 us of CPU where SQLAlchemy's execution (its transaction, parameters and result) took
    206 (docs/serving.md, "A page sent to the driver"). Each parameter's value is bound as
    SQLAlchemy binds it (the column type's own processor), the statement runs in the
    connection's transaction (begun here if none is), and a driver's error comes out as
    SQLAlchemy's, so it is handled as any other (a locked database's, say).

    Only for SQLite: on a database server, SQLAlchemy's own execution also notices a lost
    connection and drops it from the pool, and the driver's work there costs far more than
    SQLAlchemy's."""

    sql: str
    # Each positional parameter's name and its bind processor (None: bound as given).
    parameters: tuple[tuple[str, Convert | None], ...]

    @classmethod
    def of(cls, statement: Select[Any], dialect: Dialect) -> DriverStatement:
        compiled = statement.compile(dialect=dialect)
        if dialect.paramstyle != "qmark" or compiled.positiontup is None:
            raise ValueError(f"{dialect.name}: not a driver of positional '?' parameters")
        if compiled.post_compile_params:
            raise ValueError("parameters SQLAlchemy renders per execution (IN lists): not here")
        return cls(
            compiled.string,
            tuple(
                (name, compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect))
                for name in compiled.positiontup
            ),
        )

    def rows(self, connection: Connection, values: Mapping[str, object]) -> list[Any]:
        """The statement's rows, as the driver gives them, for these parameter values."""
        if not connection.in_transaction():
            connection.begin()  # as SQLAlchemy would: one snapshot for the request's reads
        bound = tuple(
            values[name] if process is None else process(values[name])
            for name, process in self.parameters
        )
        driver = connection.dialect.loaded_dbapi
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(self.sql, bound)
            return cursor.fetchall()  # type: ignore[no-any-return]
        except driver.Error as error:
            raise DBAPIError.instance(self.sql, bound, error, driver.Error) from error
        finally:
            cursor.close()


@dataclass(frozen=True, slots=True)
class _PageReader:
    page: Select[Any]  # the columns untyped, then the count
    count: Select[Any]  # the count alone, for a page past the end
    names: tuple[str, ...]
    converters: tuple[tuple[int, Convert], ...]  # (the column's index, its `json_value`)
    driver_page: DriverStatement | None  # `page`, sent to the driver itself (SQLite)
    packed: bool  # each row's columns come as one JSON array (PostgreSQL; `page_statement`)


@cache
def _page_reader(
    columns: tuple[Column[Any], ...], filtered: tuple[str, ...], dialect: Dialect
) -> _PageReader:
    """Built once for each set of columns and of filtered columns, with the filters' values as
    bound parameters: built per request, with SQLAlchemy's cache key of the result, the
    statements cost more than the query."""
    converters = tuple(
        (index, convert)
        for index, column in enumerate(columns)
        if (convert := json_value(column, dialect)) is not None
    )
    packed = dialect.name == "postgresql"
    page = page_statement(columns, filtered, packed=packed)
    return _PageReader(
        page,
        count_of(_matching(columns[0].table, filtered)),
        tuple(column.name for column in columns),
        converters,
        DriverStatement.of(page, dialect) if dialect.name == "sqlite" else None,
        packed,
    )


def page_statement(
    columns: tuple[Column[Any], ...], filtered: tuple[str, ...], *, packed: bool = False
) -> Select[Any]:
    """The page: those columns untyped (`NullType`), so each comes as the driver gives it,
    then the count of the matching rows. The filters compare the typed columns, so their
    values are bound as each database stores them.

    `packed` (PostgreSQL): each row's columns as one JSON array, in text. psycopg, pure Python
    here, hands each value over through ctypes, one call a value before any loader runs: for
    a 20-row page of 26 columns, most of the read's CPU. Packed, it hands over one value a
    row, which `from_json` splits; each element is then what the converters already take
    (UUIDs and timestamps as their ISO text, a JSON column as its document). The page is
    packed after it is cut, so rows skipped by the offset are not packed too; the columns must
    include the table's `id`, by which the packed rows are ordered again."""
    table = columns[0].table
    page = (
        sa_select(*(type_coerce(column, NullType()).label(column.name) for column in columns))
        .add_columns(count_of(_matching(table, filtered)).scalar_subquery().label("page_count"))
        .where(*_equal(table, filtered))
        .order_by(table.c.id.desc())
        .limit(bindparam("page_limit"))
        .offset(bindparam("page_offset"))
    )
    if not packed:
        return page
    cut = page.subquery("page")
    values = (cut.c[column.name] for column in columns)
    return sa_select(
        cast(func.json_build_array(*values), Text).label("packed"), cut.c.page_count
    ).order_by(cut.c[table.c.id.name].desc())


def _matching(table: Table, filtered: tuple[str, ...]) -> Select[Any]:
    """The ids of the rows a page is drawn from."""
    return sa_select(table.c.id).where(*_equal(table, filtered))


def _equal(table: Table, filtered: tuple[str, ...]) -> list[ColumnElement[bool]]:
    """Each filtered column equal to its bound parameter."""
    return [table.c[name] == bindparam(_EQUAL + name) for name in filtered]


def json_value(column: Column[Any], dialect: Dialect) -> Convert | None:
    """How a value of this column, as the dialect's driver gives it, becomes what `to_json`
    writes as pydantic writes the column's Python value; None where the driver's value already
    is. Applied to values that are not None."""
    column_type = column.type
    if isinstance(column_type, UTCDateTime):
        return utc_timestamp
    if isinstance(column_type, Uuid):
        return uuid_text
    if isinstance(column_type, Enum) and column_type.enum_class is not None:
        return enum_member(column_type.enum_class)
    if isinstance(column_type, JSON):
        # As SQLAlchemy decides: psycopg decodes JSON itself, so there a document that is a
        # JSON string comes as a `str`, and must not be parsed again.
        return None if dialect.supports_native_json_deserialization else json_document
    if isinstance(column_type, Boolean):
        return bool
    return None


def uuid_text(value: str | uuid.UUID) -> str:
    """A UUID as pydantic writes one: 36 lower-case characters. SQLite and MySQL keep 32 hex
    digits; PostgreSQL's driver gives a `uuid.UUID`."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if len(value) == 32:
        value = value.lower()
        return f"{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}"
    return str(uuid.UUID(value))


def utc_timestamp(value: str | datetime) -> str | datetime:
    """A stored UTC timestamp as pydantic writes an aware UTC datetime: ISO 8601 with a `T`,
    microseconds unless they are 0, and `Z`. SQLite keeps `YYYY-MM-DD HH:MM:SS.ffffff` text,
    which becomes that text directly; anything else becomes an aware datetime, for `to_json`."""
    if isinstance(value, str):
        if len(value) == 26 and value[10] == " " and value[19] == ".":
            if value.endswith(".000000"):
                return value[:10] + "T" + value[11:19] + "Z"
            return value[:10] + "T" + value[11:] + "Z"
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def enum_member(enum_class: type[PyEnum]) -> Convert:
    """SQLAlchemy stores an enum by its member's name; `to_json` writes the member's value."""
    members = {member.name: member for member in enum_class}
    return members.__getitem__


def json_document(value: str | bytes) -> object:
    """A JSON column's text, from a driver that does not decode it (SQLite's, MySQL's)."""
    return from_json(value)
