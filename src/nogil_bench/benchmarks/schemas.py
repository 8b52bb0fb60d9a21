import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, Strict, ValidationError

from nogil_bench.bench.results import Design
from nogil_bench.core.models import Status
from nogil_bench.jobs.schemas import (
    MAX_PIPELINE_STEPS,
    PIPELINE_EXAMPLE,
    STRICT,
    StepIn,
    SyntheticSet,
)
from nogil_bench.runners import local_runners

# 0 or 1; strict, so that JSON's false and true are not taken for them.
type GilMode = Annotated[int, Strict(), Field(ge=0, le=1)]
MIN_REPEATS = 4  # two blocks of two rounds: the fewest with an interval
DEFAULT_REPEATS = 6
DEFAULT_BLOCK_ROUNDS = 3
MAX_REPEATS = 50
MAX_WARMUPS = 5
MAX_WORKLOAD_NAME_LENGTH = 100


class WorkloadIn(BaseModel):
    """An installed workload, by its registered name only: the service imports no module that a
    request names."""

    model_config = STRICT

    name: str = Field(
        min_length=1,
        max_length=MAX_WORKLOAD_NAME_LENGTH,
        description="An installed workload's name, from GET /api/v1/workloads.",
        examples=["fib"],
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="Parameters over the workload's defaults; GET /api/v1/workloads gives their "
        "JSON schema.",
        examples=[{"n": 25, "tasks": 8}],
    )


class BenchmarkCreate(BaseModel):
    """What to measure: synthetic images through a pipeline (`source` and `pipeline`), or an
    installed workload (`workload`), never both; then how."""

    model_config = STRICT

    source: SyntheticSet | None = Field(
        default=None, description="Synthetic images to measure, with `pipeline`."
    )
    pipeline: Annotated[list[StepIn], Field(min_length=1, max_length=MAX_PIPELINE_STEPS)] | None = (
        Field(
            default=None,
            description="The steps each image goes through, with `source`.",
            examples=[PIPELINE_EXAMPLE],
        )
    )
    workload: WorkloadIn | None = Field(
        default=None,
        description="An installed workload to measure instead of `source` and `pipeline`.",
    )
    runners: list[str] | None = Field(
        default=None,
        description="Runners to compare (default: every local one; the celery runners need a "
        "broker and one GIL mode). sequential always runs, as the baseline.",
        examples=[list(local_runners())],
    )
    workers: list[int] | None = Field(
        default=None,
        description="Worker counts to try with each parallel runner (default: 1 and the CPUs).",
        examples=[[1, 2]],
    )
    gil: list[GilMode] | None = Field(
        default=None,
        description="GIL modes to measure each configuration in, each in fresh worker processes "
        "started with the GIL off (the build's default) or -X gil=1 (default: both on a "
        "free-threaded build; 1 on a default build).",
        examples=[[0, 1]],
    )
    repeats: int = Field(
        default=DEFAULT_REPEATS,
        ge=MIN_REPEATS,
        le=MAX_REPEATS,
        description="Rounds measured at least, in whole blocks of `block_rounds`; every "
        "configuration runs once per round. An interval needs two blocks.",
    )
    max_repeats: int | None = Field(
        default=None,
        ge=MIN_REPEATS,
        le=MAX_REPEATS,
        description="Rounds at most, in whole blocks: measuring goes on past `repeats` until "
        "every interval is within `target_ci`, or this bound (default: `repeats`).",
    )
    block_rounds: int = Field(
        default=DEFAULT_BLOCK_ROUNDS,
        ge=1,
        le=MAX_REPEATS,
        description="Rounds in each block: a block starts a fresh worker process for every "
        "configuration, so intervals hold what changes between processes, not only between "
        "rounds. `repeats` must hold at least two blocks.",
    )
    warmups: int = Field(
        default=1,
        ge=0,
        le=MAX_WARMUPS,
        description="Discarded runs per configuration, in each block's fresh processes.",
    )
    target_ci: float = Field(
        default=0.05,
        ge=0.005,
        le=0.5,
        description="Stop once every 95% CI's half-width is within this share of its ratio.",
    )


class BenchmarkEntry(BaseModel):
    runner: str = Field(
        description="A runner, or 'ceiling': the host's own parallel limit, as K independent "
        "sequential processes started together, each with a K-th of the tasks."
    )
    workers: int
    gil: int | None = Field(
        default=None,
        description="The GIL mode it ran in (None: measured before GIL modes).",
    )
    outcome: Literal["succeeded", "failed", "unsupported"]
    error: str | None = None
    setup_s: float | None = Field(default=None, description="Pool start-up, not in wall_s.")
    wall_s: float | None = Field(
        default=None, description="All tasks, pool already started: the median of the runs."
    )
    wall_s_stdev: float | None = None
    noisy: bool | None = Field(
        default=None, description="The runs' standard deviation passed 10% of their median."
    )
    runs_wall_s: list[float] = Field(
        default_factory=list, description="Every measured run; the i-th ran in round i."
    )
    runs_block: list[int] = Field(
        default_factory=list,
        description="The block (fresh worker processes) each run ran in: 0, 1, ... (empty for "
        "benchmarks measured before blocks).",
    )
    warmups_s: list[float] = Field(default_factory=list, description="The discarded runs.")
    steal_share: float | None = Field(
        default=None, description="Median share of the host's CPU time stolen during a run."
    )
    cpu_user_s: float | None = None
    cpu_system_s: float | None = None
    ctx_voluntary: int | None = None
    ctx_involuntary: int | None = None
    peak_rss_bytes: int | None = None
    throughput_images_per_s: float | None = Field(
        default=None,
        description="Images per second at the median wall time, for a benchmark of `source` "
        "and `pipeline`; None for an installed workload, whose tasks need not be images.",
    )
    latency_p50_s: float | None = None
    latency_p95_s: float | None = None
    speedup: float | None = Field(
        default=None,
        description="Median over rounds of sequential's wall / this wall (same GIL mode).",
    )
    speedup_ci: tuple[float, float] | None = Field(
        default=None, description="Where a rerun's speedup lands 95% of the time."
    )
    speedup_verdict: str | None = Field(
        default=None,
        description="Against sequential: 'faster by X% [CI]', 'slower by X% [CI]' or "
        "'no significant difference'.",
    )
    efficiency: float | None = Field(default=None, description="speedup / workers.")
    karp_flatt: float | None = Field(default=None, description="Serial fraction; None at 1.")
    ceiling_share: float | None = Field(
        default=None,
        description="Speedup as a share of the host's ceiling at the same workers, per round.",
    )
    ceiling_share_ci: tuple[float, float] | None = None
    outputs_match: bool | None = Field(
        default=None, description="Byte-identical to sequential's outputs."
    )


class BenchmarkComparison(BaseModel):
    kind: str = Field(
        description="'vs sequential', 'share of ceiling', 'GIL=0 vs GIL=1' or 'vs threads'."
    )
    baseline: str
    candidate: str
    pairs: int = Field(description="Rounds paired: both sides measured in the same round.")
    blocks: int | None = Field(
        default=None, description="Blocks of fresh worker processes the rounds ran in."
    )
    ratio: float = Field(
        description="Geometric mean of baseline time / candidate time per round: > 1 is faster."
    )
    ci: tuple[float, float] | None = Field(
        description="Where a rerun's ratio lands 95% of the time, from the variance within "
        "and between blocks; None below two blocks."
    )
    verdict: Literal["faster", "slower", "no significant difference", "unknown"]
    text: str = Field(examples=["faster by 62% [55%, 70%]"])


class BenchmarkReport(BaseModel):
    """How a measurement went, beside its entries."""

    results: list[BenchmarkEntry]
    comparisons: list[BenchmarkComparison]
    rounds: int
    blocks: int | None = Field(
        default=None, description="Blocks of fresh worker processes (None: before blocks)."
    )
    stop: Literal["converged", "bound", "deadline", "budget"]
    stop_text: str
    steal_share: float | None = Field(
        description="Share of the host's CPU time stolen over the whole measurement."
    )
    duration_s: float


class BenchmarkSpec(BaseModel):
    """What will run, after defaults: stored with the benchmark. Synthetic images (count, width,
    height, seed, pipeline), or an installed workload (workload, params), the other side None."""

    count: int | None = None
    width: int | None = None
    height: int | None = None
    seed: int | None = None
    pipeline: list[StepIn] | None = None
    # Benchmarks stored before installed workloads could be measured are all images.
    workload: str | None = Field(
        default=None, description="The installed workload's name; None for images."
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="The workload's parameters, defaults filled in; empty for images.",
    )
    runners: list[str]
    workers: list[int]
    # Benchmarks stored before GIL modes and rounds were measured read with these defaults.
    gil: list[int] = Field(default_factory=lambda: [0, 1])
    repeats: int = DEFAULT_REPEATS
    max_repeats: int = 2 * DEFAULT_REPEATS  # the default before blocks
    block_rounds: int = DEFAULT_BLOCK_ROUNDS
    warmups: int = 1
    target_ci: float = 0.05

    def design(self) -> Design:
        """The rounds as blocks; ValueError when they make none."""
        return Design.of_rounds(self.repeats, self.max_repeats, self.block_rounds, self.target_ci)


class BenchmarkProgress(BaseModel):
    """How far a running benchmark is (bench.progress.Progress, as its row stores it)."""

    phase: Literal["setup", "rounds"] = Field(
        description="'setup': the first block's worker processes are set up, one at a time; "
        "'rounds': rounds are measured."
    )
    rounds_done: int = Field(description="Rounds finished so far, over every block.")
    rounds_bound: int = Field(description="Rounds at most (`max_repeats`, in whole blocks).")
    rounds_expected: int = Field(
        description="Rounds the adaptive stop is now expected to need: `repeats` until "
        "intervals exist, then as many as the widest interval needs to narrow to `target_ci` "
        "(a half-width shrinks about as 1/sqrt(blocks)), within the bound."
    )
    elapsed_s: float = Field(description="Seconds since measuring began.")
    left_s: float | None = Field(
        description="Estimated seconds left, for `rounds_expected`; None before a round is timed."
    )
    widest_ci: float | None = Field(
        description="The widest interval's half-width as a share of its ratio, against "
        "`target_ci`; None before two blocks."
    )

    @classmethod
    def while_running(
        cls, status: Status, stored: dict[str, Any] | None
    ) -> BenchmarkProgress | None:
        """The stored progress, shown only while the benchmark runs: a row failed or put back
        by another path (a lost lease, a shutdown's deadline) may still hold its last one."""
        if status != Status.RUNNING or stored is None:
            return None
        try:
            return cls.model_validate(stored)
        except ValidationError:
            return None  # written by another version of the engine: no progress to show


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
    comparisons: list[BenchmarkComparison] = Field(
        description="Every comparison made, each with its 95% rerun interval and verdict."
    )
    rounds: int | None = None
    blocks: int | None = Field(
        default=None, description="Blocks of fresh worker processes the rounds ran in."
    )
    stop: str | None = Field(default=None, description="Why measuring stopped, in words.")
    steal_share: float | None = None
    worker: str | None = Field(
        default=None, description="The process that ran it: a Celery worker's, or the service's."
    )
    attempts: int = Field(
        default=0, description="Runs started, less those the service cut short at shutdown."
    )
    progress: BenchmarkProgress | None = Field(
        default=None, description="While it runs: how far it is, and an estimate of the rest."
    )
    chart_url: str


class BenchmarksPublic(BaseModel):
    data: list[BenchmarkPublic]
    count: int


class WorkloadPublic(BaseModel):
    """An installed workload: what `workload` in POST /api/v1/benchmarks may name."""

    name: str = Field(examples=["fib"])
    description: str
    params_schema: dict[str, Any] = Field(
        description="The JSON schema of its parameters (`workload.params`).",
        examples=[
            {
                "type": "object",
                "properties": {"n": {"type": "integer", "default": 32, "maximum": 40}},
            }
        ],
    )
    defaults: dict[str, Any] = Field(
        description="Its parameters when a benchmark sets none.", examples=[{"n": 32, "tasks": 4}]
    )
