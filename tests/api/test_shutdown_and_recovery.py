"""Stopping and crashing lose nothing: drained work resumes, work a dead process left running is
requeued (or failed after too many attempts), submissions are refused with 503 while draining.

The real signals and a real `kill -9` are in tests/e2e/test_restarts.py; these drive the same
code in-process, where each step can be observed.
"""

import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from nogil_bench.benchmarks import runs as benchmark_runs
from nogil_bench.benchmarks.models import Benchmark
from nogil_bench.benchmarks.runs import measure
from nogil_bench.core.config import Settings
from nogil_bench.core.models import QueuedWork, Status
from nogil_bench.jobs import runs as job_runs
from nogil_bench.jobs.models import Batch, Job
from nogil_bench.main import create_app
from nogil_bench.runners import BaseRunner
from nogil_bench.runners.timing import Outcome
from nogil_bench.work.executor import Executor
from nogil_bench.workloads.images import ImageJob, run_jobs_captured
from tests.utils.api import (
    BATCHES,
    BENCHMARKS,
    JOBS,
    PURE_PIPELINE,
    Headers,
    benchmark,
    expected_png,
    synthetic_job,
    wait_until_finished,
)
from tests.utils.waiting import wait_until

type Restart = Callable[[], TestClient]

DEAD_BOOT = uuid.UUID("0190a000-0000-7000-8000-00000000dead")


def row_id(location: str) -> uuid.UUID:
    return uuid.UUID(location.rsplit("/", 1)[1])


def leave_running[T: QueuedWork](
    client: TestClient, table: type[T], location: str, *, attempts: int = 1
) -> None:
    """Marks the row as a killed process would have left it: running, by a boot now gone."""
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        row = session.get(table, row_id(location))
        assert row is not None
        row.status, row.boot_id, row.attempts = Status.RUNNING, DEAD_BOOT, attempts
        session.add(row)
        session.commit()


def read_row[T: QueuedWork](client: TestClient, table: type[T], location: str) -> T:
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        row = session.get(table, row_id(location))
        assert row is not None
        return row


@pytest.fixture
def restart(settings: Settings) -> Iterator[Restart]:
    """Starts the service again on the same data directory, as a restart after a crash would."""
    clients: list[TestClient] = []

    def start() -> TestClient:
        client = TestClient(create_app(settings))
        client.__enter__()
        clients.append(client)
        return client

    yield start
    for client in clients:
        client.__exit__(None, None, None)


def test_a_job_a_dead_process_left_running_is_requeued_at_start_and_runs(
    client: TestClient, alice: Headers, paused: Callable[[], None], restart: Restart
) -> None:
    location = client.post(JOBS, headers=alice, json=synthetic_job()).headers["Location"]
    leave_running(client, Job, location)

    restarted = restart()

    job = wait_until_finished(restarted, location, alice)
    assert job["status"] == "succeeded"
    assert job["attempts"] == 2, "the interrupted run and the one that finished"
    output = restarted.get(f"{location}/result", headers=alice).content
    assert output == expected_png(48, 32, 7, PURE_PIPELINE)


def test_work_that_keeps_dying_fails_after_max_attempts_with_the_reason(
    client: TestClient,
    alice: Headers,
    paused: Callable[[], None],
    restart: Restart,
    settings: Settings,
) -> None:
    location = client.post(JOBS, headers=alice, json=synthetic_job()).headers["Location"]
    leave_running(client, Job, location, attempts=settings.MAX_ATTEMPTS)

    job = restart().get(location, headers=alice).json()

    assert job["status"] == "failed"
    assert str(DEAD_BOOT) in job["error"]
    assert f"attempt {settings.MAX_ATTEMPTS} of {settings.MAX_ATTEMPTS}" in job["error"]
    assert job["attempts"] == settings.MAX_ATTEMPTS


def test_a_batch_cut_mid_chunk_resumes_and_every_job_ends_with_the_right_output(
    client: TestClient, alice: Headers, paused: Callable[[], None], restart: Restart
) -> None:
    body = {"source": {"count": 6, "width": 16, "height": 12, "seed": 3}, "pipeline": PURE_PIPELINE}
    location = client.post(BATCHES, headers=alice, json=body).headers["Location"]
    listed = client.get(JOBS, headers=alice, params={"batch_id": str(row_id(location))})
    jobs = listed.json()["data"]
    # Two of its jobs were running when the process died; the others had not started.
    by_seed = {job["seed"]: f"{JOBS}/{job['id']}" for job in jobs}
    leave_running(client, Batch, location)
    for seed in (5, 6):
        leave_running(client, Job, by_seed[seed])

    restarted = restart()

    assert wait_until_finished(restarted, location, alice)["status"] == "succeeded"
    for seed, job_location in by_seed.items():
        job = restarted.get(job_location, headers=alice).json()
        assert job["status"] == "succeeded"
        assert job["attempts"] == (2 if seed in (5, 6) else 1)
        output = restarted.get(f"{job_location}/result", headers=alice).content
        assert output == expected_png(16, 12, seed, PURE_PIPELINE), f"seed {seed}"


def test_a_benchmark_a_dead_process_left_running_runs_again(
    client: TestClient, alice: Headers, paused: Callable[[], None], restart: Restart
) -> None:
    location = client.post(BENCHMARKS, headers=alice, json=benchmark(runners=["threads"])).headers[
        "Location"
    ]
    leave_running(client, Benchmark, location)

    restarted = restart()

    assert wait_until_finished(restarted, location, alice)["status"] == "succeeded"
    ran = read_row(client, Benchmark, location)
    assert (ran.attempts, ran.boot_id) == (2, restarted.app.state.executor.boot_id)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("url", "body"),
    [
        (JOBS, synthetic_job()),
        (BATCHES, {"source": {"count": 2, "width": 8, "height": 8}, "pipeline": PURE_PIPELINE}),
        (BENCHMARKS, benchmark()),
    ],
)
def test_while_draining_submissions_are_503_with_retry_after_and_not_stored(
    client: TestClient, alice: Headers, settings: Settings, url: str, body: dict[str, Any]
) -> None:
    client.app.state.draining = True  # type: ignore[attr-defined]

    response = client.post(url, headers=alice, json=body)

    assert response.status_code == 503
    assert response.headers["Retry-After"] == str(settings.SHUTDOWN_GRACE_SECONDS)
    assert "shutting down" in response.json()["detail"]
    assert client.get(url, headers=alice).json()["count"] == 0
    assert client.get("/health/ready").status_code == 503


def wait_for_status(client: TestClient, url: str, headers: Headers, status: str) -> None:
    wait_until(
        lambda: client.get(url, headers=headers).json()["status"] == status, f"{url} to be {status}"
    )


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """Holds the executor's next chunk of images in its pool until the event is set, so a test
    can act while work is surely running."""
    release = threading.Event()

    def run_held(runner: BaseRunner, jobs: Sequence[ImageJob]) -> list[Outcome[bytes]]:
        assert release.wait(timeout=60), "the test never released the chunk"
        return run_jobs_captured(runner, jobs)

    monkeypatch.setattr(job_runs, "run_jobs_captured", run_held)
    yield release
    release.set()


def test_a_drain_lets_the_running_chunk_finish_and_leaves_the_rest_queued(
    client: TestClient, alice: Headers, settings: Settings, held: threading.Event
) -> None:
    executor: Executor = client.app.state.executor  # type: ignore[attr-defined]
    # Sequential: chunks of 4 images.
    body = {
        "source": {"count": 12, "width": 16, "height": 16},
        "pipeline": PURE_PIPELINE,
        "runner": "sequential",
        "workers": 1,
    }
    location = client.post(BATCHES, headers=alice, json=body).headers["Location"]
    wait_until(
        lambda: client.get(location, headers=alice).json()["progress"]["running"] >= 4,
        "the first chunk to start",
    )

    with ThreadPoolExecutor(1) as background:
        drained = background.submit(executor.drain, grace_s=60)
        wait_until(lambda: executor.stopping, "the drain to stop the executor")
        held.set()
        assert drained.result() is True

    batch = client.get(location, headers=alice).json()
    progress = batch["progress"]
    assert batch["status"] == "queued"
    assert (progress["succeeded"], progress["queued"], progress["total"]) == (4, 8, 12), (
        "the running chunk finished; the rest waits for the next start"
    )
    assert read_row(client, Batch, location).attempts == 0, "a drain is not the batch's fault"

    resumed = Executor(executor.engine, settings, uuid.uuid7())
    resumed.start()
    try:
        assert wait_until_finished(client, location, alice)["status"] == "succeeded"
    finally:
        resumed.stop()


def test_at_the_grace_deadline_running_work_goes_back_to_the_queue_unharmed(
    client: TestClient, alice: Headers, settings: Settings, held: threading.Event
) -> None:
    executor: Executor = client.app.state.executor  # type: ignore[attr-defined]
    location = client.post(JOBS, headers=alice, json=synthetic_job()).headers["Location"]
    wait_for_status(client, location, alice, "running")

    assert executor.drain(grace_s=0.1) is False

    job = client.get(location, headers=alice).json()
    assert (job["status"], job["attempts"], job["started_at"]) == ("queued", 0, None)
    held.set()
    assert executor.stop(timeout_s=60), "the cut-short run still ends on its own"
    # Its late outcome was dropped, not recorded over the requeued row.
    assert client.get(location, headers=alice).json()["status"] == "queued"
    assert list(settings.outputs_dir.glob("*.png")) == []
    assert executor.drain(grace_s=60) is False, "drain answers once, then repeats its result"


def test_a_benchmark_put_back_at_the_deadline_keeps_the_attempts_it_had(
    client: TestClient,
    alice: Headers,
    paused: Callable[[], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    entered, release = threading.Event(), threading.Event()

    def held_measure(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        assert release.wait(timeout=60), "the test never released the benchmark"
        return measure(*args, **kwargs)

    monkeypatch.setattr(benchmark_runs, "measure", held_measure)
    body = benchmark(runners=["threads"], workers=[1])
    location = client.post(BENCHMARKS, headers=alice, json=body).headers["Location"]
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        row = session.get(Benchmark, row_id(location))
        assert row is not None
        row.attempts = 1  # a crash cut its first run short
        session.add(row)
        session.commit()
    paused()
    executor: Executor = client.app.state.executor  # type: ignore[attr-defined]
    # Measuring, not merely marked running: a stop before the first configuration would
    # requeue it without a deadline.
    assert entered.wait(timeout=60), "the benchmark never started measuring"

    assert executor.drain(grace_s=0.1) is False
    release.set()
    assert executor.stop(timeout_s=60)

    put_back = read_row(client, Benchmark, location)
    assert (put_back.status, put_back.attempts) == (Status.QUEUED, 1), (
        "the run the drain cut short is not counted, and not uncounted twice"
    )
