import uuid
from typing import Any

from sqlmodel import JSON, Field

from nogil_bench.core.models import QueuedWork


class Benchmark(QueuedWork, table=True):
    owner_id: uuid.UUID = Field(foreign_key="user.id", index=True, ondelete="CASCADE")
    spec: dict[str, Any] = Field(sa_type=JSON, description="The checked request.")
    results: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSON)
    # How the measurement went: comparisons with their verdicts, rounds, why it stopped, steal.
    report: dict[str, Any] | None = Field(default=None, sa_type=JSON)
