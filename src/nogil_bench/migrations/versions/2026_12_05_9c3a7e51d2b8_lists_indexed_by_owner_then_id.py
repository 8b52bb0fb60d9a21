"""Each user's lists (jobs, batches, benchmarks) indexed by owner, then id: a newest-first page
is read in index order and stops at its end, where the owner's index alone made the database
sort every row the user has for each page. The new index replaces the owner's own, and serves
its foreign key (MySQL's needs one whose first column is the key's).

Revision ID: 9c3a7e51d2b8
Revises: 6b1e4d9a2c57
Create Date: 2026-12-05 03:05:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "9c3a7e51d2b8"
down_revision: str | Sequence[str] | None = "6b1e4d9a2c57"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("job", "batch", "benchmark")


def upgrade() -> None:
    for table in TABLES:
        # The new index first: MySQL keeps the foreign key served throughout.
        op.create_index(f"ix_{table}_owner_id_id", table, ["owner_id", "id"], unique=False)
        op.drop_index(f"ix_{table}_owner_id", table_name=table)


def downgrade() -> None:
    for table in TABLES:
        op.create_index(f"ix_{table}_owner_id", table, ["owner_id"], unique=False)
        op.drop_index(f"ix_{table}_owner_id_id", table_name=table)
