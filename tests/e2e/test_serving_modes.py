"""End to end: `nogil-bench serve --server gunicorn|granian --workers 2` serves as the default
uvicorn process does (tests/e2e/test_restarts.py covers that one).

- Gunicorn runs two uvicorn worker processes, Granian two worker threads of one process; each
  answers readiness, keeps the GIL off inside a request, and runs a submitted job.
- SIGTERM drains every app (each Gunicorn worker's, Granian's one) as `--server uvicorn` does:
  submissions get 503 with Retry-After and readiness 503 while running work finishes (or, at
  the grace deadline, goes back to the queue), then the process exits 0, and no job is lost.

One server per mode for the whole module: the SIGTERM test, which ends it, comes last. The
Granian stop under load starts servers of its own.
"""

import contextlib
import ctypes
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import psutil
import pytest

from tests.utils.api import PURE_PIPELINE
from tests.utils.live_client import SECRET_KEY, Client
from tests.utils.live_server import LiveServer
from tests.utils.waiting import wait_until

WORKERS = 2
GRACE_S = 10
# What the GIL-off build writes at each start of the app: once per process.
GIL_OFF_AT_START = "GIL enabled: False"


@pytest.fixture(scope="module", params=["gunicorn", "granian"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    live = LiveServer(
        tmp_path_factory.mktemp(request.param),
        server=request.param,
        workers=WORKERS,
        SECRET_KEY=SECRET_KEY,
        SHUTDOWN_GRACE_SECONDS=str(GRACE_S),
        EXECUTOR_POLL_SECONDS="0.2",
    )
    live.start()
    yield live
    live.kill_all()  # whatever a failed test left running, workers included


@pytest.fixture(scope="module")
def client(server: LiveServer) -> Client:
    return Client(server)


def job_statuses(server: LiveServer) -> dict[str, tuple[str, int]]:
    """Each job's (status, attempts), read from the database file itself."""
    with sqlite3.connect(server.workdir / "data" / "nogil_bench.db") as database:
        rows = database.execute("SELECT id, status, attempts FROM job").fetchall()
    return {job_id: (status.lower(), attempts) for job_id, status, attempts in rows}


def test_it_runs_two_workers_each_starting_the_app_once_with_the_gil_off(
    server: LiveServer,
) -> None:
    processes = psutil.Process(server.pid).children()
    if server.server == "gunicorn":
        assert len(processes) == WORKERS, "one arbiter, two worker processes"
        starts = WORKERS
    else:
        assert processes == [], "Granian's workers are threads of the one process"
        # Ready once the first worker serves: the second may log its spawn a moment later.
        wait_until(
            lambda: f"Spawning worker-{WORKERS}" in server.output(), "every worker thread spawned"
        )
        starts = 1  # one app, shared by the worker threads
    wait_until(lambda: server.output().count(GIL_OFF_AT_START) == starts, "every app started")
    assert "GIL enabled: True" not in server.output()


def test_readiness_answers_200_and_a_request_sees_the_gil_off(server: LiveServer) -> None:
    ready = httpx2.get(f"{server.url}/health/ready", timeout=5)
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"database": "ok", "executor": "ok", "draining": "ok"}
    # Several requests, so that more than one worker is likely to answer one.
    for _ in range(8):
        health = httpx2.get(f"{server.url}/health", timeout=5).json()
        assert health["free_threaded"] is True
        assert health["gil_enabled"] is False


def test_a_submitted_job_succeeds(client: Client) -> None:
    tiny_job = {"source": {"width": 8, "height": 8}, "pipeline": PURE_PIPELINE}
    submitted = client.post("/jobs", json=tiny_job)
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]

    def finished() -> dict[str, Any] | None:
        job: dict[str, Any] = client.get(f"/jobs/{job_id}").json()
        return job if job["status"] in {"succeeded", "failed"} else None

    job = wait_until(finished, "the job to finish", timeout_s=30)
    assert job is not None
    assert job["status"] == "succeeded", job
    assert client.get(f"/jobs/{job_id}/result").status_code == 200


def test_sigterm_drains_every_worker_refuses_new_work_with_503_and_exits_0(
    server: LiveServer, client: Client
) -> None:
    # One chunk of 8 images, a second or more of work: the drain waits for it.
    batch_id = client.submit_batch(count=8, side=320, runner="threads")
    client.wait_for(batch_id, lambda batch: batch["progress"]["running"] > 0, "the chunk running")
    before = job_statuses(server)

    started = time.monotonic()
    server.send(signal.SIGTERM)

    refused = client.refused_by_the_drain()
    assert refused.status_code == 503, refused.text
    assert int(refused.headers["Retry-After"]) > 0
    ready = httpx2.get(f"{server.url}/health/ready", timeout=5)
    assert ready.status_code == 503
    assert ready.json()["checks"]["draining"] != "ok"
    assert server.wait(timeout_s=GRACE_S + 10) == 0, server.output()
    # The drain's deadline, the in-flight requests' last second, and the app's shutdown.
    assert time.monotonic() - started < GRACE_S + 5, "it outlived the grace period"

    output = server.output()
    apps = WORKERS if server.server == "gunicorn" else 1  # each drains its own executor
    for step in ("SIGTERM received: draining", "closing the listener"):
        assert output.count(step) == apps, step
    after = job_statuses(server)
    assert after.keys() == before.keys(), "the refused job was not stored, none was lost"
    # Finished within the grace period, or put back in the queue at its deadline.
    assert {status for status, _ in after.values()} <= {"succeeded", "queued"}
    assert {attempts for status, attempts in after.values() if status == "queued"} <= {0}


SUBMITTERS = 16
LOAD_GRACE_S = 3
# The executor's own thread (its name as the kernel keeps it: 15 characters).
EXECUTOR_THREAD = "nogil-bench-exe"


def send_to_thread(pid: int, name: str, stop_signal: signal.Signals) -> None:
    """SIGTERM to one thread of the process, not the main one: what the kernel may do with a
    signal sent to the process (to a thread that was creating a thread, say)."""

    def the_one_so_named() -> int | None:
        # A thread that `name` has just started carries its name too until it renames itself
        # (Linux copies the creator's name): read again until only one thread has it.
        tids = []
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(FileNotFoundError):  # a short-lived thread that ended
                if (task / "comm").read_text().strip() == name:
                    tids.append(int(task.name))
        return tids[0] if len(tids) == 1 else None

    tid = wait_until(the_one_so_named, f"exactly one thread named {name}", timeout_s=10)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.tgkill(pid, tid, stop_signal) != 0:
        raise OSError(ctypes.get_errno(), f"tgkill({pid}, {tid}, {stop_signal.name})")


@pytest.mark.parametrize(
    "to",
    [
        pytest.param(EXECUTOR_THREAD, id="to-another-thread"),
        pytest.param(None, id="to-the-process-1"),
        pytest.param(None, id="to-the-process-2"),
    ],
)
def test_granian_exits_0_on_sigterm_with_submissions_in_flight(
    to: str | None, tmp_path: Path
) -> None:
    """Granian's main thread waited for the stop signal without a timeout: when the kernel
    delivered SIGTERM to another thread (under load, about one stop in four), the Python
    handler never ran, nothing was logged, and the process never exited. Sent to another
    thread, it always was; sent to the process, it may be."""
    server = LiveServer(
        tmp_path,
        server="granian",
        SECRET_KEY=SECRET_KEY,
        SHUTDOWN_GRACE_SECONDS=str(LOAD_GRACE_S),
        EXECUTOR_POLL_SECONDS="0.2",
    )
    server.start()
    client = Client(server)
    tiny_job = {"source": {"width": 8, "height": 8}, "pipeline": [{"op": "invert"}]}
    accepted: list[int] = []
    done = threading.Event()

    def submit() -> None:
        with httpx2.Client(base_url=f"{server.url}/api/v1", headers=client.headers) as http:
            while not done.is_set():
                try:
                    status = http.post("/jobs", json=tiny_job, timeout=10).status_code
                except httpx2.TransportError:
                    return  # the server has stopped
                if status == 202:
                    accepted.append(status)

    submitters = [threading.Thread(target=submit) for _ in range(SUBMITTERS)]
    try:
        for submitter in submitters:
            submitter.start()
        wait_until(lambda: len(accepted) >= SUBMITTERS, "submissions accepted", timeout_s=30)
        started = time.monotonic()
        if to is None:
            server.send(signal.SIGTERM)
        else:
            send_to_thread(server.pid, to, signal.SIGTERM)
        status = server.wait(timeout_s=LOAD_GRACE_S + 10)
        stopped_s = time.monotonic() - started
    finally:
        done.set()
        for submitter in submitters:
            submitter.join()
        server.kill_all()
    assert status == 0, server.output()
    assert stopped_s < LOAD_GRACE_S + 5, "it outlived the grace period"
    assert "SIGTERM received: draining" in server.output()
