"""What one benchmark configuration is: the workload, the runner and how to run it.

It crosses into the worker process as one JSON line, so it is plain data.
"""

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from nogil_bench.workloads.model import Step, steps_from_json

# Not a runner: K independent sequential processes, each with a K-th of the work, started
# together. Nothing is shared, so no concurrency model can beat it on this host (the ceiling).
CEILING = "ceiling"


@dataclass(frozen=True, slots=True)
class ImageSet:
    """A custom set of synthetic images (the API's benchmarks): `count` images of width x
    height, seeded seed, seed + 1, ..., each through the pipeline."""

    count: int
    width: int
    height: int
    seed: int
    pipeline: tuple[Step, ...]


@dataclass(frozen=True, slots=True)
class Config:
    workload: str  # a named workload, or the label of `images`
    runner: str
    workers: int
    warmups: int = 1
    quick: bool = False
    fib_n: int = 30
    fib_tasks: int = 4
    images: ImageSet | None = None
    # One process of a ceiling: the part-th (from 0) of `parts` contiguous shares of the work.
    part: int = 0
    parts: int = 1

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> Config:
        images = document.get("images")
        return cls(
            **{key: value for key, value in document.items() if key != "images"},
            images=None if images is None else image_set_from_json(images),
        )


def image_set_from_json(document: Mapping[str, Any]) -> ImageSet:
    return ImageSet(
        int(document["count"]),
        int(document["width"]),
        int(document["height"]),
        int(document["seed"]),
        steps_from_json(document["pipeline"]),
    )


def share(count: int, part: int, parts: int) -> range:
    """The part-th of `parts` contiguous shares of range(count), sizes differing by one at most;
    in order, the shares concatenate to range(count)."""
    if not 0 <= part < parts:
        raise ValueError(f"part {part} of {parts} does not exist")
    size, extra = divmod(count, parts)
    first = part * size + min(part, extra)
    return range(first, first + size + (1 if part < extra else 0))
