"""nogil-bench's own workloads, registered as entry points like any other package's
(pyproject.toml, `nogil_bench.workloads`): fib, and synthetic images through a pipeline."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

from annotated_types import Ge, Le

from nogil_bench.runners.base import BaseRunner, UnsupportedWorkError
from nogil_bench.workloads.fib import fib
from nogil_bench.workloads.images import (
    ImageJob,
    SyntheticSource,
    check_runner_can_run,
    output_digests,
    validate_steps,
)
from nogil_bench.workloads.model import Step
from nogil_bench.workloads.plugin import FunctionWorkload, Work


@dataclass(frozen=True, slots=True)
class FibParams:
    n: Annotated[int, Ge(1), Le(40)] = 32
    tasks: Annotated[int, Ge(1), Le(1024)] = 4


def fib_tasks(params: FibParams) -> list[int]:
    return [params.n] * params.tasks


FIB = FunctionWorkload(
    function=fib,
    tasks=fib_tasks,
    params=FibParams,
    description="fib(n) by naive recursion, once per task: pure interpreter work",
    quick={"n": 30},
)


PURE_STEPS = (Step("box_blur", {"radius": 2}), Step("sepia"))
NATIVE_STEPS = (
    Step("gaussian_blur", {"radius": 3}),
    Step("sharpen"),
    Step("edge_detect"),
    Step("rotate", {"degrees": 15}),
    Step("resize", {"width": 256, "height": 256}),
)


@dataclass(frozen=True, slots=True)
class ImageParams:
    """`count` noise images of width x height, seeded seed, seed + 1, ..., each through the
    pipeline (a list of {"op", "params"}; GET /api/v1/operations lists the operations)."""

    count: Annotated[int, Ge(1), Le(10_000)] = 8
    width: Annotated[int, Ge(1), Le(8192)] = 160
    height: Annotated[int, Ge(1), Le(8192)] = 160
    seed: Annotated[int, Ge(0)] = 0
    pipeline: tuple[Step, ...] = PURE_STEPS

    def __post_init__(self) -> None:
        if not self.pipeline:
            raise ValueError("the pipeline needs at least one step")
        validate_steps(self.pipeline)  # InvalidStepError names the operation or parameter


@dataclass(frozen=True, slots=True)
class NativeParams(ImageParams):
    width: Annotated[int, Ge(1), Le(8192)] = 768
    height: Annotated[int, Ge(1), Le(8192)] = 768
    pipeline: tuple[Step, ...] = NATIVE_STEPS


@dataclass(frozen=True, slots=True)
class SmallBatchParams(ImageParams):
    count: Annotated[int, Ge(1), Le(10_000)] = 256
    width: Annotated[int, Ge(1), Le(8192)] = 24
    height: Annotated[int, Ge(1), Le(8192)] = 24


@dataclass(frozen=True, slots=True)
class ImageWorkload:
    """Synthetic images through a pipeline: on subinterpreters the pure-Python steps only."""

    params: type[ImageParams]
    description: str
    quick: Mapping[str, Any] = field(default_factory=dict)

    def build(self, params: ImageParams) -> Work:
        steps = validate_steps(params.pipeline)
        jobs = [
            ImageJob(SyntheticSource(params.width, params.height, params.seed + index), steps)
            for index in range(params.count)
        ]

        def run(
            runner: BaseRunner, chosen: Sequence[Any], task_seconds: list[float]
        ) -> list[bytes]:
            return output_digests(runner, chosen, task_seconds)

        def unsupported_reason(runner: type[BaseRunner]) -> str | None:
            try:
                check_runner_can_run(runner, steps)
            except UnsupportedWorkError as error:
                return str(error)
            return None

        ops = " -> ".join(step.op for step in steps)
        description = f"{params.count} images {params.width}x{params.height}: {ops}"
        return Work(description, jobs, run, unsupported_reason)


IMAGES = ImageWorkload(ImageParams, "synthetic noise images through a pipeline of operations")
PURE_PYTHON = ImageWorkload(
    ImageParams,
    "small images through pure-Python operations: parallel only with the GIL off",
    quick={"width": 96, "height": 96},
)
NATIVE = ImageWorkload(
    NativeParams,
    "large images through Pillow's C operations, which release the GIL",
    quick={"width": 384, "height": 384},
)
SMALL_BATCH = ImageWorkload(
    SmallBatchParams,
    "many tiny images: per-task overhead dominates",
    quick={"count": 96},
)
