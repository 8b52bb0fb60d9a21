"""Initial schema: the tables release 0.1.0 made with `SQLModel.metadata.create_all`, exactly.

A database that release made (its tables, no alembic_version) is stamped at this revision by
`upgrade_database` rather than upgraded through it.

Revision ID: 292ea72f0a1e
Revises:
Create Date: 2026-11-23 09:17:48.313382
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "292ea72f0a1e"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "user",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("hashed_password", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_user_email"), ["email"], unique=True)

    op.create_table(
        "batch",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column(
            "status",
            sa.Enum("QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED", name="status"),
            nullable=False,
        ),
        sa.Column("error", sa.String(), nullable=True),
        sa.Column("queued_at", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("gil_enabled", sa.Boolean(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("boot_id", sa.Uuid(), nullable=True),
        sa.Column("runner", sa.String(), nullable=False),
        sa.Column("workers", sa.Integer(), nullable=False),
        sa.Column("pipeline", sa.JSON(), nullable=False),
        sa.Column("setup_s", sa.Float(), nullable=True),
        sa.Column("wall_s", sa.Float(), nullable=True),
        sa.Column("cpu_user_s", sa.Float(), nullable=True),
        sa.Column("cpu_system_s", sa.Float(), nullable=True),
        sa.Column("ctx_voluntary", sa.Integer(), nullable=True),
        sa.Column("ctx_involuntary", sa.Integer(), nullable=True),
        sa.Column("peak_rss_bytes", sa.Integer(), nullable=True),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["user.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("batch", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_batch_boot_id"), ["boot_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_batch_owner_id"), ["owner_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_batch_status"), ["status"], unique=False)

    op.create_table(
        "benchmark",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column(
            "status",
            sa.Enum("QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED", name="status"),
            nullable=False,
        ),
        sa.Column("error", sa.String(), nullable=True),
        sa.Column("queued_at", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("gil_enabled", sa.Boolean(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("boot_id", sa.Uuid(), nullable=True),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("results", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["user.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("benchmark", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_benchmark_boot_id"), ["boot_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_benchmark_owner_id"), ["owner_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_benchmark_status"), ["status"], unique=False)

    op.create_table(
        "job",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column(
            "status",
            sa.Enum("QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED", name="status"),
            nullable=False,
        ),
        sa.Column("error", sa.String(), nullable=True),
        sa.Column("queued_at", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("gil_enabled", sa.Boolean(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("boot_id", sa.Uuid(), nullable=True),
        sa.Column("runner", sa.String(), nullable=False),
        sa.Column("workers", sa.Integer(), nullable=False),
        sa.Column("pipeline", sa.JSON(), nullable=False),
        sa.Column("setup_s", sa.Float(), nullable=True),
        sa.Column("wall_s", sa.Float(), nullable=True),
        sa.Column("cpu_user_s", sa.Float(), nullable=True),
        sa.Column("cpu_system_s", sa.Float(), nullable=True),
        sa.Column("ctx_voluntary", sa.Integer(), nullable=True),
        sa.Column("ctx_involuntary", sa.Integer(), nullable=True),
        sa.Column("peak_rss_bytes", sa.Integer(), nullable=True),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("batch_id", sa.Uuid(), nullable=True),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=True),
        sa.Column("upload_path", sa.String(), nullable=True),
        sa.Column("upload_filename", sa.String(), nullable=True),
        sa.Column("output_path", sa.String(), nullable=True),
        sa.Column("output_bytes", sa.Integer(), nullable=True),
        sa.Column("latency_s", sa.Float(), nullable=True),
        sa.Column("cpu_s", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["batch_id"], ["batch.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["owner_id"], ["user.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
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
