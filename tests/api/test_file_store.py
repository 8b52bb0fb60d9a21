"""Uploads and outputs in either file store (FILE_STORE), on either database: a job or batch is
uploaded, run, fetched, deleted and expired the same way, to the same bytes. The database store
puts no upload or output under DATA_DIR, and keeps a large one in chunks of a MiB."""

import io
import json
import math
import os
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from nogil_bench.core.config import Settings
from nogil_bench.core.models import utc_now
from nogil_bench.core.storage import CHUNK_BYTES, FileStore, StoredFileChunk, get_store
from nogil_bench.jobs.models import Job
from nogil_bench.main import create_app
from nogil_bench.retention import purge_expired
from nogil_bench.workloads.images import ImageJob, run_job, validate_steps
from nogil_bench.workloads.model import Step
from tests.utils.api import Headers, wait_until_finished

JOBS = "/api/v1/jobs"
BATCHES = "/api/v1/batches"
PIPELINE: list[dict[str, Any]] = [{"op": "box_blur", "params": {"radius": 1}}, {"op": "sepia"}]
# Later than anything a test writes: every stored key was written before it.
END_OF_TIME = datetime(9000, 1, 1, tzinfo=UTC)

type FileStoreName = Literal["local", "database"]


@pytest.fixture(params=["local", "database"])
def file_store(request: pytest.FixtureRequest) -> FileStoreName:
    name: FileStoreName = request.param
    return name


@pytest.fixture
def settings(settings: Settings, file_store: FileStoreName) -> Settings:
    """The service's settings on each database, with each file store."""
    settings.FILE_STORE = file_store
    return settings


def engine_of(client: TestClient) -> Engine:
    engine: Engine = client.app.state.engine  # type: ignore[attr-defined]
    return engine


def store_of(client: TestClient, settings: Settings) -> FileStore:
    return get_store(settings, engine_of(client))


def stored_keys(client: TestClient, settings: Settings) -> set[str]:
    return set(store_of(client, settings).keys_written_before(END_OF_TIME))


def noise_png(width: int, height: int) -> bytes:
    """An image that does not compress: its PNG is about width * height * 3 bytes."""
    buffer = io.BytesIO()
    Image.frombytes("RGB", (width, height), os.urandom(width * height * 3)).save(
        buffer, format="PNG", compress_level=0
    )
    return buffer.getvalue()


def expected_output(upload: bytes, pipeline: list[dict[str, Any]]) -> bytes:
    steps = validate_steps([Step(step["op"], step.get("params", {})) for step in pipeline])
    return run_job(ImageJob(upload, steps))


def upload_job(
    client: TestClient, headers: Headers, upload: bytes, pipeline: list[dict[str, Any]]
) -> dict[str, Any]:
    response = client.post(
        JOBS,
        headers=headers,
        files={"image": ("noise.png", upload, "image/png")},
        data={"pipeline": json.dumps(pipeline), "runner": "threads"},
    )
    assert response.status_code == 202, response.text
    done = wait_until_finished(client, response.headers["Location"], headers)
    assert done["status"] == "succeeded", done["error"]
    return done


def test_an_uploaded_job_runs_to_the_same_bytes_and_is_deleted_with_its_files(
    client: TestClient, alice: Headers, settings: Settings
) -> None:
    upload = noise_png(40, 30)

    done = upload_job(client, alice, upload, PIPELINE)
    result = client.get(done["result_url"], headers=alice)

    assert result.status_code == 200
    assert result.headers["content-type"] == "image/png"
    assert result.headers["content-disposition"] == f'attachment; filename="{done["id"]}.png"'
    expected = expected_output(upload, PIPELINE)
    assert result.content == expected
    assert int(result.headers["content-length"]) == done["output_bytes"] == len(expected)
    assert len(stored_keys(client, settings)) == 2  # the upload and the output

    assert client.delete(f"{JOBS}/{done['id']}", headers=alice).status_code == 204
    assert stored_keys(client, settings) == set()


def test_a_batch_of_uploads_runs_to_the_same_bytes_and_is_deleted_with_its_files(
    client: TestClient, alice: Headers, settings: Settings
) -> None:
    uploads = [noise_png(16, 12) for _ in range(3)]
    response = client.post(
        BATCHES,
        headers=alice,
        files=[
            ("images", (f"{index}.png", upload, "image/png"))
            for index, upload in enumerate(uploads)
        ],
        data={"pipeline": '[{"op": "invert"}]', "runner": "threads", "workers": "2"},
    )
    assert response.status_code == 202, response.text
    batch = wait_until_finished(client, response.headers["Location"], alice)
    assert batch["status"] == "succeeded", batch["error"]

    results = [
        client.get(f"{JOBS}/{job_id}/result", headers=alice).content for job_id in batch["job_ids"]
    ]

    assert results == [expected_output(upload, [{"op": "invert"}]) for upload in uploads]
    assert len(stored_keys(client, settings)) == 6
    assert client.delete(response.headers["Location"], headers=alice).status_code == 204
    assert stored_keys(client, settings) == set()


def test_a_queued_job_cancelled_takes_its_upload_with_it(
    client: TestClient, alice: Headers, settings: Settings, paused: Callable[[], None]
) -> None:
    response = client.post(
        JOBS,
        headers=alice,
        files={"image": ("noise.png", noise_png(8, 8), "image/png")},
        data={"pipeline": '[{"op": "invert"}]'},
    )
    assert len(stored_keys(client, settings)) == 1

    cancelled = client.delete(response.headers["Location"], headers=alice)

    assert cancelled.json()["status"] == "cancelled"
    assert stored_keys(client, settings) == set()


@pytest.mark.parametrize(
    ("pipeline", "upload", "status_code"),
    [
        ('[{"op": "no_such_op"}]', noise_png(8, 8), 422),  # refused after the upload is stored
        ('[{"op": "invert"}]', b"not an image", 415),  # refused once the stored file is read
    ],
    ids=["unknown operation", "not an image"],
)
def test_a_refused_submission_leaves_no_file(
    client: TestClient,
    alice: Headers,
    settings: Settings,
    pipeline: str,
    upload: bytes,
    status_code: int,
) -> None:
    response = client.post(
        JOBS,
        headers=alice,
        files={"image": ("upload.png", upload, "image/png")},
        data={"pipeline": pipeline},
    )

    assert response.status_code == status_code, response.text
    assert stored_keys(client, settings) == set()


def test_retention_deletes_expired_work_with_its_files(
    client: TestClient, alice: Headers, settings: Settings
) -> None:
    done = upload_job(client, alice, noise_png(8, 8), [{"op": "invert"}])

    purged = purge_expired(engine_of(client), settings, utc_now() + timedelta(days=31))

    assert (purged.jobs, purged.files) == (1, 2)
    assert client.get(f"{JOBS}/{done['id']}", headers=alice).status_code == 404
    assert stored_keys(client, settings) == set()


@pytest.mark.parametrize("file_store", ["database"])
def test_the_database_store_keeps_no_upload_or_output_on_disk(
    client: TestClient, alice: Headers, settings: Settings
) -> None:
    done = upload_job(client, alice, noise_png(40, 30), PIPELINE)

    assert client.get(done["result_url"], headers=alice).status_code == 200
    assert not settings.uploads_dir.exists()
    assert not settings.outputs_dir.exists()
    with Session(engine_of(client)) as session:
        job = session.get(Job, uuid.UUID(done["id"]))
    assert job is not None
    assert stored_keys(client, settings) == {job.upload_path, job.output_path}


@pytest.mark.parametrize("file_store", ["database"])
def test_a_large_upload_is_stored_and_sent_back_in_chunks_of_a_mib(
    client: TestClient, alice: Headers, settings: Settings
) -> None:
    upload = noise_png(1024, 1024)  # about 3 MiB
    pipeline: list[dict[str, Any]] = [{"op": "rotate", "params": {"degrees": 90}}]

    done = upload_job(client, alice, upload, pipeline)
    result = client.get(done["result_url"], headers=alice)

    assert result.content == expected_output(upload, pipeline)
    with Session(engine_of(client)) as session:
        chunks = session.exec(
            select(StoredFileChunk.key, func.count(), func.max(func.length(StoredFileChunk.data)))
            .group_by(col(StoredFileChunk.key))
            .order_by(col(StoredFileChunk.key))
        ).all()
    sizes = {"outputs": done["output_bytes"], "uploads": len(upload)}
    assert [(key.split("/")[0], count) for key, count, _ in chunks] == [
        (folder, math.ceil(size_bytes / CHUNK_BYTES)) for folder, size_bytes in sizes.items()
    ]
    assert all(count > 1 and largest == CHUNK_BYTES for _, count, largest in chunks)


def test_a_result_the_other_store_kept_is_404(
    client: TestClient, alice: Headers, settings: Settings, file_store: FileStoreName
) -> None:
    done = upload_job(client, alice, noise_png(8, 8), [{"op": "invert"}])

    settings.FILE_STORE = "local" if file_store == "database" else "database"  # files stay put
    response = client.get(done["result_url"], headers=alice)

    assert response.status_code == 404
    assert response.json()["detail"] == f"job {done['id']}'s output is not in the file store"


@pytest.mark.parametrize("file_store", ["database"])
def test_a_job_uploaded_to_one_process_runs_on_another_with_its_own_data_dir(
    client: TestClient,
    alice: Headers,
    settings: Settings,
    paused: Callable[[], None],
    tmp_path: Path,
) -> None:
    """No shared disk: the process that took the upload (its executor stopped) and the one that
    runs it share only the database, and the first answers with the second's output."""
    upload = noise_png(40, 30)
    response = client.post(
        JOBS,
        headers=alice,
        files={"image": ("noise.png", upload, "image/png")},
        data={"pipeline": json.dumps(PIPELINE)},
    )
    assert response.status_code == 202, response.text
    elsewhere = settings.model_copy(
        update={"DATA_DIR": tmp_path / "elsewhere", "DATABASE_URL": settings.database_url}
    )

    with TestClient(create_app(elsewhere)) as other_process:
        done = wait_until_finished(other_process, response.headers["Location"], alice)

    assert done["status"] == "succeeded", done["error"]
    result = client.get(done["result_url"], headers=alice)
    assert result.content == expected_output(upload, PIPELINE)
