import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from nogil_bench.core.models import Status
from nogil_bench.jobs.schemas import STRICT, StepIn, SyntheticSet, pipeline_field
from nogil_bench.runners import RUNNERS


class BenchmarkCreate(BaseModel):
    model_config = STRICT

    source: SyntheticSet
    pipeline: list[StepIn] = pipeline_field()
    runners: list[str] | None = Field(
        default=None,
        description="Runners to compare (default: all). sequential always runs, as the baseline.",
        examples=[list(RUNNERS)],
    )
    workers: list[int] | None = Field(
        default=None,
        description="Worker counts to try with each parallel runner (default: 1 and the CPUs).",
        examples=[[1, 2]],
    )


class BenchmarkEntry(BaseModel):
    runner: str
    workers: int
    outcome: Literal["succeeded", "failed", "unsupported"]
    error: str | None = None
    setup_s: float | None = Field(default=None, description="Pool start-up, not in wall_s.")
    wall_s: float | None = Field(default=None, description="All images, pool already started.")
    cpu_user_s: float | None = None
    cpu_system_s: float | None = None
    ctx_voluntary: int | None = None
    ctx_involuntary: int | None = None
    peak_rss_bytes: int | None = None
    throughput_images_per_s: float | None = None
    latency_p50_s: float | None = None
    latency_p95_s: float | None = None
    speedup: float | None = Field(default=None, description="sequential's wall_s / wall_s.")
    efficiency: float | None = Field(default=None, description="speedup / workers.")
    karp_flatt: float | None = Field(default=None, description="Serial fraction; None at 1.")
    outputs_match: bool | None = Field(
        default=None, description="Byte-identical to sequential's outputs."
    )


class BenchmarkSpec(BaseModel):
    """What will run, after defaults: stored with the benchmark."""

    count: int
    width: int
    height: int
    seed: int
    pipeline: list[StepIn]
    runners: list[str]
    workers: list[int]


class BenchmarkPublic(BaseModel):
    id: uuid.UUID
    status: Status
    error: str | None
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    gil_enabled: bool | None
    spec: BenchmarkSpec
    results: list[BenchmarkEntry]
    chart_url: str


class BenchmarksPublic(BaseModel):
    data: list[BenchmarkPublic]
    count: int
