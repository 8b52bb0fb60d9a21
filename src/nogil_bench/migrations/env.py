"""Alembic's environment for nogil-bench: the database URL comes from the same Settings as the
service's, and the target is every table model.

`nogil_bench.core.migrations.upgrade_database` (the service at start, `nogil-bench db upgrade`)
hands its own connection in through `config.attributes["connection"]`; the `alembic` command
(for `alembic revision --autogenerate`, with the top-level alembic.ini) connects from the
settings.
"""

from logging.config import fileConfig
from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from alembic.autogenerate.render import _repr_type
from sqlalchemy import Connection
from sqlalchemy.types import TypeDecorator

from nogil_bench.core.config import get_settings
from nogil_bench.core.db import make_engine
from nogil_bench.tables import METADATA

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name)

target_metadata = METADATA


def render_item(kind: str, item: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Our column types (UTCDateTime) go into migrations as the SQLAlchemy type they store as,
    its per-dialect variants included (MySQL's DATETIME(6)), so a migration never imports the
    code it may outlive."""
    if kind == "type" and isinstance(item, TypeDecorator):
        return _repr_type(item.impl_instance, autogen_context)  # Alembic's own rendering of it
    return False  # Alembic's own rendering


def run_migrations_offline() -> None:
    """`alembic upgrade --sql`: the SQL is printed, not run."""
    url = get_settings().database_url
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=url.startswith("sqlite"),
        render_item=render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite alters a table by copying it: batch mode writes migrations that way.
        render_as_batch=connection.dialect.name == "sqlite",
        render_item=render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection: Connection | None = config.attributes.get("connection")
    if connection is not None:
        run_migrations(connection)
        return
    engine = make_engine(get_settings())
    try:
        with engine.connect() as own_connection:
            run_migrations(own_connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
