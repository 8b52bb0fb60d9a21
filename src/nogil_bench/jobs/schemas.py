import uuid
from datetime import datetime
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, computed_field, model_validator

from nogil_bench.core.models import Status
from nogil_bench.runners import runners

MAX_PIPELINE_STEPS = 32
# Seeds are stored in a signed 64-bit integer column.
MAX_SEED = 2**63 - 1
PIPELINE_EXAMPLE = [{"op": "box_blur", "params": {"radius": 2}}, {"op": "sepia"}]


# Request bodies are read strictly: a JSON `true` or `"8"` is not a number, as their schema says.
STRICT = ConfigDict(strict=True)


class StepIn(BaseModel):
    model_config = STRICT

    op: str = Field(description="An operation name from GET /api/v1/ops.", examples=["box_blur"])
    params: dict[str, int | float] = Field(default_factory=dict, examples=[{"radius": 2}])


def runner_field() -> Any:
    return Field(
        default="threads",
        description="The concurrency model that runs the work.",
        json_schema_extra={"enum": list(runners())},
    )


def workers_field() -> Any:
    return Field(default=2, description="Pool size: 1 to the service's max_workers.")


def pipeline_field() -> Any:
    return Field(min_length=1, max_length=MAX_PIPELINE_STEPS, examples=[PIPELINE_EXAMPLE])


class SyntheticSource(BaseModel):
    """A deterministic noise image: the same width, height and seed give the same pixels."""

    model_config = STRICT

    width: int = Field(ge=1, examples=[512])
    height: int = Field(ge=1, examples=[512])
    seed: int = Field(default=0, ge=0, le=MAX_SEED)


class SyntheticSet(SyntheticSource):
    """`count` images; image i uses seed + i."""

    count: int = Field(ge=1, examples=[64])

    @model_validator(mode="after")
    def _every_seed_fits(self) -> Self:
        if self.seed + self.count - 1 > MAX_SEED:
            raise ValueError(
                f"seed + count - 1 must be at most {MAX_SEED} (image i uses seed + i, stored as "
                f"a signed 64-bit integer), got seed {self.seed} and count {self.count}"
            )
        return self


class JobCreate(BaseModel):
    model_config = STRICT

    source: SyntheticSource
    pipeline: list[StepIn] = pipeline_field()
    runner: str = runner_field()
    workers: int = workers_field()


class BatchCreate(BaseModel):
    model_config = STRICT

    source: SyntheticSet
    pipeline: list[StepIn] = pipeline_field()
    runner: str = runner_field()
    workers: int = workers_field()


class JobPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    batch_id: uuid.UUID | None
    status: Status
    error: str | None
    runner: str
    workers: int
    pipeline: list[dict[str, Any]]
    width: int
    height: int
    seed: int | None
    upload_filename: str | None
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    gil_enabled: bool | None
    latency_s: float | None
    cpu_s: float | None
    wall_s: float | None
    setup_s: float | None
    cpu_user_s: float | None
    cpu_system_s: float | None
    peak_rss_bytes: int | None
    output_bytes: int | None
    attempts: int
    worker: str | None = Field(
        description="The process that ran it: a Celery worker's name, or the service's."
    )

    @computed_field  # type: ignore[prop-decorator]
    @property
    def result_url(self) -> str | None:
        return result_url(self.id, self.status)


def result_url(job_id: uuid.UUID | str, status: Status) -> str | None:
    """Where a job's output is downloaded, once it has succeeded."""
    return f"/api/v1/jobs/{job_id}/result" if status is Status.SUCCEEDED else None


class JobsPublic(BaseModel):
    data: list[JobPublic]
    count: int = Field(description="Matching jobs in all pages.")


class Progress(BaseModel):
    done: int = Field(description="Jobs finished: succeeded, failed or cancelled.")
    total: int
    queued: int
    running: int
    succeeded: int
    failed: int
    cancelled: int


class BatchAggregates(BaseModel):
    wall_s: float | None = Field(description="First job started to last finished, with set-up.")
    setup_s: float | None
    throughput_images_per_s: float | None
    latency_p50_s: float | None
    latency_p95_s: float | None
    cpu_user_s: float | None
    cpu_system_s: float | None
    peak_rss_bytes: int | None


class WorkerShare(BaseModel):
    worker: str = Field(description="A Celery worker's name, or the service's.")
    jobs: int = Field(description="Jobs of the batch it ran (their latest run).")
    wall_s: float = Field(description="Its first job's start to its last job's finish.")


class BatchPublic(BaseModel):
    id: uuid.UUID
    status: Status
    error: str | None
    runner: str
    workers: int
    pipeline: list[dict[str, Any]]
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    gil_enabled: bool | None
    progress: Progress
    aggregates: BatchAggregates
    ran_on: list[WorkerShare] = Field(
        description="Which processes ran its jobs, and for how long each (with a broker, "
        "its chunks spread over the workers)."
    )
    job_ids: list[uuid.UUID]


class BatchesPublic(BaseModel):
    data: list[BatchPublic]
    count: int


class ParameterPublic(BaseModel):
    name: str
    type: str
    minimum: float
    maximum: float
    default: float
    description: str


class OperationPublic(BaseModel):
    name: str
    kind: str = Field(description="native: Pillow C code, releases the GIL; pure_python: holds it.")
    releases_gil: bool
    description: str
    parameters: list[ParameterPublic]
