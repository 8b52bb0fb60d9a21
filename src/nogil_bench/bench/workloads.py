"""The named benchmark workloads: what one measured run does, at a full or a quick scale."""

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from nogil_bench.runners import BaseRunner
from nogil_bench.runners.timing import TimedCall
from nogil_bench.workloads.fib import fib
from nogil_bench.workloads.images import ImageJob, SyntheticSource, digest, run_jobs, validate_steps
from nogil_bench.workloads.model import Step


@dataclass(frozen=True, slots=True)
class Workload:
    name: str
    description: str
    # Runs the work once on the runner, appends per-task seconds, returns a digest of the output.
    run: Callable[[BaseRunner, list[float]], str]


def fib_workload(n: int, tasks: int) -> Workload:
    def run(runner: BaseRunner, task_seconds: list[float]) -> str:
        results = runner.map(TimedCall(fib), [n] * tasks)
        task_seconds.extend(result.seconds for result in results)
        return hashlib.sha256(repr([result.value for result in results]).encode()).hexdigest()

    return Workload("fib", f"fib({n}) x {tasks} tasks", run)


def image_workload(name: str, count: int, size_px: int, steps: list[Step]) -> Workload:
    resolved = validate_steps(steps)
    jobs = [ImageJob(SyntheticSource(size_px, size_px, seed), resolved) for seed in range(count)]
    ops = " -> ".join(step.op for step in resolved)

    def run(runner: BaseRunner, task_seconds: list[float]) -> str:
        return digest(run_jobs(runner, jobs, task_seconds))

    return Workload(name, f"{count} images {size_px}x{size_px}: {ops}", run)


PURE_STEPS = [Step("box_blur", {"radius": 2}), Step("sepia")]
NATIVE_STEPS = [
    Step("gaussian_blur", {"radius": 3}),
    Step("sharpen"),
    Step("edge_detect"),
    Step("rotate", {"degrees": 15}),
    Step("resize", {"width": 256, "height": 256}),
]


def build_workload(name: str, *, quick: bool, fib_n: int = 30, fib_tasks: int = 4) -> Workload:
    """The workload called `name`; `quick` shrinks it so a whole --quick run stays short."""
    match name:
        case "fib":
            return fib_workload(fib_n, fib_tasks)
        case "pure-python":
            return image_workload(name, 8, 96 if quick else 160, PURE_STEPS)
        case "native":
            return image_workload(name, 8, 384 if quick else 768, NATIVE_STEPS)
        case "small-batch":
            return image_workload(name, 96 if quick else 256, 24, PURE_STEPS)
    raise ValueError(f"unknown workload {name!r}; valid: {', '.join(WORKLOAD_NAMES)}")


def workload_kind(name: str) -> str:
    """ "pure_python" (holds the GIL), "native" (Pillow releases it) or "cpu" (fib)."""
    return KINDS[name]


KINDS = {
    "fib": "cpu",
    "pure-python": "pure_python",
    "native": "native",
    "small-batch": "pure_python",
}
IMAGE_WORKLOADS = ("pure-python", "native", "small-batch")
WORKLOAD_NAMES = ("fib", *IMAGE_WORKLOADS)
