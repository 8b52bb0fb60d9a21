"""64-bit whole numbers on PostgreSQL: seeds, byte counts and context switches become BIGINT.

The same on MySQL and MariaDB, whose INTEGER is 32-bit too. SQLite's INTEGER already holds 64
bits: its tables stay as they are.

Revision ID: 1c8a5266c794
Revises: 292ea72f0a1e
Create Date: 2026-11-23 09:24:02.104832
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "1c8a5266c794"
down_revision: str | Sequence[str] | None = "292ea72f0a1e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RUN_FIGURES = ("ctx_voluntary", "ctx_involuntary", "peak_rss_bytes")
COLUMNS = {"batch": RUN_FIGURES, "job": (*RUN_FIGURES, "seed", "output_bytes")}


def alter(old: sa.types.TypeEngine[int], new: sa.types.TypeEngine[int]) -> None:
    if op.get_context().dialect.name == "sqlite":
        return
    for table, columns in COLUMNS.items():
        for column in columns:
            op.alter_column(table, column, existing_type=old, type_=new, existing_nullable=True)


def upgrade() -> None:
    alter(sa.Integer(), sa.BigInteger())


def downgrade() -> None:
    alter(sa.BigInteger(), sa.Integer())
