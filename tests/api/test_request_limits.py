"""A batch request is bounded as a whole (MAX_BATCH_REQUEST_BYTES), not per image times the
number of images: refused with a 413 naming the limit, whether the body declares its length or
streams in chunks; a batch under it runs."""

import io
import os
from collections.abc import Iterator

import httpx2
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from pydantic import ValidationError

from nogil_bench.core.config import MIB, Settings
from tests.utils.api import BATCHES, Headers, png, wait_until_finished

MAX_UPLOAD_BYTES = 64 * 1024
MAX_BATCH_REQUEST_BYTES = 128 * 1024
LIMIT_NAMED = (
    f"limit of {MAX_BATCH_REQUEST_BYTES} bytes (0.125 MiB: the whole batch, "
    "NOGIL_BENCH_MAX_BATCH_REQUEST_BYTES)"
)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Small limits, so that a few images of 50 KB each, each within MAX_UPLOAD_BYTES, pass the
    whole request's limit together."""
    settings.MAX_UPLOAD_BYTES = MAX_UPLOAD_BYTES
    settings.MAX_BATCH_REQUEST_BYTES = MAX_BATCH_REQUEST_BYTES
    return settings


def noise_png(seed: int) -> bytes:
    """About 49 KB: random pixels do not compress."""
    side = 128
    buffer = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(buffer, "PNG")
    assert MAX_BATCH_REQUEST_BYTES / 4 < len(buffer.getvalue()) < MAX_UPLOAD_BYTES, seed
    return buffer.getvalue()


def multipart_batch(images: list[bytes]) -> tuple[dict[str, str], bytes]:
    """The Content-Type and body of a multipart batch of `images`, as a client would send it."""
    request = httpx2.Request(
        "POST",
        "http://testserver" + BATCHES,
        files=[("images", (f"{i}.png", image, "image/png")) for i, image in enumerate(images)],
        data={"pipeline": '[{"op": "invert"}]'},
    )
    return {"Content-Type": request.headers["Content-Type"]}, request.read()


@pytest.mark.usefixtures("no_leftovers")
def test_a_declared_content_length_over_the_whole_batch_limit_is_refused_naming_it(
    client: TestClient, alice: Headers
) -> None:
    headers, body = multipart_batch([png()])

    response = client.post(
        BATCHES,
        headers=alice | headers | {"Content-Length": str(MAX_BATCH_REQUEST_BYTES + 1)},
        content=body,
    )

    assert response.status_code == 413
    assert LIMIT_NAMED in response.json()["detail"]


@pytest.mark.usefixtures("no_leftovers")
def test_a_chunked_batch_of_images_each_within_the_upload_limit_is_refused_past_the_total(
    client: TestClient, alice: Headers
) -> None:
    headers, body = multipart_batch([noise_png(seed) for seed in range(4)])
    assert len(body) > MAX_BATCH_REQUEST_BYTES

    def chunks() -> Iterator[bytes]:  # no Content-Length: the body grows as it is read
        for start in range(0, len(body), 16 * 1024):
            yield body[start : start + 16 * 1024]

    response = client.post(BATCHES, headers=alice | headers, content=chunks())

    assert response.status_code == 413
    assert LIMIT_NAMED in response.json()["detail"]


@pytest.mark.usefixtures("no_leftovers")
def test_a_batch_under_the_whole_batch_limit_runs(client: TestClient, alice: Headers) -> None:
    headers, body = multipart_batch([noise_png(seed) for seed in range(2)])
    assert len(body) < MAX_BATCH_REQUEST_BYTES

    response = client.post(BATCHES, headers=alice | headers, content=body)

    assert response.status_code == 202, response.text
    batch = wait_until_finished(client, response.headers["Location"], alice)
    assert (batch["status"], len(batch["job_ids"])) == ("succeeded", 2)
    client.delete(response.headers["Location"], headers=alice)


def test_a_whole_batch_limit_below_one_upload_is_refused_naming_both() -> None:
    with pytest.raises(
        ValidationError,
        match=r"MAX_BATCH_REQUEST_BYTES \(1048576\) must be at least NOGIL_BENCH_MAX_UPLOAD_BYTES",
    ):
        Settings(MAX_UPLOAD_BYTES=2 * MIB, MAX_BATCH_REQUEST_BYTES=MIB, _env_file=None)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("route", "content_type"),
    [
        ("/api/v1/auth/register", "application/json"),
        ("/api/v1/auth/token", "application/x-www-form-urlencoded"),
    ],
)
def test_a_chunked_body_over_a_json_or_form_routes_limit_is_413_too(
    client: TestClient, route: str, content_type: str
) -> None:
    def chunks() -> Iterator[bytes]:  # 32 KiB, past the 16 KiB these routes take
        for _ in range(32):
            yield b"x" * 1024

    response = client.post(route, headers={"Content-Type": content_type}, content=chunks())

    assert response.status_code == 413, response.text
    assert "over this route's limit of 16384 bytes" in response.json()["detail"]
