"""Image jobs: the same bytes on every runner, worker count and GIL mode; bad input named."""

import hashlib
import json
import os
import re
import subprocess
import sys
from io import BytesIO
from pathlib import Path

import pytest
from PIL import Image

from nogil_bench.runners import UnsupportedWorkError, get_runner, local_runners, runners
from nogil_bench.workloads import images
from nogil_bench.workloads.digest import combine_digests
from nogil_bench.workloads.images import (
    OPERATIONS,
    InvalidImageError,
    SyntheticSource,
    decode_image,
    digest,
    output_digests,
    run_jobs,
    synthetic_image,
    validate_steps,
)
from nogil_bench.workloads.model import InvalidStepError, OpKind, Step
from tests.utils.images import NATIVE, PURE, jobs

MIXED = validate_steps([Step("grayscale"), Step("box_blur", {"radius": 1})])


def png_bytes(image: Image.Image, image_format: str = "PNG") -> bytes:
    buffer = BytesIO()
    image.save(buffer, format=image_format)
    return buffer.getvalue()


def sequential_digest(steps: tuple[Step, ...]) -> str:
    with get_runner("sequential")(1) as runner:
        return digest(run_jobs(runner, jobs(steps)))


@pytest.mark.parametrize("name", sorted(local_runners()))
@pytest.mark.parametrize("workers", [1, 2, 4])
def test_pure_python_jobs_give_identical_bytes_on_every_runner(name: str, workers: int) -> None:
    with get_runner(name)(workers) as runner:
        outputs = run_jobs(runner, jobs(PURE))

    assert digest(outputs) == sequential_digest(PURE)


@pytest.mark.parametrize(
    "name", sorted(n for n in local_runners() if runners()[n].runs_native_extensions)
)
@pytest.mark.parametrize("steps", [NATIVE, MIXED], ids=["native", "mixed"])
def test_native_and_mixed_jobs_give_identical_bytes_on_every_runner_that_loads_pillow(
    name: str, steps: tuple[Step, ...]
) -> None:
    with get_runner(name)(2) as runner:
        outputs = run_jobs(runner, jobs(steps))

    assert digest(outputs) == sequential_digest(steps)


CROSS_MODE_SCRIPT = """
import json
from nogil_bench.runners import local_runners, runners
from tests.utils.images import PURE, NATIVE, jobs
from nogil_bench.workloads.images import digest, run_jobs

def main():
    found = {}
    for name in local_runners():
        runner_class = runners()[name]
        with runner_class(2) as runner:
            found[name + "/pure"] = digest(run_jobs(runner, jobs(PURE)))
            if runner_class.runs_native_extensions:
                found[name + "/native"] = digest(run_jobs(runner, jobs(NATIVE)))
    print(json.dumps(found))

if __name__ == "__main__":
    main()
"""


def test_outputs_are_identical_with_the_gil_off_and_on(tmp_path: Path) -> None:
    script = tmp_path / "cross_mode.py"
    script.write_text(CROSS_MODE_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "PYTHON_GIL"}
    env["PYTHONPATH"] = str(Path(__file__).parents[2])
    by_mode = {}
    for gil in ("0", "1"):
        completed = subprocess.run(
            [sys.executable, "-X", f"gil={gil}", script],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        by_mode[gil] = json.loads(completed.stdout)

    assert by_mode["0"] == by_mode["1"]
    assert len({value for key, value in by_mode["0"].items() if key.endswith("/pure")}) == 1
    assert len({value for key, value in by_mode["0"].items() if key.endswith("/native")}) == 1


def test_the_interpreters_runner_refuses_jobs_with_native_steps_naming_them() -> None:
    with get_runner("interpreters")(1) as runner, pytest.raises(UnsupportedWorkError) as refusal:
        run_jobs(runner, jobs(MIXED))

    assert "native (Pillow) steps: grayscale" in str(refusal.value)


def test_synthetic_sources_are_deterministic() -> None:
    first = synthetic_image(SyntheticSource(16, 8, seed=7)).tobytes()

    assert first == synthetic_image(SyntheticSource(16, 8, seed=7)).tobytes()
    assert first != synthetic_image(SyntheticSource(16, 8, seed=8)).tobytes()


def test_every_operation_declares_whether_it_is_native_or_pure_python() -> None:
    kinds = {name: op.kind for name, op in OPERATIONS.items()}

    assert {"resize", "rotate", "grayscale", "gaussian_blur", "sharpen", "edge_detect"} <= {
        name for name, kind in kinds.items() if kind is OpKind.NATIVE
    }
    assert {"box_blur", "sepia"} <= {
        name for name, kind in kinds.items() if kind is OpKind.PURE_PYTHON
    }


def test_validation_fills_in_defaults() -> None:
    (step,) = validate_steps([Step("sharpen", {"percent": 200})])

    assert step.params == {"radius": 2.0, "percent": 200}


@pytest.mark.parametrize(
    ("step", "message"),
    [
        (Step("posterise"), "posterise: unknown operation (valid: box_blur, edge_detect"),
        (Step("box_blur", {"radius": 0}), "box_blur.radius: must be between 1 and 16, got 0"),
        (Step("box_blur", {"radius": 2.5}), "box_blur.radius: must be a whole number, got 2.5"),
        (Step("rotate", {"degrees": "ninety"}), "rotate.degrees: must be a number"),  # type: ignore[dict-item]
        (Step("rotate", {"turns": 1}), "rotate.turns: unknown parameter (expected: degrees)"),
        (Step("grayscale", {"level": 1}), "grayscale.level: unknown parameter (expected: none)"),
    ],
)
def test_invalid_steps_are_refused_naming_the_operation_and_parameter(
    step: Step, message: str
) -> None:
    with pytest.raises(InvalidStepError) as refusal:
        validate_steps([step])

    assert str(refusal.value).startswith(message)


def test_uploaded_png_jpeg_and_webp_decode_to_rgb() -> None:
    image = synthetic_image(SyntheticSource(12, 9, seed=1))

    for image_format in ("PNG", "JPEG", "WEBP"):
        decoded = decode_image(png_bytes(image, image_format))
        assert (decoded.mode, decoded.size) == ("RGB", (12, 9))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the file is empty"),
        (b"GIF89a not really", "not a supported image (accepted: JPEG, PNG, WEBP)"),
        (b"hello, world", "not a supported image"),
    ],
)
def test_bad_uploads_are_refused_saying_why(data: bytes, message: str) -> None:
    with pytest.raises(InvalidImageError, match=re.escape(message)):
        decode_image(data)


def test_an_unsupported_format_is_refused_even_when_pillow_could_read_it() -> None:
    gif = png_bytes(synthetic_image(SyntheticSource(4, 4, seed=1)).convert("P"), "GIF")

    with pytest.raises(InvalidImageError, match="not a supported image"):
        decode_image(gif)


def test_a_truncated_image_is_refused_as_corrupt() -> None:
    data = png_bytes(synthetic_image(SyntheticSource(64, 64, seed=1)))

    with pytest.raises(InvalidImageError, match="PNG data is truncated or corrupt"):
        decode_image(data[: len(data) // 2])


def test_a_decompression_bomb_is_refused_from_its_header_alone() -> None:
    data = png_bytes(Image.new("RGB", (3000, 3000)))

    with pytest.raises(InvalidImageError, match="3000x3000 is 9000000 pixels, over the limit"):
        decode_image(data, max_pixels=1_000_000)


def test_the_digest_is_order_sensitive() -> None:
    a, b = hashlib.sha256(b"a").digest(), hashlib.sha256(b"b").digest()

    assert digest([a, b]) != digest([b, a])


@pytest.mark.parametrize("name", sorted(local_runners()))
def test_streamed_digests_equal_the_digest_of_all_outputs_kept(name: str) -> None:
    steps = PURE if not runners()[name].runs_native_extensions else MIXED
    with get_runner(name)(2) as runner:
        task_seconds: list[float] = []
        streamed = combine_digests(output_digests(runner, jobs(steps), task_seconds))
        kept = digest(run_jobs(runner, jobs(steps)))

    assert streamed == kept == sequential_digest(steps)
    assert len(task_seconds) == len(jobs(steps))


def test_runners_without_pillow_get_their_pixels_a_bounded_window_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Two 40x30 images per window: five jobs take three windows, in order.
    monkeypatch.setattr(images, "PIXEL_WINDOW_BYTES", 2 * 40 * 30 * 3)
    with get_runner("interpreters")(1) as runner:
        streamed = combine_digests(output_digests(runner, jobs(PURE)))

    assert images.window_size(jobs(PURE), workers=1) == 2
    assert images.window_size(jobs(PURE), workers=4) == 4  # never fewer than the workers
    assert streamed == sequential_digest(PURE)
