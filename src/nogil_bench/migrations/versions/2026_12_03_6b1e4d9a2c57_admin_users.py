"""Admin users: operators' routes (dead letters), granted by `nogil-bench users admin`.

Revision ID: 6b1e4d9a2c57
Revises: 3f6d2b8c9e10
Create Date: 2026-12-03 17:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "6b1e4d9a2c57"
down_revision: str | Sequence[str] | None = "3f6d2b8c9e10"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The default fills the rows there are, then goes: new users get theirs from the model.
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("is_admin", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.alter_column("is_admin", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.drop_column("is_admin")
