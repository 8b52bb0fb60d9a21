"""End to end with a broker: the API and two `nogil-bench worker` processes, each with its own
data directory, on one PostgreSQL database and one broker (Redis, then RabbitMQ); uploads and
outputs live in the database (FILE_STORE=database), as they must when workers share no disk."""

import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from nogil_bench.core.config import Settings
from nogil_bench.main import create_app
from tests.utils.api import PURE_PIPELINE, expected_png, register_and_login, wait_until_finished
from tests.utils.redis_server import WorkerProcess

IMAGES = 40
SIDE = 128  # ~0.1-0.3 s per image here: a chunk of 4 runs long enough to be killed mid-way
WAIT_S = 180.0
SETTLE_S = 0.3


@pytest.fixture
def cluster_settings(tmp_path: Path, postgres_url: str, any_broker_url: str) -> Settings:
    return Settings(  # type: ignore[call-arg]
        DATA_DIR=tmp_path / "api",
        DATABASE_URL=postgres_url,
        BROKER_URL=any_broker_url,
        FILE_STORE="database",
        LEASE_SECONDS=3.0,
        EXECUTOR_POLL_SECONDS=0.2,
        _env_file=None,
    )


@pytest.fixture
def api(cluster_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(cluster_settings)) as client:
        yield client


def start_worker(settings: Settings, workdir: Path, name: str) -> WorkerProcess:
    assert settings.BROKER_URL is not None
    worker = WorkerProcess(
        workdir,  # its own data directory: nothing on disk is shared with the API
        DATABASE_URL=settings.database_url,
        BROKER_URL=settings.BROKER_URL,
        FILE_STORE="database",
        LEASE_SECONDS=str(settings.LEASE_SECONDS),
        WORKER_NAME=name,
    )
    worker.start()
    return worker


def test_a_batch_spreads_over_two_workers_and_survives_kill_9_of_one_exactly_once(
    api: TestClient, cluster_settings: Settings, tmp_path: Path
) -> None:
    workers = [
        start_worker(cluster_settings, tmp_path / name, name) for name in ("worker-a", "worker-b")
    ]
    try:
        alice = register_and_login(api, "alice@example.com")

        def submit_batch() -> dict[str, Any]:
            submitted: dict[str, Any] = api.post(
                "/api/v1/batches",
                headers=alice,
                json={
                    "source": {"width": SIDE, "height": SIDE, "seed": 11, "count": IMAGES},
                    "pipeline": PURE_PIPELINE,
                    "runner": "threads",
                    "workers": 1,  # chunks of 4 jobs: 10 tasks for two workers
                },
            ).json()
            return submitted

        batch = submit_batch()

        def batch_jobs() -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = api.get(
                "/api/v1/jobs", headers=alice, params={"batch_id": batch["id"], "limit": 100}
            ).json()["data"]
            return found

        def statuses(jobs: list[dict[str, Any]]) -> Counter[tuple[str, str | None]]:
            return Counter((job["status"], job["worker"]) for job in jobs)

        def on(worker: str, status: str, jobs: list[dict[str, Any]]) -> set[str]:
            return {job["id"] for job in jobs if (job["worker"], job["status"]) == (worker, status)}

        # Both workers at work and worker-b past its first chunk: freeze it; if it holds a
        # chunk (not between two), kill -9 it there, mid-chunk; else let it go on and retry.
        deadline = time.monotonic() + WAIT_S
        while True:
            jobs = batch_jobs()
            busy = {worker for worker in ("worker-a", "worker-b") if on(worker, "running", jobs)}
            if busy == {"worker-a", "worker-b"} and on("worker-b", "succeeded", jobs):
                workers[1].freeze()
                time.sleep(SETTLE_S)  # a write it had already sent lands meanwhile
                if stranded := on("worker-b", "running", batch_jobs()):
                    break
                workers[1].thaw()
            assert time.monotonic() < deadline, (
                f"worker-b was never caught mid-chunk: {sorted(statuses(jobs).items())}"
            )
            if not statuses(jobs).keys() & {("queued", None), ("running", "worker-b")}:
                # On a loaded host the batch can end before worker-b is caught: another one.
                batch = submit_batch()
            time.sleep(0.02)
        workers[1].kill()
        path = f"/api/v1/batches/{batch['id']}"
        # What it was running stays running (its lease runs out only in LEASE_SECONDS).
        assert on("worker-b", "running", batch_jobs()) == stranded

        body = wait_until_finished(api, path, alice)
    finally:
        for worker in workers:
            worker.stop()

    assert body["status"] == "succeeded", body
    jobs = batch_jobs()
    assert len(jobs) == IMAGES
    assert all(job["status"] == "succeeded" for job in jobs)
    # The killed worker's unfinished jobs ran again, on the survivor: a second attempt each;
    # every other job ran once.
    rerun = [job for job in jobs if job["attempts"] == 2]
    assert {job["id"] for job in rerun} == stranded
    assert {job["attempts"] for job in jobs} == {1, 2}
    assert {job["worker"] for job in rerun} == {"worker-a"}
    shares = {share["worker"]: share["jobs"] for share in body["ran_on"]}
    assert set(shares) == {"worker-a", "worker-b"}
    assert sum(shares.values()) == IMAGES
    with ThreadPoolExecutor() as pool:
        expected = list(
            pool.map(lambda job: expected_png(SIDE, SIDE, job["seed"], PURE_PIPELINE), jobs)
        )
    for job, want in zip(jobs, expected, strict=True):
        output = api.get(f"/api/v1/jobs/{job['id']}/result", headers=alice).content
        assert output == want, f"job {job['id']} (seed {job['seed']}): wrong output"
    assert "ready." in workers[0].output()
