"""Image jobs for the workload and runner tests."""

from nogil_bench.workloads.images import ImageJob, SyntheticSource, validate_steps
from nogil_bench.workloads.model import Step

PURE = validate_steps([Step("box_blur", {"radius": 2}), Step("sepia"), Step("invert")])
NATIVE = validate_steps(
    [Step("gaussian_blur"), Step("sharpen"), Step("edge_detect"), Step("rotate"), Step("resize")]
)


def jobs(steps: tuple[Step, ...], count: int = 5) -> list[ImageJob]:
    return [ImageJob(SyntheticSource(40, 30, seed), steps) for seed in range(count)]
