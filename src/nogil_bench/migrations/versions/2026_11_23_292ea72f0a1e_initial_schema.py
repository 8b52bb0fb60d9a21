"""Initial schema: the tables release 0.1.0 made with `SQLModel.metadata.create_all`, exactly.

A database that release made (its tables, no alembic_version) is stamped at this revision by
`upgrade_database` rather than upgraded through it.

Revision ID: 292ea72f0a1e
Revises:
Create Date: 2026-11-23 09:17:48.313382
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "292ea72f0a1e"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# MySQL and MariaDB (SQLAlchemy's dialects "mysql" and "mariadb"; release 0.1.0 ran on neither)
# need what SQLite and PostgreSQL do without: text of any length is LONGTEXT (VARCHAR needs a
# length there), DATETIME(6) keeps microseconds, DOUBLE is what FLOAT is elsewhere, and tables
# are InnoDB (row locks, SKIP LOCKED) in utf8mb4 with a binary collation, so that text compares
# as on the other stores (case and accents count). Elsewhere: the plain types, no options.
MYSQL = ("mysql", "mariadb")
UUID = sa.Uuid().with_variant(sa.Uuid(native_uuid=False), *MYSQL)
TEXT = sa.String().with_variant(mysql.LONGTEXT(), *MYSQL)
DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), *MYSQL)
FLOAT = sa.Float().with_variant(mysql.DOUBLE(asdecimal=False), *MYSQL)
MYSQL_TABLE = {"engine": "InnoDB", "charset": "utf8mb4", "collate": "utf8mb4_bin"}
TABLE_OPTIONS: dict[str, Any] = {
    f"{dialect}_{name}": value for dialect in MYSQL for name, value in MYSQL_TABLE.items()
}


def upgrade() -> None:
    op.create_table(
        "user",
        sa.Column("id", UUID, nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("hashed_password", TEXT, nullable=False),
        sa.Column("created_at", DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        **TABLE_OPTIONS,
    )
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_user_email"), ["email"], unique=True)

    op.create_table(
        "batch",
        sa.Column("id", UUID, nullable=False),
        sa.Column(
            "status",
            sa.Enum("QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED", name="status"),
            nullable=False,
        ),
        sa.Column("error", TEXT, nullable=True),
        sa.Column("queued_at", DATETIME, nullable=False),
        sa.Column("started_at", DATETIME, nullable=True),
        sa.Column("finished_at", DATETIME, nullable=True),
        sa.Column("gil_enabled", sa.Boolean(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("boot_id", UUID, nullable=True),
        sa.Column("runner", TEXT, nullable=False),
        sa.Column("workers", sa.Integer(), nullable=False),
        sa.Column("pipeline", sa.JSON(), nullable=False),
        sa.Column("setup_s", FLOAT, nullable=True),
        sa.Column("wall_s", FLOAT, nullable=True),
        sa.Column("cpu_user_s", FLOAT, nullable=True),
        sa.Column("cpu_system_s", FLOAT, nullable=True),
        sa.Column("ctx_voluntary", sa.Integer(), nullable=True),
        sa.Column("ctx_involuntary", sa.Integer(), nullable=True),
        sa.Column("peak_rss_bytes", sa.Integer(), nullable=True),
        sa.Column("owner_id", UUID, nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["user.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        **TABLE_OPTIONS,
    )
    with op.batch_alter_table("batch", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_batch_boot_id"), ["boot_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_batch_owner_id"), ["owner_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_batch_status"), ["status"], unique=False)

    op.create_table(
        "benchmark",
        sa.Column("id", UUID, nullable=False),
        sa.Column(
            "status",
            sa.Enum("QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED", name="status"),
            nullable=False,
        ),
        sa.Column("error", TEXT, nullable=True),
        sa.Column("queued_at", DATETIME, nullable=False),
        sa.Column("started_at", DATETIME, nullable=True),
        sa.Column("finished_at", DATETIME, nullable=True),
        sa.Column("gil_enabled", sa.Boolean(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("boot_id", UUID, nullable=True),
        sa.Column("owner_id", UUID, nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("results", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["user.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        **TABLE_OPTIONS,
    )
    with op.batch_alter_table("benchmark", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_benchmark_boot_id"), ["boot_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_benchmark_owner_id"), ["owner_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_benchmark_status"), ["status"], unique=False)

    op.create_table(
        "job",
        sa.Column("id", UUID, nullable=False),
        sa.Column(
            "status",
            sa.Enum("QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED", name="status"),
            nullable=False,
        ),
        sa.Column("error", TEXT, nullable=True),
        sa.Column("queued_at", DATETIME, nullable=False),
        sa.Column("started_at", DATETIME, nullable=True),
        sa.Column("finished_at", DATETIME, nullable=True),
        sa.Column("gil_enabled", sa.Boolean(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("boot_id", UUID, nullable=True),
        sa.Column("runner", TEXT, nullable=False),
        sa.Column("workers", sa.Integer(), nullable=False),
        sa.Column("pipeline", sa.JSON(), nullable=False),
        sa.Column("setup_s", FLOAT, nullable=True),
        sa.Column("wall_s", FLOAT, nullable=True),
        sa.Column("cpu_user_s", FLOAT, nullable=True),
        sa.Column("cpu_system_s", FLOAT, nullable=True),
        sa.Column("ctx_voluntary", sa.Integer(), nullable=True),
        sa.Column("ctx_involuntary", sa.Integer(), nullable=True),
        sa.Column("peak_rss_bytes", sa.Integer(), nullable=True),
        sa.Column("owner_id", UUID, nullable=False),
        sa.Column("batch_id", UUID, nullable=True),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=True),
        sa.Column("upload_path", TEXT, nullable=True),
        sa.Column("upload_filename", TEXT, nullable=True),
        sa.Column("output_path", TEXT, nullable=True),
        sa.Column("output_bytes", sa.Integer(), nullable=True),
        sa.Column("latency_s", FLOAT, nullable=True),
        sa.Column("cpu_s", FLOAT, nullable=True),
        sa.ForeignKeyConstraint(["batch_id"], ["batch.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["owner_id"], ["user.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        **TABLE_OPTIONS,
    )
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_job_batch_id"), ["batch_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_job_boot_id"), ["boot_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_job_owner_id"), ["owner_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_job_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_job_status"))
        batch_op.drop_index(batch_op.f("ix_job_owner_id"))
        batch_op.drop_index(batch_op.f("ix_job_boot_id"))
        batch_op.drop_index(batch_op.f("ix_job_batch_id"))

    op.drop_table("job")
    with op.batch_alter_table("benchmark", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_benchmark_status"))
        batch_op.drop_index(batch_op.f("ix_benchmark_owner_id"))
        batch_op.drop_index(batch_op.f("ix_benchmark_boot_id"))

    op.drop_table("benchmark")
    with op.batch_alter_table("batch", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_batch_status"))
        batch_op.drop_index(batch_op.f("ix_batch_owner_id"))
        batch_op.drop_index(batch_op.f("ix_batch_boot_id"))

    op.drop_table("batch")
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_user_email"))

    op.drop_table("user")
    sa.Enum(name="status").drop(op.get_bind(), checkfirst=True)  # PostgreSQL's type
