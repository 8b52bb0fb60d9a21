import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Index
from sqlmodel import JSON, Field, SQLModel

from nogil_bench.core.models import OWNER_THEN_ID, HexUuid, QueuedWork, UTCDateTime, utc_now


class Benchmark(QueuedWork, table=True):
    __table_args__ = (Index("ix_benchmark_owner_id_id", *OWNER_THEN_ID),)

    owner_id: uuid.UUID = Field(foreign_key="user.id", ondelete="CASCADE", sa_type=HexUuid)
    spec: dict[str, Any] = Field(sa_type=JSON, description="The checked request.")
    results: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSON)
    # How the measurement went: comparisons with their verdicts, rounds, why it stopped, steal.
    report: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    # The engine's own document of the measurement (bench.document, format 3): what the HTML
    # report is drawn from, the same page `nogil-bench measure --html` writes.
    document: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    # While it runs: how far the measurement is (bench.progress.Progress, as JSON).
    progress: dict[str, Any] | None = Field(default=None, sa_type=JSON)


class BenchmarkShare(SQLModel, table=True):
    """A link that reads one benchmark's report without logging in. Only the SHA-256 of its
    token is stored: the token itself is shown once, when the link is made. Revoking a link
    deletes its row, so a revoked token and one never made are looked up alike."""

    __tablename__ = "benchmark_share"

    id: uuid.UUID = Field(default_factory=uuid.uuid7, primary_key=True, sa_type=HexUuid)
    benchmark_id: uuid.UUID = Field(
        foreign_key="benchmark.id", index=True, ondelete="CASCADE", sa_type=HexUuid
    )
    token_sha256: str = Field(unique=True, max_length=64)
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
