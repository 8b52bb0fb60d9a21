"""The benchmark workloads: what one measured run does, at a full or a quick scale, or on a
custom image set."""

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from nogil_bench.bench.config import Config, ImageSet, share
from nogil_bench.runners import BaseRunner
from nogil_bench.runners.timing import TimedCall
from nogil_bench.workloads.fib import fib
from nogil_bench.workloads.images import (
    ImageJob,
    SyntheticSource,
    native_steps,
    output_digests,
    validate_steps,
)
from nogil_bench.workloads.model import Step


@dataclass(frozen=True, slots=True)
class Workload:
    name: str
    description: str
    # True when some step needs Pillow in the workers, which subinterpreters cannot load.
    needs_native: bool
    # Runs the work once on the runner, appends per-task seconds, and returns the SHA-256 of
    # each output, in order: outputs are hashed as they come, never all kept.
    run: Callable[[BaseRunner, list[float]], list[bytes]]


def fib_workload(n: int, tasks: range) -> Workload:
    def run(runner: BaseRunner, task_seconds: list[float]) -> list[bytes]:
        results = runner.map(TimedCall(fib), [n] * len(tasks))
        task_seconds.extend(result.seconds for result in results)
        return [hashlib.sha256(repr(result.value).encode()).digest() for result in results]

    return Workload("fib", f"fib({n}) x {len(tasks)} tasks", False, run)


def image_workload(name: str, images: ImageSet, part: range) -> Workload:
    """The images numbered in `part` (all of range(images.count), or a ceiling process's share)."""
    steps = validate_steps(images.pipeline)
    jobs = [
        ImageJob(SyntheticSource(images.width, images.height, images.seed + index), steps)
        for index in part
    ]
    ops = " -> ".join(step.op for step in steps)

    def run(runner: BaseRunner, task_seconds: list[float]) -> list[bytes]:
        return output_digests(runner, jobs, task_seconds)

    description = f"{images.count} images {images.width}x{images.height}: {ops}"
    return Workload(name, description, bool(native_steps(steps)), run)


PURE_STEPS = (Step("box_blur", {"radius": 2}), Step("sepia"))
NATIVE_STEPS = (
    Step("gaussian_blur", {"radius": 3}),
    Step("sharpen"),
    Step("edge_detect"),
    Step("rotate", {"degrees": 15}),
    Step("resize", {"width": 256, "height": 256}),
)


def named_image_set(name: str, *, quick: bool) -> ImageSet:
    """The named image workloads; `quick` shrinks them so a whole --quick run stays short."""
    match name:
        case "pure-python":
            side = 96 if quick else 160
            return ImageSet(8, side, side, 0, PURE_STEPS)
        case "native":
            side = 384 if quick else 768
            return ImageSet(8, side, side, 0, NATIVE_STEPS)
        case "small-batch":
            return ImageSet(96 if quick else 256, 24, 24, 0, PURE_STEPS)
    raise ValueError(f"unknown workload {name!r}; valid: {', '.join(WORKLOAD_NAMES)}")


def image_set_of(config: Config) -> ImageSet | None:
    """The configuration's images: its own set, a named one, or None for fib."""
    if config.images is not None:
        return config.images
    if config.workload == "fib":
        return None
    return named_image_set(config.workload, quick=config.quick)


def build_workload(config: Config) -> Workload:
    """The configuration's work, or its part of it when it is one process of a ceiling."""
    images = image_set_of(config)
    if images is None:
        return fib_workload(config.fib_n, share(config.fib_tasks, config.part, config.parts))
    return image_workload(config.workload, images, share(images.count, config.part, config.parts))


IMAGE_WORKLOADS = ("pure-python", "native", "small-batch")
WORKLOAD_NAMES = ("fib", *IMAGE_WORKLOADS)
