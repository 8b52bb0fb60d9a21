"""Schema migrations with Alembic (the revisions are in `nogil_bench/migrations/versions/`).

`upgrade_database` brings a database to the newest revision: the service calls it at start,
`nogil-bench db upgrade` from the shell. One upgrader runs at a time, and a database made by
release 0.1.0 (its tables, no revision recorded) is taken to be at the initial revision.
"""

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from loguru import logger
from sqlalchemy import Connection, Engine, create_engine, inspect, text

from nogil_bench.core.db import MYSQL_DIALECTS

MIGRATIONS_DIR = Path(__file__).parent.parent / "migrations"
# The tables release 0.1.0 made with `SQLModel.metadata.create_all`, exactly.
INITIAL_REVISION = "292ea72f0a1e"
RELEASE_0_1_TABLES = frozenset({"user", "batch", "job", "benchmark"})
# pg_advisory_lock's key for "the schema is being upgraded": any constant every upgrader shares.
UPGRADE_LOCK_KEY = 0x6E6F67696C  # "nogil"


class MigrationError(RuntimeError):
    """The database cannot be upgraded as it is."""


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration for the package's migrations; commands given a `connection`
    run on it (and inside its transaction, if one is open)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, f"no revisions in {MIGRATIONS_DIR}"
    return head


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at; None for a database no migration has touched."""
    return MigrationContext.configure(connection).get_current_revision()


def upgrade_database(target: Engine | str) -> str:
    """Upgrades the database (an engine, or a URL) to the newest revision; returns it."""
    engine = target if isinstance(target, Engine) else create_engine(target)
    try:
        with (
            engine.connect() as connection,
            one_upgrader(connection),
            sqlite_foreign_keys_off(connection),
            connection.begin(),
        ):
            before = current_revision(connection)
            if before is None and made_by_release_0_1(connection):
                # Release 0.1.0 made its tables without Alembic: they are the initial
                # revision's, so that is where this database is.
                command.stamp(alembic_config(connection), INITIAL_REVISION)
                logger.info(
                    "database made by release 0.1.0 (no revision recorded): stamped at the "
                    "initial revision {}",
                    INITIAL_REVISION,
                )
                before = INITIAL_REVISION
            command.upgrade(alembic_config(connection), "head")
            check_foreign_keys(connection)
            after = current_revision(connection)
    finally:
        if not isinstance(target, Engine):
            engine.dispose()
    assert after is not None
    if before == after:
        logger.info("database schema at revision {}: up to date", after)
    else:
        logger.info(
            "database schema upgraded from {} to revision {}",
            f"revision {before}" if before else "an empty database",
            after,
        )
    return after


def made_by_release_0_1(connection: Connection) -> bool:
    """True when the database holds the tables release 0.1.0 made (and no revision)."""
    present = RELEASE_0_1_TABLES & set(inspect(connection).get_table_names())
    if present and present != RELEASE_0_1_TABLES:
        raise MigrationError(
            f"the database has some of nogil-bench's tables ({', '.join(sorted(present))}) but "
            f"not all, and no Alembic revision: it was not made by nogil-bench; not upgrading it"
        )
    return bool(present)


@contextmanager
def one_upgrader(connection: Connection) -> Iterator[None]:
    """Holds the database's upgrade lock: PostgreSQL's advisory lock, MySQL's GET_LOCK, or for
    SQLite an fcntl lock on a file beside the database file. Other upgraders wait, then find it
    up to date."""
    if connection.dialect.name in MYSQL_DIALECTS:
        with mysql_upgrade_lock(connection):
            yield
        return
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": UPGRADE_LOCK_KEY})
        connection.commit()  # the lock belongs to the session and outlives the transaction
        try:
            yield
        finally:
            if connection.in_transaction():
                connection.rollback()
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": UPGRADE_LOCK_KEY})
            connection.commit()
        return
    database = connection.engine.url.database
    if connection.dialect.name != "sqlite" or database in {None, "", ":memory:"}:
        yield  # no file to lock, and no other process sees this database
        return
    assert database is not None
    lock_path = Path(f"{database}.upgrade-lock")
    with lock_path.open("a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        yield  # closing the file releases the lock


@contextmanager
def mysql_upgrade_lock(connection: Connection) -> Iterator[None]:
    """MySQL's and MariaDB's upgrade lock: GET_LOCK's locks belong to the session, like
    pg_advisory_lock's, but are server-wide, so the name says which database. A waiter gives up
    after the server's lock_wait_timeout (a day by default), as DDL waiting for a table would."""
    name = f"{connection.engine.url.database}/nogil_bench/upgrade"
    taken = connection.execute(
        text("SELECT GET_LOCK(:name, @@lock_wait_timeout)"), {"name": name}
    ).scalar_one()
    connection.commit()
    if taken != 1:
        raise MigrationError(f"another upgrader held the lock {name} past lock_wait_timeout")
    try:
        yield
    finally:
        if connection.in_transaction():
            connection.rollback()
        connection.execute(text("DO RELEASE_LOCK(:name)"), {"name": name})
        connection.commit()


@contextmanager
def sqlite_foreign_keys_off(connection: Connection) -> Iterator[None]:
    """SQLite: foreign keys off while the schema changes (`check_foreign_keys` checks them
    before the commit). Alembic's batch mode rebuilds a table by copying it, dropping the old
    one and renaming: with foreign keys on, dropping a table that rows refer to would delete
    those rows (ON DELETE CASCADE)."""
    if connection.dialect.name != "sqlite":
        yield
        return
    # On the DB-API connection, outside any transaction: inside one the pragma does nothing.
    sqlite = connection.connection.driver_connection
    assert sqlite is not None
    enforced = sqlite.execute("PRAGMA foreign_keys").fetchone()[0]
    sqlite.execute("PRAGMA foreign_keys=OFF")
    try:
        yield
    finally:
        sqlite.execute(f"PRAGMA foreign_keys={'ON' if enforced else 'OFF'}")


def check_foreign_keys(connection: Connection) -> None:
    if connection.dialect.name != "sqlite":
        return  # PostgreSQL and MySQL check them as the schema changes
    if broken := connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall():
        raise MigrationError(f"the upgrade would leave rows with broken foreign keys: {broken}")
