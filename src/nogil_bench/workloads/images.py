"""Image jobs: a source and a pipeline of steps, run on a worker or split for subinterpreters."""

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from nogil_bench.runners import BaseRunner, UnsupportedWorkError
from nogil_bench.runners.timing import CapturedCall, Outcome, TimedCall
from nogil_bench.workloads.digest import combine_digests
from nogil_bench.workloads.model import InvalidStepError, Operation, OpKind, Pixels, Step
from nogil_bench.workloads.native import NATIVE_OPERATIONS
from nogil_bench.workloads.pure import PURE_OPERATIONS, PixelTask, run_pure_steps

OPERATIONS: dict[str, Operation[Image.Image] | Operation[Pixels]] = {
    **NATIVE_OPERATIONS,
    **PURE_OPERATIONS,
}
ACCEPTED_FORMATS = frozenset({"PNG", "JPEG", "WEBP"})
DEFAULT_MAX_PIXELS = 25_000_000


class InvalidImageError(ValueError):
    """The source is not an image this service accepts; the message says why."""


class UnsupportedImageError(InvalidImageError):
    """The data is not an image, or not in a format this service reads."""


@dataclass(frozen=True, slots=True)
class SyntheticSource:
    """A deterministic noise image: the same (width, height, seed) gives the same pixels."""

    width: int
    height: int
    seed: int


@dataclass(frozen=True, slots=True)
class ImageJob:
    source: SyntheticSource | bytes
    steps: tuple[Step, ...]
    max_pixels: int = DEFAULT_MAX_PIXELS

    def __repr__(self) -> str:
        source = self.source if isinstance(self.source, SyntheticSource) else "<encoded image>"
        return f"ImageJob({source}, {[step.op for step in self.steps]})"


def validate_steps(steps: Sequence[Step]) -> tuple[Step, ...]:
    """Steps with parameters checked and defaults filled in; InvalidStepError names the culprit."""
    resolved: list[Step] = []
    for step in steps:
        operation = OPERATIONS.get(step.op)
        if operation is None:
            raise InvalidStepError(
                step.op, f"unknown operation (valid: {', '.join(sorted(OPERATIONS))})"
            )
        resolved.append(Step(step.op, operation.resolve(step.params)))
    return tuple(resolved)


def synthetic_image(source: SyntheticSource) -> Image.Image:
    # Seeded for reproducibility, not secrecy.
    noise = random.Random(source.seed).randbytes(source.width * source.height * 3)  # noqa: S311
    return Image.frombytes("RGB", (source.width, source.height), noise)


def decode_image(data: bytes | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Encoded image bytes, or a file of them, decoded to RGB after the size check."""
    if (isinstance(data, Path) and data.stat().st_size == 0) or not data:
        raise InvalidImageError("the file is empty")
    try:
        image = Image.open(
            data if isinstance(data, Path) else BytesIO(data), formats=sorted(ACCEPTED_FORMATS)
        )
    except Image.DecompressionBombError as error:
        raise InvalidImageError(f"refused as a decompression bomb: {error}") from None
    except UnidentifiedImageError:
        raise UnsupportedImageError(
            f"not a supported image (accepted: {', '.join(sorted(ACCEPTED_FORMATS))})"
        ) from None
    # The header gives the size before any pixel is decoded: refuse bombs before they expand.
    if image.width * image.height > max_pixels:
        raise InvalidImageError(
            f"{image.width}x{image.height} is {image.width * image.height} pixels, "
            f"over the limit of {max_pixels}"
        )
    try:
        image.load()
    except (OSError, SyntaxError, ValueError) as error:
        raise InvalidImageError(
            f"the {image.format} data is truncated or corrupt: {error}"
        ) from None
    return image.convert("RGB")


def load_source(job: ImageJob) -> Image.Image:
    if isinstance(job.source, SyntheticSource):
        return synthetic_image(job.source)
    return decode_image(job.source, max_pixels=job.max_pixels)


# zlib's fastest level: about 4x quicker than the default 6 on these images, for files ~3% larger.
# The encode is C code that releases the GIL; at level 6 it was a fifth of a pure-Python job.
PNG_COMPRESS_LEVEL = 1


def encode_png(image: Image.Image) -> bytes:
    buffer = BytesIO()
    image.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def to_pixels(image: Image.Image) -> Pixels:
    return Pixels(image.width, image.height, image.tobytes())


def from_pixels(pixels: Pixels) -> Image.Image:
    return Image.frombytes("RGB", (pixels.width, pixels.height), pixels.data)


def run_job(job: ImageJob) -> bytes:
    """The whole job on one worker: load, every step, PNG-encode."""
    image = load_source(job)
    for step in job.steps:
        if step.op in PURE_OPERATIONS:
            pixels = PURE_OPERATIONS[step.op].apply(to_pixels(image), step.params)
            image = from_pixels(pixels)
        else:
            image = NATIVE_OPERATIONS[step.op].apply(image, step.params)
    return encode_png(image)


def run_jobs(
    runner: BaseRunner, jobs: Sequence[ImageJob], task_seconds: list[float] | None = None
) -> list[bytes]:
    """Every job's PNG, in order. Runners that cannot load Pillow in their workers get only the
    pure-Python steps, with loading and encoding done here; the bytes are the same either way."""
    if runner.runs_native_extensions:
        results = runner.map(TimedCall(run_job), jobs)
        outputs = [result.value for result in results]
        seconds = [result.seconds for result in results]
    else:
        pixel_results = runner.map(TimedCall(run_pure_steps), pixel_tasks(runner, jobs))
        outputs = [encode_png(from_pixels(result.value)) for result in pixel_results]
        seconds = [result.seconds for result in pixel_results]
    if task_seconds is not None:
        task_seconds.extend(seconds)
    return outputs


def run_job_digest(job: ImageJob) -> bytes:
    """The job's PNG, hashed where it was made: 32 bytes travel back however large the image."""
    return hashlib.sha256(run_job(job)).digest()


# Runners that cannot load Pillow get decoded pixels from this process, a window at a time, so
# that about this much pixel data is in flight however many images a benchmark has.
PIXEL_WINDOW_BYTES = 256 * 1024 * 1024


def output_digests(
    runner: BaseRunner, jobs: Sequence[ImageJob], task_seconds: list[float] | None = None
) -> list[bytes]:
    """Every job's PNG SHA-256, in order; the same work as run_jobs (load, steps, PNG encode),
    but no output is kept once hashed, so memory does not grow with the number of images."""
    hashes: list[bytes] = []
    seconds: list[float] = []
    if runner.runs_native_extensions:
        results = runner.map(TimedCall(run_job_digest), jobs)
        hashes = [result.value for result in results]
        seconds = [result.seconds for result in results]
    else:
        size = window_size(jobs, runner.workers)
        for first in range(0, len(jobs), size):
            tasks = pixel_tasks(runner, jobs[first : first + size])
            pixel_results = runner.map(TimedCall(run_pure_steps), tasks)
            del tasks
            seconds += [result.seconds for result in pixel_results]
            pixel_results.reverse()
            while pixel_results:  # each result dropped as soon as it is hashed
                pixels = pixel_results.pop().value
                hashes.append(hashlib.sha256(encode_png(from_pixels(pixels))).digest())
    if task_seconds is not None:
        task_seconds.extend(seconds)
    return hashes


def window_size(jobs: Sequence[ImageJob], workers: int) -> int:
    """How many jobs' pixels fit in PIXEL_WINDOW_BYTES, and never fewer than the workers."""
    largest = max((_pixel_bytes(job) for job in jobs), default=1)
    return max(workers, PIXEL_WINDOW_BYTES // largest)


def _pixel_bytes(job: ImageJob) -> int:
    if isinstance(job.source, SyntheticSource):
        return job.source.width * job.source.height * 3
    return job.max_pixels * 3  # an upload's size is known only once decoded: assume the limit


def run_jobs_captured(runner: BaseRunner, jobs: Sequence[ImageJob]) -> list[Outcome[bytes]]:
    """Like run_jobs, but a failing job gives an error Outcome and the others still run."""
    if runner.runs_native_extensions:
        return runner.map(CapturedCall(run_job), jobs)
    outcomes = runner.map(CapturedCall(run_pure_steps), pixel_tasks(runner, jobs))
    return [
        Outcome(
            None if outcome.value is None else encode_png(from_pixels(outcome.value)),
            outcome.error,
            outcome.started_at,
            outcome.wall_s,
            outcome.cpu_s,
        )
        for outcome in outcomes
    ]


def native_steps(steps: Sequence[Step]) -> list[str]:
    return [step.op for step in steps if OPERATIONS[step.op].kind is OpKind.NATIVE]


def check_runner_can_run(runner: type[BaseRunner], steps: Sequence[Step]) -> None:
    """UnsupportedWorkError when the runner's workers cannot load Pillow and steps need it."""
    if not runner.runs_native_extensions and (native := native_steps(steps)):
        raise UnsupportedWorkError(
            f"the {runner.name} runner runs pure-Python operations only, and this job "
            f"has native (Pillow) steps: {', '.join(native)}. Pillow cannot be loaded "
            "in subinterpreters; use another runner for native operations."
        )


def pixel_tasks(runner: BaseRunner, jobs: Sequence[ImageJob]) -> list[PixelTask]:
    """The jobs' pure-Python share, decoded here, for runners that cannot load Pillow."""
    for job in jobs:
        check_runner_can_run(type(runner), job.steps)
    return [PixelTask(to_pixels(load_source(job)), job.steps) for job in jobs]


def digest(outputs: Sequence[bytes]) -> str:
    """One SHA-256 over all outputs, in order: equal digests mean byte-identical results."""
    return combine_digests([hashlib.sha256(output).digest() for output in outputs])
