"""Benchmark reports as pages: the engine's document, progress while running, share links.

Revision ID: 3f6d2b8c9e10
Revises: a18a866a48a4
Create Date: 2026-12-02 18:20:00.000000
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "3f6d2b8c9e10"
down_revision: str | Sequence[str] | None = "a18a866a48a4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# MySQL and MariaDB types and table options, as in the initial schema (292ea72f0a1e).
MYSQL = ("mysql", "mariadb")
UUID = sa.Uuid().with_variant(sa.Uuid(native_uuid=False), *MYSQL)
DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), *MYSQL)
MYSQL_TABLE = {"engine": "InnoDB", "charset": "utf8mb4", "collate": "utf8mb4_bin"}
TABLE_OPTIONS: dict[str, Any] = {
    f"{dialect}_{name}": value for dialect in MYSQL for name, value in MYSQL_TABLE.items()
}


def upgrade() -> None:
    with op.batch_alter_table("benchmark", schema=None) as batch_op:
        batch_op.add_column(sa.Column("document", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("progress", sa.JSON(), nullable=True))
    op.create_table(
        "benchmark_share",
        sa.Column("id", UUID, nullable=False),
        sa.Column("benchmark_id", UUID, nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", DATETIME, nullable=False),
        sa.ForeignKeyConstraint(["benchmark_id"], ["benchmark.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_sha256"),
        **TABLE_OPTIONS,
    )
    with op.batch_alter_table("benchmark_share", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_benchmark_share_benchmark_id"), ["benchmark_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("benchmark_share", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_benchmark_share_benchmark_id"))
    op.drop_table("benchmark_share")
    with op.batch_alter_table("benchmark", schema=None) as batch_op:
        batch_op.drop_column("progress")
        batch_op.drop_column("document")
