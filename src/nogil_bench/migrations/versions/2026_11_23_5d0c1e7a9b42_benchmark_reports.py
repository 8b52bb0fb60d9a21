"""Benchmark reports: every comparison with its CI and verdict, the rounds, why measuring stopped.

Revision ID: 5d0c1e7a9b42
Revises: a8201c8dd4b5
Create Date: 2026-11-23 13:05:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5d0c1e7a9b42"
down_revision: str | Sequence[str] | None = "a8201c8dd4b5"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("benchmark", schema=None) as batch_op:
        batch_op.add_column(sa.Column("report", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("benchmark", schema=None) as batch_op:
        batch_op.drop_column("report")
