"""Bad input gets a clear 4xx naming the problem, and leaves no row and no file behind."""

import io
import json
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from nogil_bench.core.config import Settings
from nogil_bench.core.deps import MAX_OFFSET
from nogil_bench.core.nul import NUL_MESSAGE
from tests.utils.api import (
    BATCHES,
    BENCHMARKS,
    JOBS,
    Headers,
    png,
    synthetic_job,
    wait_until_finished,
)

pytestmark = pytest.mark.usefixtures("no_leftovers")


def upload(client: TestClient, headers: Headers, content: bytes, **data: str) -> Any:
    return client.post(
        JOBS,
        headers=headers,
        files={"image": ("upload.png", content, "image/png")},
        data={"pipeline": '[{"op": "invert"}]'} | data,
    )


def gif() -> bytes:
    buffer = io.BytesIO()
    Image.new("P", (4, 4)).save(buffer, format="GIF")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("content", "status", "message"),
    [
        pytest.param(b"", 422, "empty", id="empty"),
        pytest.param(b"hello, not an image" * 10, 415, "not a supported image", id="not-image"),
        pytest.param(gif(), 415, "accepted: JPEG, PNG, WEBP", id="gif"),
        pytest.param(png(64, 64)[:-40], 422, "truncated or corrupt", id="truncated"),
    ],
)
def test_an_unusable_upload_is_refused(
    client: TestClient, alice: Headers, content: bytes, status: int, message: str
) -> None:
    response = upload(client, alice, content)

    assert response.status_code == status, response.text
    assert message in response.json()["detail"]
    assert "upload.png" in response.json()["detail"]


def test_an_image_over_max_image_pixels_is_422_before_it_is_decoded(
    client: TestClient, alice: Headers, settings: Settings
) -> None:
    settings.MAX_IMAGE_PIXELS = 100 * 100
    # 4000 x 4000 of one colour: a few kB of PNG that would decode to 48 MB.
    bomb = png(4000, 4000, "black")
    assert len(bomb) < 100_000

    response = upload(client, alice, bomb)

    assert response.status_code == 422
    assert "16000000 pixels, over the limit of 10000" in response.json()["detail"]


def test_an_upload_over_max_upload_bytes_is_413(
    client: TestClient, alice: Headers, settings: Settings
) -> None:
    settings.MAX_UPLOAD_BYTES = 1000

    response = upload(client, alice, png(200, 200, "white") + b"\0" * 2000)

    assert response.status_code == 413
    assert "over the limit of 1000" in response.json()["detail"]


def test_a_body_far_over_the_limit_is_refused_before_it_is_read(
    client: TestClient, alice: Headers
) -> None:
    limit = client.app.state.settings.MAX_UPLOAD_BYTES  # type: ignore[attr-defined]

    def endless() -> Any:
        chunk = b"\0" * 65536
        for _ in range(limit // len(chunk) + 64):
            yield chunk

    response = client.post(
        JOBS,
        headers=alice | {"Content-Type": "multipart/form-data; boundary=x"},
        content=endless(),
    )

    assert response.status_code == 413
    assert "limit" in response.json()["detail"]


def test_a_declared_content_length_over_the_limit_is_refused_at_once(
    client: TestClient, alice: Headers
) -> None:
    response = client.post(
        BATCHES,
        headers=alice | {"Content-Type": "application/json", "Content-Length": str(10**12)},
        content=b"{}",
    )

    assert response.status_code == 413


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"pipeline": [{"op": "sharpen_a_lot"}]}, "sharpen_a_lot: unknown operation (valid:"),
        ({"pipeline": [{"op": "box_blur", "params": {"radius": 999}}]}, "box_blur.radius"),
        ({"pipeline": [{"op": "box_blur", "params": {"colour": 1}}]}, "box_blur.colour"),
        ({"pipeline": []}, "at least 1"),
        ({"runner": "gevent"}, "valid runners: sequential, threads, processes, asyncio"),
        ({"workers": 0}, "workers must be between 1 and 8, got 0"),
        ({"workers": 9}, "workers must be between 1 and 8, got 9"),
        ({"source": {"width": 0, "height": 8}}, "greater than or equal to 1"),
        ({"source": {"width": 5000, "height": 8}}, "at most 4096x4096"),
        (
            {"runner": "interpreters", "pipeline": [{"op": "resize", "params": {}}]},
            "native (Pillow) steps: resize",
        ),
        ({"runner": "celery-prefork"}, "this service has no broker: set NOGIL_BENCH_BROKER_URL"),
    ],
)
def test_a_bad_json_job_is_422_naming_the_problem(
    client: TestClient, alice: Headers, overrides: dict[str, Any], message: str
) -> None:
    response = client.post(JOBS, headers=alice, json=synthetic_job(**overrides))

    assert response.status_code == 422
    assert message in response.text


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"pipeline": "not json"}, "pipeline is not a JSON list of steps"),
        ({"pipeline": '[{"op": "resize", "params": {"width": 0}}]'}, "resize.width"),
        ({"pipeline": '[{"op": "invert"}]', "workers": "two"}, "workers must be a whole number"),
        ({"pipeline": '[{"op": "invert"}]', "runner": "fibers"}, "unknown runner 'fibers'"),
    ],
)
def test_a_bad_multipart_field_is_422_naming_the_field(
    client: TestClient, alice: Headers, data: dict[str, str], message: str
) -> None:
    response = client.post(
        JOBS, headers=alice, files={"image": ("a.png", png(), "image/png")}, data=data
    )

    assert response.status_code == 422
    assert message in response.json()["detail"]


def test_a_multipart_job_without_an_image_is_422(client: TestClient, alice: Headers) -> None:
    response = client.post(
        JOBS, headers=alice, data={"pipeline": '[{"op": "invert"}]'}, files={"other": ("x", b"")}
    )

    assert response.status_code == 422
    assert "no file in the 'image' field" in response.json()["detail"]


def test_a_body_that_is_neither_json_nor_multipart_is_415(
    client: TestClient, alice: Headers
) -> None:
    response = client.post(
        JOBS, headers=alice | {"Content-Type": "text/plain"}, content=b"resize it please"
    )

    assert response.status_code == 415
    assert "application/json" in response.json()["detail"]


def test_a_batch_over_max_batch_images_is_422(
    client: TestClient, alice: Headers, settings: Settings
) -> None:
    body = {
        "source": {"count": settings.MAX_BATCH_IMAGES + 1, "width": 8, "height": 8},
        "pipeline": [{"op": "invert"}],
    }

    response = client.post(BATCHES, headers=alice, json=body)

    assert response.status_code == 422
    assert f"at most {settings.MAX_BATCH_IMAGES} images" in response.json()["detail"]


def test_too_many_uploaded_files_is_422(
    client: TestClient, alice: Headers, settings: Settings
) -> None:
    settings.MAX_BATCH_IMAGES = 2
    files = [("images", (f"{index}.png", png(), "image/png")) for index in range(3)]

    response = client.post(
        BATCHES, headers=alice, files=files, data={"pipeline": '[{"op": "invert"}]'}
    )

    assert response.status_code == 422
    assert "at most 2 images" in response.json()["detail"]


def test_one_bad_image_in_a_batch_refuses_the_whole_batch(
    client: TestClient, alice: Headers
) -> None:
    files = [
        ("images", ("good.png", png(), "image/png")),
        ("images", ("bad.png", b"garbage" * 20, "image/png")),
    ]

    response = client.post(
        BATCHES, headers=alice, files=files, data={"pipeline": '[{"op": "invert"}]'}
    )

    assert response.status_code == 415
    assert "bad.png" in response.json()["detail"]


@pytest.mark.parametrize("collection", [JOBS, BATCHES, BENCHMARKS])
@pytest.mark.parametrize("offset", [MAX_OFFSET + 1, 2**63, 2**64])
def test_an_offset_past_the_documented_maximum_is_422(
    client: TestClient, alice: Headers, collection: str, offset: int
) -> None:
    response = client.get(collection, headers=alice, params={"offset": offset})

    assert response.status_code == 422
    [problem] = response.json()["detail"]
    assert problem["loc"] == ["query", "offset"]
    assert f"less than or equal to {MAX_OFFSET}" in problem["msg"]


@pytest.mark.parametrize("collection", [JOBS, BATCHES, BENCHMARKS])
def test_the_largest_offset_is_an_empty_page(
    client: TestClient, alice: Headers, collection: str
) -> None:
    response = client.get(collection, headers=alice, params={"offset": MAX_OFFSET})

    assert response.status_code == 200
    assert response.json() == {"data": [], "count": 0}


@pytest.mark.parametrize("collection", [BATCHES, BENCHMARKS])
def test_a_synthetic_set_whose_last_seed_passes_64_bits_is_422(
    client: TestClient, alice: Headers, collection: str
) -> None:
    source = {"count": 3, "width": 8, "height": 8, "seed": 2**63 - 2}

    response = client.post(
        collection, headers=alice, json={"source": source, "pipeline": [{"op": "invert"}]}
    )

    assert response.status_code == 422
    assert "seed + count - 1 must be at most 9223372036854775807" in response.text


def test_a_synthetic_set_whose_last_seed_is_the_largest_is_accepted(
    client: TestClient, alice: Headers, paused: Callable[[], None], settings: Settings
) -> None:
    source = {"count": 2, "width": 8, "height": 8, "seed": 2**63 - 2}

    response = client.post(
        BATCHES, headers=alice, json={"source": source, "pipeline": [{"op": "invert"}]}
    )

    assert response.status_code == 202, response.text
    jobs = client.get(JOBS, headers=alice, params={"batch_id": response.json()["id"]}).json()
    assert sorted(job["seed"] for job in jobs["data"]) == [2**63 - 2, 2**63 - 1]
    client.delete(f"{BATCHES}/{response.json()['id']}", headers=alice)
    client.delete(f"{BATCHES}/{response.json()['id']}", headers=alice)


@pytest.mark.parametrize(
    "url", [JOBS, BATCHES, BENCHMARKS, "/api/v1/auth/register"], ids=lambda url: url
)
def test_a_json_body_that_is_not_utf8_is_400_naming_the_byte(
    client: TestClient, alice: Headers, url: str
) -> None:
    response = client.post(
        url,
        headers=alice | {"Content-Type": "application/json"},
        content=b'{"source": "\xff"}',
    )

    assert response.status_code == 400
    assert response.json()["detail"] == (
        "the body cannot be read: 'utf-8' codec can't decode byte 0xff in position 12: "
        "invalid start byte"
    )


def test_a_json_body_that_is_not_json_is_422(client: TestClient, alice: Headers) -> None:
    response = client.post(
        JOBS, headers=alice | {"Content-Type": "application/json"}, content=b"{width: 8}"
    )

    assert response.status_code == 422
    [problem] = response.json()["detail"]
    assert problem["type"] == "json_invalid"
    assert "Invalid JSON" in problem["msg"]


@pytest.mark.parametrize(
    ("overrides", "location"),
    [
        ({"source": {"width": True, "height": 8}}, ["source", "width"]),
        ({"source": {"width": "8", "height": 8}}, ["source", "width"]),
        ({"workers": 2.0}, ["workers"]),
        ({"pipeline": [{"op": "box_blur", "params": {"radius": True}}]}, ["pipeline", 0]),
    ],
)
def test_a_json_value_of_the_wrong_type_is_422_not_coerced(
    client: TestClient, alice: Headers, overrides: dict[str, Any], location: list[Any]
) -> None:
    response = client.post(JOBS, headers=alice, json=synthetic_job(**overrides))

    assert response.status_code == 422
    problems = response.json()["detail"]
    assert any(problem["loc"][: len(location)] == location for problem in problems), problems


@pytest.mark.parametrize(
    ("method", "url", "allowed"),
    [
        ("PUT", JOBS, "GET, POST"),
        ("PATCH", f"{JOBS}/01a20000-0000-7000-8000-000000000000", "GET, DELETE"),
        ("POST", "/health", "GET"),
    ],
)
def test_a_wrong_method_is_405_and_allow_names_every_method_of_the_resource(
    client: TestClient, alice: Headers, method: str, url: str, allowed: str
) -> None:
    response = client.request(method, url, headers=alice)

    assert response.status_code == 405
    assert response.headers["Allow"] == allowed


BOUNDARY = "a-boundary"


def multipart_upload(file_name: bytes) -> bytes:
    """A job's multipart body, written out: httpx would percent-encode a NUL in a file name."""
    return b"\r\n".join(
        [
            f"--{BOUNDARY}".encode(),
            b'Content-Disposition: form-data; name="pipeline"',
            b"",
            b'[{"op": "invert"}]',
            f"--{BOUNDARY}".encode(),
            b'Content-Disposition: form-data; name="image"; filename="' + file_name + b'"',
            b"Content-Type: image/png",
            b"",
            png(),
            f"--{BOUNDARY}--".encode(),
            b"",
        ]
    )


# Where a NUL character (U+0000) can come in, each naming where it was: PostgreSQL's text cannot
# hold one, so each of these was a 500 there (the first two found by a fuzz run).
NUL_REQUESTS = [
    pytest.param(
        lambda client, headers: client.get(f"{JOBS}?runner=%F0%AA%91%A8%C3%AE%00", headers=headers),
        ["query", "runner"],
        id="query-parameter",
    ),
    pytest.param(
        lambda client, headers: client.post(
            "/api/v1/auth/token", data={"username": "alice@example.com\0", "password": "secret"}
        ),
        ["body", "username"],
        id="urlencoded-form-field",
    ),
    pytest.param(
        lambda client, headers: client.post(
            "/api/v1/auth/token",
            files={"username": (None, "alice@example.com\0"), "password": (None, "secret")},
        ),
        ["body", "username"],
        id="multipart-form-field",
    ),
    pytest.param(
        lambda client, headers: client.post(
            "/api/v1/auth/register",
            json={"email": "carol@example.com", "password": "a fine password\0"},
        ),
        ["body", "password"],
        id="json-string",
    ),
    pytest.param(
        lambda client, headers: client.post(
            BENCHMARKS,
            headers=headers,
            json={
                "source": {"count": 1, "width": 8, "height": 8},
                "pipeline": [{"op": "invert"}],
                "runners": ["threads\0"],
            },
        ),
        ["body", "runners", 0],
        id="json-string-in-a-list",
    ),
    pytest.param(
        lambda client, headers: client.post(
            JOBS,
            headers=headers | {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
            content=multipart_upload(b"up\0load.png"),
        ),
        ["body", "image", "filename"],
        id="multipart-file-name",
    ),
    pytest.param(
        lambda client, headers: client.post(
            JOBS, headers=headers | {"Idempotency-Key": "key\0"}, json=synthetic_job()
        ),
        ["header", "idempotency-key"],
        id="stored-header",
    ),
    pytest.param(
        # The first Content-Type is the one the app reads the body by.
        lambda client, headers: client.post(
            "/api/v1/auth/token",
            headers=[
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Content-Type", "text/plain"),
            ],
            content=b"username=alice%40example.com%00&password=secret",
        ),
        ["body", "username"],
        id="form-under-a-second-content-type",
    ),
    pytest.param(
        lambda client, headers: client.post(
            BENCHMARKS,
            headers=headers | {"Content-Type": "application/json"},
            content=json.dumps(
                {
                    "source": {"count": 1, "width": 8, "height": 8},
                    "pipeline": [{"op": "invert"}],
                    "runners": ["threads\0"],
                }
            ).encode("utf-16"),
        ),
        ["body", "runners", 0],
        id="utf-16-json-string",
    ),
]


@pytest.mark.parametrize(("send", "location"), NUL_REQUESTS)
def test_a_nul_character_anywhere_is_422_naming_where_on_every_store(
    client: TestClient,
    alice: Headers,
    paused: Callable[[], None],
    send: Callable[[TestClient, Headers], Any],
    location: list[str | int],
) -> None:
    response = send(client, alice)

    assert response.status_code == 422, response.text
    assert response.json()["detail"] == [
        {"type": "nul_character", "loc": location, "msg": NUL_MESSAGE}
    ]


def test_a_nul_in_the_body_of_a_download_request_never_cuts_the_download(
    client: TestClient, alice: Headers
) -> None:
    job = client.post(JOBS, headers=alice, json=synthetic_job()).json()
    done = wait_until_finished(client, f"{JOBS}/{job['id']}", alice)

    # A GET's body is no route's input: the streamed answer's disconnect listener reads it.
    response = client.request(
        "GET",
        done["result_url"],
        headers=alice | {"Content-Type": "application/json"},
        content=b'{"note": "\\u0000"}',
    )

    assert response.status_code == 200, response.text
    assert response.content == client.get(done["result_url"], headers=alice).content
    assert client.delete(f"{JOBS}/{job['id']}", headers=alice).status_code == 204


def test_nul_bytes_in_an_uploaded_file_are_content_not_text(
    client: TestClient, alice: Headers, paused: Callable[[], None]
) -> None:
    image = png()
    assert b"\0" in image  # every PNG chunk's length field has some

    response = upload(client, alice, image)

    assert response.status_code == 202, response.text
    job = f"{JOBS}/{response.json()['id']}"
    client.delete(job, headers=alice)  # cancels the queued job
    client.delete(job, headers=alice)  # removes the cancelled one


def test_a_multipart_boundary_over_the_parsers_limit_is_a_4xx(
    client: TestClient, alice: Headers
) -> None:
    boundary = "b" * 300  # python-multipart takes 256 at most

    response = client.post(
        JOBS,
        headers=alice | {"Content-Type": f"multipart/form-data; boundary={boundary}"},
        content=multipart_upload(b"upload.png").replace(BOUNDARY.encode(), boundary.encode()),
    )

    assert response.status_code == 400, response.text
    assert response.json()["detail"] == "Invalid multipart data."


def test_a_json_body_nested_past_the_parsers_limit_is_422(
    client: TestClient, alice: Headers
) -> None:
    depth = 100_000
    body = b"[" * depth + b'"\\u0000"' + b"]" * depth

    response = client.post(JOBS, headers=alice | {"Content-Type": "application/json"}, content=body)

    assert response.status_code == 422, response.text
    [problem] = response.json()["detail"]
    assert problem["type"] == "json_invalid"
