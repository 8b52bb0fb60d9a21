"""End to end: a real `nogil-bench serve` is stopped or killed mid-batch, started again, and
every job still ends with the right output.

- A stop signal (SIGTERM to the server, or SIGINT to its whole process group as Ctrl+C sends
  it) drains: new submissions get 503 with Retry-After, the running chunk finishes, the process
  exits 0, the rest of the batch runs after the restart.
- When the grace period ends first, the running jobs go back to the queue and the process still
  exits 0 at once.
- `kill -9` leaves jobs running; once their lease runs out, the next start requeues them as
  work of a dead boot.
"""

import signal
import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.utils.api import PURE_PIPELINE, expected_png
from tests.utils.live_client import SECRET_KEY, Client, sha256
from tests.utils.live_server import LiveServer


def chunk_running(batch: dict[str, Any]) -> bool:
    return bool(batch["progress"]["running"])


def job_rows(server: LiveServer) -> dict[str, tuple[str, int, str | None]]:
    """Each job's (status, attempts, boot_id), read from the database file itself."""
    with sqlite3.connect(server.workdir / "data" / "nogil_bench.db") as database:
        rows = database.execute("SELECT id, status, attempts, boot_id FROM job").fetchall()
    # SQLAlchemy stores an enum by its name: QUEUED for Status.QUEUED.
    return {
        job_id: (status.lower(), attempts, boot_id) for job_id, status, attempts, boot_id in rows
    }


def assert_every_job_succeeded_with_the_right_output(
    client: Client, batch_id: str, side: int
) -> list[dict[str, Any]]:
    batch = client.wait_for(
        batch_id, lambda batch: batch["status"] in {"succeeded", "failed"}, "finished"
    )
    assert batch["status"] == "succeeded", batch
    jobs: list[dict[str, Any]] = client.get(
        "/jobs", params={"batch_id": batch_id, "limit": 100}
    ).json()["data"]
    assert len(jobs) == batch["progress"]["total"]
    with ThreadPoolExecutor() as pool:
        expected = dict(
            zip(
                [job["seed"] for job in jobs],
                pool.map(lambda job: expected_png(side, side, job["seed"], PURE_PIPELINE), jobs),
                strict=True,
            )
        )
    for job in jobs:
        assert job["status"] == "succeeded", job
        output = client.get(f"/jobs/{job['id']}/result").content
        digest, expected_digest = (sha256(data) for data in (output, expected[job["seed"]]))
        assert digest == expected_digest, f"job {job['id']} (seed {job['seed']}): wrong output"
    return jobs


@pytest.fixture
def server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    # Settings (name: text), and `server` to name one other than `serve`'s default.
    options: dict[str, Any] = getattr(request, "param", {})
    live = LiveServer(tmp_path, SECRET_KEY=SECRET_KEY, **options)
    live.start()
    yield live
    live.kill_all()  # whatever a failed test left running, pool workers included


@pytest.mark.parametrize(
    ("stop_signal", "to_group", "runner", "server"),
    [
        (signal.SIGTERM, False, "threads", {}),  # serve's default: Granian, GIL off
        # Ctrl+C: the pool's workers get it too. On uvicorn, the default when the GIL is on.
        (signal.SIGINT, True, "processes", {"server": "uvicorn"}),
    ],
    ids=["SIGTERM-threads-default", "Ctrl+C-processes-uvicorn"],
    indirect=["server"],
)
def test_a_stop_signal_mid_batch_drains_exits_0_and_the_batch_completes_after_a_restart(
    server: LiveServer, stop_signal: signal.Signals, to_group: bool, runner: str
) -> None:
    client = Client(server)
    # Three chunks of 8 images (4 per worker), each chunk about a second: the 503 is checked
    # while the first one still runs.
    batch_id = client.submit_batch(count=24, side=320, runner=runner)
    client.wait_for(batch_id, chunk_running, "running")

    server.send(stop_signal, to_group=to_group)

    refused = client.refused_by_the_drain()
    assert refused.status_code == 503, refused.text
    assert int(refused.headers["Retry-After"]) > 0
    ready = httpx2.get(f"{server.url}/health/ready", timeout=5)
    assert ready.status_code == 503
    assert ready.json()["checks"]["draining"] != "ok"
    assert server.wait() == 0, server.output()
    output = server.output()
    for step in (f"{stop_signal.name} received: draining", "drained: no work left running"):
        assert step in output
    assert output.index("closing the listener") < output.index("nogil-bench stopped")
    statuses = [status for status, _, _ in job_rows(server).values()]
    assert "running" not in statuses
    assert statuses.count("succeeded") >= 8, "the chunk that was running finished"
    assert statuses.count("queued") > 0, "the rest of the batch waits for the next start"
    assert len(statuses) == 24, "the refused job was not stored"

    server.start()

    jobs = assert_every_job_succeeded_with_the_right_output(client, batch_id, side=320)
    assert {job["attempts"] for job in jobs} == {1}, "a drain costs no job an attempt"


@pytest.mark.parametrize("server", [{"SHUTDOWN_GRACE_SECONDS": "1"}], indirect=True)
def test_work_still_running_at_the_grace_deadline_goes_back_to_the_queue_and_runs_again(
    server: LiveServer,
) -> None:
    client = Client(server)
    # One chunk of two large images, each seconds of work in a worker process.
    batch_id = client.submit_batch(count=2, side=1536, runner="processes")
    client.wait_for(batch_id, lambda batch: batch["progress"]["running"] == 2, "both running")

    started = time.monotonic()
    server.send(signal.SIGTERM)
    assert server.wait() == 0, server.output()

    assert time.monotonic() - started < 10, "the process did not wait for the cut-short work"
    assert "grace period over: put back in the queue" in server.output()
    assert {row[:2] for row in job_rows(server).values()} == {("queued", 0)}

    server.start()

    jobs = assert_every_job_succeeded_with_the_right_output(client, batch_id, side=1536)
    assert {job["attempts"] for job in jobs} == {1}


# A short lease: the dead boot's jobs come back once it runs out after the restart.
@pytest.mark.parametrize("server", [{"LEASE_SECONDS": "3"}], indirect=True)
def test_after_kill_9_mid_batch_the_next_start_requeues_the_dead_boots_jobs(
    server: LiveServer,
) -> None:
    client = Client(server)
    batch_id = client.submit_batch(count=24, side=256, runner="threads")
    client.wait_for(
        batch_id,
        lambda batch: batch["progress"]["succeeded"] > 0 and chunk_running(batch),
        "in its second chunk",
    )

    server.kill()

    rows = job_rows(server).items()
    left_running = {job_id: boot for job_id, (status, _, boot) in rows if status == "running"}
    assert left_running, "the kill landed mid-chunk"
    (dead_boot,) = set(left_running.values())
    assert dead_boot is not None

    server.start()

    jobs = assert_every_job_succeeded_with_the_right_output(client, batch_id, side=256)
    assert "which died: requeued" in server.output()
    attempts = {job["id"].replace("-", ""): job["attempts"] for job in jobs}
    assert {attempts[job_id] for job_id in left_running} == {2}, "the killed run counts"
    assert sorted(attempts.values()).count(1) == 24 - len(left_running)
