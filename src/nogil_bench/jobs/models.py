import uuid
from typing import Any

from sqlalchemy import Index
from sqlmodel import JSON, Field

from nogil_bench.core.models import OWNER_THEN_ID, BigInt, Float64, HexUuid, LongText, QueuedWork


class RunFigures(QueuedWork):
    """What one run of the runner measured (psutil, the whole process tree)."""

    runner: str = Field(sa_type=LongText)
    workers: int
    pipeline: list[dict[str, Any]] = Field(sa_type=JSON)
    setup_s: float | None = Field(
        default=None, sa_type=Float64, description="Pool start-up, timed apart."
    )
    wall_s: float | None = Field(
        default=None, sa_type=Float64, description="The run, pool start-up included."
    )
    cpu_user_s: float | None = Field(default=None, sa_type=Float64)
    cpu_system_s: float | None = Field(default=None, sa_type=Float64)
    ctx_voluntary: int | None = Field(default=None, sa_type=BigInt)
    ctx_involuntary: int | None = Field(default=None, sa_type=BigInt)
    peak_rss_bytes: int | None = Field(default=None, sa_type=BigInt)


class Batch(RunFigures, table=True):
    __table_args__ = (Index("ix_batch_owner_id_id", *OWNER_THEN_ID),)

    owner_id: uuid.UUID = Field(foreign_key="user.id", ondelete="CASCADE", sa_type=HexUuid)


class Job(RunFigures, table=True):
    """One image through one pipeline. In a batch, the run figures are the batch's."""

    __table_args__ = (
        Index("ix_job_owner_id_id", *OWNER_THEN_ID),
        # A user's queued jobs are counted at every submission (the queue limit).
        Index("ix_job_owner_id_status", "owner_id", "status"),
    )

    owner_id: uuid.UUID = Field(foreign_key="user.id", ondelete="CASCADE", sa_type=HexUuid)
    batch_id: uuid.UUID | None = Field(
        default=None, foreign_key="batch.id", index=True, ondelete="CASCADE", sa_type=HexUuid
    )
    width: int
    height: int
    seed: int | None = Field(
        default=None, sa_type=BigInt, description="Synthetic source: its seed (up to 2**63 - 1)."
    )
    upload_path: str | None = Field(
        default=None,
        sa_type=LongText,
        description="Uploaded source: its key in the file store (core/storage.py).",
    )
    upload_filename: str | None = Field(default=None, sa_type=LongText)
    output_path: str | None = Field(
        default=None, sa_type=LongText, description="The PNG result: its key in the file store."
    )
    output_bytes: int | None = Field(default=None, sa_type=BigInt)
    latency_s: float | None = Field(
        default=None, sa_type=Float64, description="Wall time on its worker."
    )
    cpu_s: float | None = Field(
        default=None, sa_type=Float64, description="CPU time of its worker thread."
    )

    def requeue(self) -> None:
        super().requeue()
        self.started_at = None  # it starts again
