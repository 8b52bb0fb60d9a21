"""Distributed execution: which worker ran each row, and when it was handed to the broker.

Revision ID: 7e4b9c2d1f30
Revises: 5d0c1e7a9b42
Create Date: 2026-11-23 15:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "7e4b9c2d1f30"
down_revision: str | Sequence[str] | None = "5d0c1e7a9b42"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# MySQL and MariaDB column types, as in the initial schema (292ea72f0a1e).
MYSQL = ("mysql", "mariadb")
TEXT = sa.String().with_variant(mysql.LONGTEXT(), *MYSQL)
DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), *MYSQL)

TABLES = ("job", "batch", "benchmark")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("worker", TEXT, nullable=True))
            batch_op.add_column(sa.Column("dispatched_at", DATETIME, nullable=True))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("dispatched_at")
            batch_op.drop_column("worker")
