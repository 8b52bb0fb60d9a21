"""Single jobs and batches through the API: submit, follow, fetch, cancel, delete."""

import hashlib
import io
import sys
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import Engine, event, update
from sqlmodel import Session, col, select

from nogil_bench.core.config import Settings
from nogil_bench.core.models import Status
from nogil_bench.jobs.models import Job
from nogil_bench.work.queue import claim_next
from tests.utils.api import (
    BATCHES,
    JOBS,
    PURE_PIPELINE,
    Headers,
    expected_png,
    png,
    stored_files,
    synthetic_job,
    wait_until_finished,
)
from tests.utils.database import lock_watch
from tests.utils.waiting import wait_until

# Thread CPU time is read just after the wall clock at the end of a task: a few microseconds.
CLOCK_SKEW_S = 0.001


def test_ops_lists_every_operation_with_its_kind_and_parameter_bounds(
    client: TestClient, alice: Headers
) -> None:
    operations = {op["name"]: op for op in client.get("/api/v1/ops", headers=alice).json()}

    assert operations["gaussian_blur"]["kind"] == "native"
    assert operations["gaussian_blur"]["releases_gil"] is True
    assert operations["box_blur"]["kind"] == "pure_python"
    assert operations["box_blur"]["releases_gil"] is False
    radius = {p["name"]: p for p in operations["box_blur"]["parameters"]}["radius"]
    assert radius["minimum"] <= radius["default"] <= radius["maximum"]


def test_a_json_job_is_accepted_then_runs_to_the_same_bytes_as_a_direct_run(
    client: TestClient, alice: Headers
) -> None:
    response = client.post(JOBS, headers=alice, json=synthetic_job())

    assert response.status_code == 202
    job = response.json()
    assert job["status"] == "queued"  # the answer describes the row as it was stored
    assert response.headers["Location"] == f"{JOBS}/{job['id']}"
    done = wait_until_finished(client, response.headers["Location"], alice)
    assert done["status"] == "succeeded", done["error"]
    assert done["runner"] == "threads"
    assert done["workers"] == 2
    assert done["gil_enabled"] is sys._is_gil_enabled()  # the server runs in this process
    assert done["queued_at"] <= done["started_at"] <= done["finished_at"]
    assert 0 < done["latency_s"] <= done["wall_s"]
    # The CPU time of the one worker thread that ran the image: some, and no more than the
    # wall time it spent on it (a thread runs on one CPU at a time).
    assert 0 < done["cpu_s"] <= done["latency_s"] + CLOCK_SKEW_S
    assert done["peak_rss_bytes"] > 0
    result = client.get(done["result_url"], headers=alice)
    assert result.status_code == 200
    assert result.headers["content-type"] == "image/png"
    assert result.content == expected_png(48, 32, 7, PURE_PIPELINE)


def test_a_multipart_job_processes_the_uploaded_image(client: TestClient, alice: Headers) -> None:
    response = client.post(
        JOBS,
        headers=alice,
        files={"image": ("photo.jpg", png(image_format="JPEG"), "image/jpeg")},
        data={"pipeline": '[{"op": "grayscale"}, {"op": "invert"}]', "runner": "sequential"},
    )

    assert response.status_code == 202, response.text
    assert response.json()["upload_filename"] == "photo.jpg"
    assert (response.json()["width"], response.json()["height"]) == (32, 24)
    done = wait_until_finished(client, response.headers["Location"], alice)
    assert done["status"] == "succeeded", done["error"]
    output = Image.open(io.BytesIO(client.get(done["result_url"], headers=alice).content))
    assert output.size == (32, 24)


def test_the_result_is_409_until_the_job_succeeds(
    client: TestClient, alice: Headers, paused: Callable[[], None]
) -> None:
    job = client.post(JOBS, headers=alice, json=synthetic_job()).json()

    response = client.get(f"{JOBS}/{job['id']}/result", headers=alice)

    assert response.status_code == 409
    assert "queued" in response.json()["detail"]


def test_deleting_a_queued_job_cancels_it_and_it_never_runs(
    client: TestClient, alice: Headers, paused: Callable[[], None]
) -> None:
    first = client.post(JOBS, headers=alice, json=synthetic_job()).json()
    second = client.post(JOBS, headers=alice, json=synthetic_job()).json()

    cancelled = client.delete(f"{JOBS}/{first['id']}", headers=alice)
    paused()
    wait_until_finished(client, f"{JOBS}/{second['id']}", alice)

    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    after = client.get(f"{JOBS}/{first['id']}", headers=alice).json()
    assert after["status"] == "cancelled"
    assert after["started_at"] is None


def test_a_cancel_racing_the_executor_waits_for_its_claim_then_refuses(
    client: TestClient, alice: Headers, paused: Callable[[], None]
) -> None:
    """The executor claims a job as its owner cancels it: one of them wins whole. Here the claim
    holds the row first (SQLite: the write lock; PostgreSQL: the row lock), so the cancel waits
    and answers 409, rather than marking cancelled a job that is running."""
    job = client.post(JOBS, headers=alice, json=synthetic_job()).json()
    engine = client.app.state.engine  # type: ignore[attr-defined]
    with Session(engine) as claim, ThreadPoolExecutor(1) as pool, lock_watch(engine) as watch:
        claim.exec(select(Job).where(Job.id == uuid.UUID(job["id"])).with_for_update()).one()
        claim.execute(
            update(Job).where(col(Job.id) == uuid.UUID(job["id"])).values(status=Status.RUNNING)
        )
        cancel = pool.submit(client.delete, f"{JOBS}/{job['id']}", headers=alice)
        wait_until(watch.waiting, "the cancel to wait for the claim's lock")
        assert not cancel.done(), cancel.result().text
        claim.commit()
        response = cancel.result(timeout=30)

    assert response.status_code == 409, response.text
    assert client.get(f"{JOBS}/{job['id']}", headers=alice).json()["status"] == "running"


def test_deleting_a_finished_job_removes_its_record_and_output(
    client: TestClient, alice: Headers, settings: Settings
) -> None:
    job = client.post(JOBS, headers=alice, json=synthetic_job()).json()
    wait_until_finished(client, f"{JOBS}/{job['id']}", alice)
    assert len(stored_files(settings)) == 1

    response = client.delete(f"{JOBS}/{job['id']}", headers=alice)

    assert response.status_code == 204
    assert client.get(f"{JOBS}/{job['id']}", headers=alice).status_code == 404
    assert stored_files(settings) == []


def test_jobs_are_listed_newest_first_filtered_and_paginated(
    client: TestClient, alice: Headers, paused: Callable[[], None]
) -> None:
    ids = [
        client.post(JOBS, headers=alice, json=synthetic_job(runner=runner)).json()["id"]
        for runner in ("threads", "sequential", "threads", "asyncio")
    ]

    everything = client.get(JOBS, headers=alice).json()
    threads = client.get(JOBS, headers=alice, params={"runner": "threads"}).json()
    page = client.get(JOBS, headers=alice, params={"limit": 2, "offset": 1}).json()
    queued = client.get(JOBS, headers=alice, params={"status": "queued"}).json()
    done = client.get(JOBS, headers=alice, params={"status": "succeeded"}).json()
    past_the_end = client.get(JOBS, headers=alice, params={"offset": 10}).json()

    assert [job["id"] for job in everything["data"]] == ids[::-1]
    assert everything["count"] == 4
    assert [job["id"] for job in threads["data"]] == [ids[2], ids[0]]
    assert threads["count"] == 2
    assert [job["id"] for job in page["data"]] == [ids[2], ids[1]]
    assert page["count"] == 4
    assert past_the_end == {"data": [], "count": 4}
    assert queued["count"] == 4
    assert done["count"] == 0


def test_a_listed_job_reads_as_the_job_itself(client: TestClient, alice: Headers) -> None:
    """The list reads plain column values, the single view an ORM row: the same JSON."""
    response = client.post(JOBS, headers=alice, json=synthetic_job())
    job = wait_until_finished(client, response.headers["Location"], alice)
    assert job["status"] == "succeeded", job["error"]

    [listed] = client.get(JOBS, headers=alice).json()["data"]

    assert listed == job
    assert listed["result_url"] == f"{JOBS}/{job['id']}/result"


def test_a_synthetic_batch_fans_out_and_reports_progress_and_aggregates(
    client: TestClient, alice: Headers
) -> None:
    response = client.post(
        BATCHES,
        headers=alice,
        json={
            "source": {"count": 6, "width": 24, "height": 24, "seed": 100},
            "pipeline": PURE_PIPELINE,
            "runner": "threads",
            "workers": 2,
        },
    )

    assert response.status_code == 202, response.text
    assert response.headers["Location"] == f"{BATCHES}/{response.json()['id']}"
    assert len(response.json()["job_ids"]) == 6
    batch = wait_until_finished(client, response.headers["Location"], alice)
    assert batch["status"] == "succeeded", batch["error"]
    assert batch["progress"] == {
        "done": 6,
        "total": 6,
        "queued": 0,
        "running": 0,
        "succeeded": 6,
        "failed": 0,
        "cancelled": 0,
    }
    aggregates = batch["aggregates"]
    assert aggregates["wall_s"] > 0
    assert aggregates["throughput_images_per_s"] == pytest.approx(6 / aggregates["wall_s"])
    assert 0 < aggregates["latency_p50_s"] <= aggregates["latency_p95_s"]
    assert aggregates["cpu_user_s"] + aggregates["cpu_system_s"] > 0
    assert aggregates["peak_rss_bytes"] > 0
    # Image i of the set uses seed + i.
    last = client.get(f"{JOBS}/{batch['job_ids'][-1]}/result", headers=alice).content
    assert last == expected_png(24, 24, 105, PURE_PIPELINE)


def batch_digest(client: TestClient, headers: Headers, runner: str) -> str:
    response = client.post(
        BATCHES,
        headers=headers,
        json={
            "source": {"count": 3, "width": 20, "height": 16, "seed": 1},
            "pipeline": PURE_PIPELINE,
            "runner": runner,
            "workers": 2,
        },
    )
    batch = wait_until_finished(client, response.headers["Location"], headers)
    assert batch["status"] == "succeeded", batch["error"]
    combined = hashlib.sha256()
    for job_id in batch["job_ids"]:
        combined.update(client.get(f"{JOBS}/{job_id}/result", headers=headers).content)
    return combined.hexdigest()


def test_every_runner_gives_byte_identical_batch_outputs(
    client: TestClient, alice: Headers
) -> None:
    digests = {
        runner: batch_digest(client, alice, runner)
        for runner in ("sequential", "threads", "asyncio", "interpreters", "processes")
    }

    assert len(set(digests.values())) == 1, digests


def test_a_multipart_batch_runs_each_uploaded_image(client: TestClient, alice: Headers) -> None:
    files = [
        ("images", (f"{colour}.png", png(colour=colour), "image/png"))
        for colour in ("red", "green", "blue")
    ]

    response = client.post(
        BATCHES,
        headers=alice,
        files=files,
        data={"pipeline": '[{"op": "invert"}]', "runner": "threads", "workers": "2"},
    )

    assert response.status_code == 202, response.text
    batch = wait_until_finished(client, response.headers["Location"], alice)
    assert batch["progress"]["succeeded"] == 3
    jobs = [client.get(f"{JOBS}/{job_id}", headers=alice).json() for job_id in batch["job_ids"]]
    assert [job["upload_filename"] for job in jobs] == ["red.png", "green.png", "blue.png"]
    first = Image.open(io.BytesIO(client.get(jobs[0]["result_url"], headers=alice).content))
    assert first.convert("RGB").getpixel((0, 0)) == (0, 255, 255)  # red, inverted


def test_batches_are_listed_newest_first(
    client: TestClient, alice: Headers, paused: Callable[[], None]
) -> None:
    body = {"source": {"count": 2, "width": 8, "height": 8}, "pipeline": [{"op": "invert"}]}
    ids = [client.post(BATCHES, headers=alice, json=body).json()["id"] for _ in range(3)]

    listed = client.get(BATCHES, headers=alice, params={"limit": 2}).json()

    assert listed["count"] == 3
    assert [batch["id"] for batch in listed["data"]] == [ids[2], ids[1]]
    assert listed["data"][0]["progress"]["queued"] == 2


def small_batch(client: TestClient, headers: Headers, count: int = 2) -> dict[str, Any]:
    body = {"source": {"count": count, "width": 8, "height": 8}, "pipeline": [{"op": "invert"}]}
    response = client.post(BATCHES, headers=headers, json=body)
    assert response.status_code == 202, response.text
    batch: dict[str, Any] = response.json()
    return batch


@contextmanager
def recorded_statements(engine: Engine) -> Iterator[list[str]]:
    """Every SQL statement the engine sends while the block runs."""
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(args[2])  # (connection, cursor, statement, ...)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_listing_batches_takes_as_many_queries_for_six_as_for_two(
    client: TestClient, alice: Headers, paused: Callable[[], None]
) -> None:
    engine = client.app.state.engine  # type: ignore[attr-defined]
    queries: dict[int, int] = {}
    for total in (2, 6):
        while client.get(BATCHES, headers=alice).json()["count"] < total:
            small_batch(client, alice, count=3)
        with recorded_statements(engine) as statements:
            listed = client.get(BATCHES, headers=alice, params={"limit": 100}).json()
        assert len(listed["data"]) == total
        queries[total] = len(statements)

    assert queries[6] == queries[2]
    # The same figures as each batch's own page.
    for batch in listed["data"]:
        assert batch == client.get(f"{BATCHES}/{batch['id']}", headers=alice).json()
        assert batch["progress"]["queued"] == batch["progress"]["total"] == 3


def test_deleting_a_queued_batch_cancels_it_and_its_jobs_which_never_run(
    client: TestClient, alice: Headers, paused: Callable[[], None], settings: Settings
) -> None:
    files = [("images", (f"{index}.png", png(), "image/png")) for index in range(2)]
    queued = client.post(
        BATCHES, headers=alice, files=files, data={"pipeline": '[{"op": "invert"}]'}
    ).json()
    later = small_batch(client, alice)
    assert len(stored_files(settings)) == 2

    response = client.delete(f"{BATCHES}/{queued['id']}", headers=alice)
    paused()
    wait_until_finished(client, f"{BATCHES}/{later['id']}", alice)

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert response.json()["progress"]["cancelled"] == 2
    after = client.get(f"{BATCHES}/{queued['id']}", headers=alice).json()
    assert after["status"] == "cancelled"
    assert after["started_at"] is None
    for job_id in queued["job_ids"]:
        job = client.get(f"{JOBS}/{job_id}", headers=alice).json()
        assert (job["status"], job["started_at"]) == ("cancelled", None)
    # The cancelled uploads are gone; the later batch's outputs remain.
    assert [path.parent.name for path in stored_files(settings)] == ["outputs", "outputs"]


def test_deleting_a_running_batch_is_409(
    client: TestClient, alice: Headers, paused: Callable[[], None]
) -> None:
    batch = small_batch(client, alice)
    state = client.app.state  # type: ignore[attr-defined]
    claim_next(state.engine, state.executor.boot_id, 30)  # running, as the executor marks it

    response = client.delete(f"{BATCHES}/{batch['id']}", headers=alice)

    assert response.status_code == 409
    assert response.json()["detail"] == (
        f"batch {batch['id']} is running; it can be deleted once it finishes"
    )
    assert client.get(f"{BATCHES}/{batch['id']}", headers=alice).json()["status"] == "running"


def test_deleting_a_finished_batch_removes_it_its_jobs_and_their_files(
    client: TestClient, alice: Headers, settings: Settings
) -> None:
    files = [("images", (f"{index}.png", png(), "image/png")) for index in range(2)]
    location = client.post(
        BATCHES, headers=alice, files=files, data={"pipeline": '[{"op": "invert"}]'}
    ).headers["Location"]
    batch = wait_until_finished(client, location, alice)
    assert len(stored_files(settings)) == 4  # two uploads, two outputs

    response = client.delete(location, headers=alice)

    assert response.status_code == 204
    assert client.get(location, headers=alice).status_code == 404
    for job_id in batch["job_ids"]:
        assert client.get(f"{JOBS}/{job_id}", headers=alice).status_code == 404
    assert stored_files(settings) == []


def test_many_threads_submitting_at_once_never_see_database_is_locked(
    client: TestClient,
    alice: Headers,
    paused: Callable[[], None],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # One user, 64 at once: over the default rate limit, which is not what this is about.
    monkeypatch.setattr(settings, "SUBMISSION_RATE_LIMIT", "1000/second")

    def submit(index: int) -> int:
        body = synthetic_job(source={"width": 8, "height": 8, "seed": index})
        return client.post(JOBS, headers=alice, json=body).status_code

    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(submit, range(64)))

    assert statuses == [202] * 64
    assert client.get(JOBS, headers=alice).json()["count"] == 64


def test_64_bit_figures_are_stored_whole(client: TestClient, alice: Headers) -> None:
    """Seeds go up to 2**63 - 1 and a process tree's peak RSS passes 2 GiB: PostgreSQL's
    INTEGER would refuse them, so these columns are BIGINT there."""
    response = client.post(
        JOBS, headers=alice, json=synthetic_job(source={"width": 8, "height": 8, "seed": 2**63 - 1})
    )
    assert response.status_code == 202, response.text
    done = wait_until_finished(client, response.headers["Location"], alice)
    assert done["status"] == "succeeded", done["error"]
    assert done["seed"] == 2**63 - 1

    engine = client.app.state.engine  # type: ignore[attr-defined]
    with Session(engine) as session:
        job = session.get(Job, uuid.UUID(done["id"]))
        assert job is not None
        job.peak_rss_bytes = job.output_bytes = 5 * 2**30
        job.ctx_voluntary = job.ctx_involuntary = 2**40
        session.add(job)
        session.commit()
    assert client.get(response.headers["Location"], headers=alice).json()["peak_rss_bytes"] == (
        5 * 2**30
    )
