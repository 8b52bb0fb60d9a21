"""Flower on the tests' Redis shows the service's workers and the tasks they ran, from the task
events they send; the GIL stays off in Flower's process and in the workers'."""

import os
import signal
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2
import pytest
from fastapi.testclient import TestClient

from nogil_bench.core import runtime
from nogil_bench.core.config import Settings
from nogil_bench.distributed.celery_app import work_queue
from nogil_bench.main import create_app
from tests.utils.api import register_and_login, synthetic_job, wait_until_finished
from tests.utils.database import sqlite_only
from tests.utils.live_server import NOGIL_BENCH, free_port
from tests.utils.redis_server import WorkerProcess
from tests.utils.waiting import wait_until
from tests.utils.workers import REFUSE_SHELL_MODULES

FLOWER_AUTH = ("operator", "a fine password")
WAIT_S = 30.0
STOP_TIMEOUT_S = 30.0


class FlowerProcess:
    """Flower for `broker_url` on a free port, with only the given settings, its output in a
    file; without Celery's shell dependencies, as in the production image."""

    def __init__(self, workdir: Path, broker_url: str) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "sitecustomize.py").write_text(REFUSE_SHELL_MODULES)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "flower.log"
        self.env = {
            key: value for key, value in os.environ.items() if not key.startswith("NOGIL_BENCH_")
        }
        self.env |= {
            "PYTHONPATH": str(workdir),
            "NOGIL_BENCH_DATA_DIR": str(workdir / "data"),
            "NOGIL_BENCH_LOG_FORMAT": "text",
            "NOGIL_BENCH_BROKER_URL": broker_url,
            "FLOWER_BASIC_AUTH": ":".join(FLOWER_AUTH),
        }
        self.workdir = workdir
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        command = [str(NOGIL_BENCH), "flower", "--port", str(self.port), "--address", "127.0.0.1"]
        with self.log_path.open("a") as log:
            self.process = subprocess.Popen(
                command,
                cwd=self.workdir,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
            )

    def wait_ready(self) -> None:
        def healthy() -> bool:
            assert self.process is not None
            assert self.process.poll() is None, f"Flower exited:\n{self.output()}"
            try:
                return httpx2.get(f"{self.url}/healthcheck").text == "OK"
            except httpx2.TransportError:
                return False

        wait_until(healthy, "Flower to answer /healthcheck", timeout_s=WAIT_S)

    def get(self, path: str, **params: str) -> Any:
        response = httpx2.get(f"{self.url}{path}", params=params, auth=FLOWER_AUTH, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    def output(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(STOP_TIMEOUT_S)


@pytest.fixture
def flower(broker_url: str, tmp_path: Path) -> Iterator[FlowerProcess]:
    process = FlowerProcess(tmp_path / "flower", broker_url)
    process.start()
    yield process
    assert process.stop() == 0, process.output()


# Two of the smallest jobs there are: what is measured here is Flower, not the work.
TINY_JOB = synthetic_job(source={"width": 8, "height": 8}, runner="sequential", workers=1)


@sqlite_only
def test_flower_lists_both_workers_and_the_tasks_they_ran_with_the_gil_off(
    settings: Settings, broker_url: str, flower: FlowerProcess, tmp_path: Path
) -> None:
    service = settings.model_copy(update={"BROKER_URL": broker_url, "EXECUTOR_POLL_SECONDS": 0.2})
    workers = [
        WorkerProcess(
            tmp_path / queue,
            ("worker", "--queues", queue),
            DATA_DIR=str(service.DATA_DIR),
            DATABASE_URL=service.database_url,
            BROKER_URL=broker_url,
            WORKER_NAME=f"{queue}-1",
            WORKER_TASK_EVENTS="true",  # as compose runs them, for Flower
        )
        for queue in ("jobs", "benchmarks")
    ]
    names = ["celery@jobs-1", "celery@benchmarks-1"]
    with TestClient(create_app(service)) as api, ThreadPoolExecutor(len(workers)) as each:
        # The service's start has made the schema: the workers, started together, find it.
        list(each.map(WorkerProcess.start, workers))
        try:
            flower.wait_ready()
            # Flower hears the workers' events (they announce themselves): it will hear the tasks'.
            wait_until(
                lambda: flower.get("/api/workers", status="1") == dict.fromkeys(names, True),
                "Flower to hear from both workers",
                timeout_s=WAIT_S,
            )
            alice = register_and_login(api, "alice@example.com")
            posted = [
                api.post("/api/v1/jobs", headers=alice, json=TINY_JOB).json() for _ in range(2)
            ]
            jobs = [wait_until_finished(api, f"/api/v1/jobs/{job['id']}", alice) for job in posted]

            def both_succeeded() -> dict[str, Any]:
                tasks: dict[str, Any] = flower.get("/api/tasks")
                done = [task for task in tasks.values() if task["state"] == "SUCCESS"]
                return tasks if len(done) == 2 else {}

            tasks = wait_until(both_succeeded, "Flower to see both tasks succeed", timeout_s=WAIT_S)

            def both_listed() -> dict[str, Any]:
                # A refresh joins an inspection under way, which may have started before a
                # worker answered: the next one asks again.
                workers: dict[str, Any] = flower.get("/api/workers", refresh="1")
                answered = [name for name in names if "active_queues" in workers.get(name, {})]
                return workers if answered == names else {}

            listed = wait_until(both_listed, "Flower to list both workers", timeout_s=WAIT_S)
            unauthenticated = httpx2.get(f"{flower.url}/api/workers")
            shutdown = httpx2.post(
                f"{flower.url}/api/worker/shutdown/celery@jobs-1", auth=FLOWER_AUTH
            )
            flower_metrics = httpx2.get(f"{flower.url}/metrics").text
            worker_metrics = [worker.metrics() for worker in workers]
        finally:
            exits = list(each.map(WorkerProcess.stop, workers))

    assert [(job["status"], job["worker"]) for job in jobs] == [("succeeded", "jobs-1")] * 2
    assert sorted(
        (task["name"], task["state"], task["worker"], task["args"]) for task in tasks.values()
    ) == sorted(
        ("nogil_bench.run", "SUCCESS", "celery@jobs-1", f"['job', '{job['id']}']") for job in jobs
    )
    consumed = {name: {queue["name"] for queue in listed[name]["active_queues"]} for name in names}
    assert work_queue("jobs") in consumed["celery@jobs-1"] - consumed["celery@benchmarks-1"]
    assert work_queue("benchmarks") in consumed["celery@benchmarks-1"] - consumed["celery@jobs-1"]
    # The API takes Flower's authentication, and is read-only: no remote control.
    assert unauthenticated.status_code == 401
    assert shutdown.status_code == 403, shutdown.text
    # The GIL in Flower's process, at its start and while it serves (read at the scrape), and
    # in the workers'.
    gil = runtime.is_gil_enabled()
    assert f"GIL enabled: {gil}; read-only: True" in flower.output()
    assert f"nogil_bench_gil_enabled {float(gil)}" in flower_metrics
    for served in worker_metrics:
        assert f"nogil_bench_gil_enabled {float(gil)}" in served
    assert [job["gil_enabled"] for job in jobs] == [gil, gil]
    assert exits == [0, 0]
