"""With NOGIL_BENCH_BROKER_URL set, the service hands its queue to Celery on a real Redis, and
`nogil-bench worker` processes run it: once each, however often a task is delivered."""

import json
import os
import subprocess
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from celery.exceptions import Retry
from fastapi.testclient import TestClient
from kombu import Producer
from sqlmodel import Session, col, select

from nogil_bench.auth.service import set_admin
from nogil_bench.core import runtime
from nogil_bench.core.config import Settings
from nogil_bench.core.db import make_engine, writing
from nogil_bench.core.models import Status
from nogil_bench.core.work import Claim
from nogil_bench.distributed import dead_letters, dispatch
from nogil_bench.distributed import worker as celery_worker
from nogil_bench.distributed.celery_app import RUN_TASK, dead_queue, make_celery, work_queue
from nogil_bench.distributed.dispatch import dispatch_pending
from nogil_bench.distributed.worker import GilEnabledError, check_gil_off
from nogil_bench.jobs.models import Job
from nogil_bench.main import create_app
from nogil_bench.work.queue import claim_queued
from nogil_bench.work.registry import queues_from
from tests.utils.api import (
    PURE_PIPELINE,
    SMALL_BENCHMARK,
    expected_png,
    register_and_login,
    synthetic_job,
    wait_until_finished,
)
from tests.utils.redis_server import RedisServer, WorkerProcess
from tests.utils.waiting import wait_until
from tests.utils.workers import REFUSE_SHELL_MODULES

JOBS_QUEUE = work_queue("jobs")
WAIT_S = 90.0


@pytest.fixture
def broker_settings(settings: Settings, broker_url: str) -> Settings:
    """The service's settings on each database, with the tests' Redis as its broker and
    short leases (a dead worker's work comes back within seconds)."""
    return settings.model_copy(
        update={"BROKER_URL": broker_url, "LEASE_SECONDS": 3.0, "EXECUTOR_POLL_SECONDS": 0.2}
    )


def worker_for(settings: Settings, workdir: Path, name: str, *args: str) -> WorkerProcess:
    assert settings.BROKER_URL is not None
    return WorkerProcess(
        workdir,
        ("worker", *args),
        DATA_DIR=str(settings.DATA_DIR),
        DATABASE_URL=settings.database_url,
        BROKER_URL=settings.BROKER_URL,
        LEASE_SECONDS=str(settings.LEASE_SECONDS),
        WORKER_NAME=name,
    )


@pytest.fixture
def api(broker_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(broker_settings)) as client:
        yield client


@pytest.fixture
def worker(broker_settings: Settings, tmp_path: Path, api: TestClient) -> Iterator[WorkerProcess]:
    process = worker_for(broker_settings, tmp_path / "worker-1", "worker-1")
    process.start()
    yield process
    assert process.stop() == 0, process.output()


def synthetic_batch(count: int, workers: int = 1) -> dict[str, Any]:
    return {
        "source": {"width": 48, "height": 32, "seed": 7, "count": count},
        "pipeline": PURE_PIPELINE,
        "runner": "threads",
        "workers": workers,
    }


def test_a_job_and_a_batch_run_on_a_celery_worker_with_the_outputs_a_local_run_gives(
    api: TestClient, worker: WorkerProcess
) -> None:
    alice = register_and_login(api, "alice@example.com")
    job = api.post(
        "/api/v1/jobs",
        headers=alice,
        json={"source": {"width": 40, "height": 30, "seed": 3}, "pipeline": PURE_PIPELINE},
    ).json()
    batch = api.post("/api/v1/batches", headers=alice, json=synthetic_batch(12)).json()

    job = wait_until_finished(api, f"/api/v1/jobs/{job['id']}", alice)
    batch = wait_until_finished(api, f"/api/v1/batches/{batch['id']}", alice)

    assert (job["status"], job["worker"], job["attempts"]) == ("succeeded", "worker-1", 1)
    result = api.get(f"/api/v1/jobs/{job['id']}/result", headers=alice).content
    assert result == expected_png(40, 30, 3, PURE_PIPELINE)
    assert batch["status"] == "succeeded", batch
    assert batch["progress"]["succeeded"] == 12
    [share] = batch["ran_on"]
    assert (share["worker"], share["jobs"]) == ("worker-1", 12)
    assert 0 < share["wall_s"] <= batch["aggregates"]["wall_s"]
    jobs = api.get(
        "/api/v1/jobs", headers=alice, params={"batch_id": batch["id"], "limit": 100}
    ).json()["data"]
    for member in jobs:
        assert (member["worker"], member["attempts"], member["gil_enabled"]) == (
            "worker-1",
            1,
            runtime.is_gil_enabled(),
        )
        output = api.get(f"/api/v1/jobs/{member['id']}/result", headers=alice).content
        assert output == expected_png(48, 32, member["seed"], PURE_PIPELINE)
    # The worker's own metrics: what it ran, by runner and by task, and its GIL state.
    served = worker.metrics()
    gil = "1" if runtime.is_gil_enabled() else "0"  # the worker's, as the test's
    assert f'nogil_bench_job_duration_seconds_count{{gil="{gil}",runner="threads"}} 13.0' in served
    assert 'nogil_bench_tasks_started_total{kind="job"} 1.0' in served
    assert 'nogil_bench_tasks_finished_total{kind="job",outcome="ran"} 1.0' in served
    assert 'nogil_bench_task_duration_seconds_count{kind="job"} 1.0' in served
    assert 'nogil_bench_tasks_finished_total{kind="batch",outcome="ran"}' in served
    assert f"nogil_bench_gil_enabled {float(runtime.is_gil_enabled())}" in served


def test_a_batch_on_a_celery_worker_reports_the_cpu_and_peak_memory_of_its_chunks_together(
    api: TestClient, worker: WorkerProcess
) -> None:
    """A batch's figures mean what they mean on the embedded executor: the pool start-ups and
    CPU time of all that ran it, here added up over its chunks, and the highest peak RSS."""
    alice = register_and_login(api, "alice@example.com")
    created = api.post("/api/v1/batches", headers=alice, json=synthetic_batch(8)).json()

    batch = wait_until_finished(api, f"/api/v1/batches/{created['id']}", alice)

    jobs = api.get(
        "/api/v1/jobs", headers=alice, params={"batch_id": batch["id"], "limit": 100}
    ).json()["data"]
    chunks = {job["setup_s"]: job for job in jobs}.values()  # each job has its chunk's figures
    assert batch["status"] == "succeeded", batch
    assert len(chunks) == 2  # 8 jobs in chunks of 4 tasks per pool worker, of 1
    aggregates = batch["aggregates"]
    assert aggregates["setup_s"] == pytest.approx(sum(chunk["setup_s"] for chunk in chunks))
    for figure in ("cpu_user_s", "cpu_system_s"):
        assert aggregates[figure] == pytest.approx(sum(chunk[figure] for chunk in chunks))
    assert aggregates["cpu_user_s"] + aggregates["cpu_system_s"] > 0
    assert aggregates["peak_rss_bytes"] == max(chunk["peak_rss_bytes"] for chunk in chunks)
    assert aggregates["peak_rss_bytes"] > 0


def test_a_task_delivered_twice_runs_its_job_once(
    api: TestClient, broker_settings: Settings, tmp_path: Path
) -> None:
    alice = register_and_login(api, "alice@example.com")
    job = api.post(
        "/api/v1/jobs",
        headers=alice,
        json={"source": {"width": 16, "height": 16}, "pipeline": [{"op": "invert"}]},
    ).json()
    # Before any worker runs: the dispatcher's task, then a second delivery of the same.
    make_celery(broker_settings).send_task(RUN_TASK, args=["job", job["id"]], queue=JOBS_QUEUE)
    process = worker_for(broker_settings, tmp_path / "worker", "worker-1")
    process.start()
    try:
        finished = wait_until_finished(api, f"/api/v1/jobs/{job['id']}", alice)
        wait_until(
            lambda: "no longer queued" in process.output(),
            "the second delivery to be dropped as no longer queued",
            timeout_s=WAIT_S,
        )
        served = process.metrics()
    finally:
        assert process.stop() == 0

    assert (finished["status"], finished["attempts"]) == ("succeeded", 1)
    assert 'nogil_bench_tasks_finished_total{kind="job",outcome="ran"} 1.0' in served
    assert 'nogil_bench_tasks_finished_total{kind="job",outcome="skipped"} 1.0' in served


def test_the_dispatcher_hands_queued_work_to_the_broker_once_and_again_when_requeued(
    broker_settings: Settings, redis_server: RedisServer, broker_url: str
) -> None:
    def queue_length() -> int:
        return int(redis_server.client().llen(JOBS_QUEUE))

    # The app (and its dispatcher thread) only creates the schema and the rows here.
    app_settings = broker_settings.model_copy(update={"EXECUTOR_POLL_SECONDS": 3600.0})
    with TestClient(create_app(app_settings)) as client:
        alice = register_and_login(client, "alice@example.com")
        response = client.post("/api/v1/batches", headers=alice, json=synthetic_batch(10, 2))
        assert response.status_code == 202
        engine = make_engine(app_settings)
        # 10 jobs in chunks of 2 workers x 4 tasks: 8 + 2.
        wait_until(lambda: queue_length() >= 2, "two tasks in the broker", timeout_s=WAIT_S)
        celery = make_celery(app_settings)

        assert queue_length() == 2
        assert dispatch_pending(engine, app_settings, celery) == 0  # all marked dispatched

        with Session(engine) as session:
            job = session.exec(select(Job).order_by(col(Job.id))).first()
            assert job is not None
            assert job.dispatched_at is not None
            job.status = Status.RUNNING
            job.requeue()  # as when its worker's lease ran out
            session.add(job)
            session.commit()
        # The app's heartbeat may hold the row's lock a moment (on MariaDB, a scan of running
        # rows locks others too): the pass skips it, and the next one takes it.
        dispatched = wait_until(
            lambda: dispatch_pending(engine, app_settings, celery),
            "the requeued job dispatched",
            timeout_s=10,
        )
        assert dispatched == 1
        assert queue_length() == 3
        engine.dispose()


def dead_letters_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """`nogil-bench dead-letters ARGS` with only `settings`' database and broker."""
    assert settings.BROKER_URL is not None
    env = {key: value for key, value in os.environ.items() if not key.startswith("NOGIL_BENCH_")}
    env |= {
        "NOGIL_BENCH_DATA_DIR": str(settings.DATA_DIR),
        "NOGIL_BENCH_DATABASE_URL": settings.database_url,
        "NOGIL_BENCH_BROKER_URL": settings.BROKER_URL,
        "NOGIL_BENCH_LOG_LEVEL": "WARNING",
    }
    return subprocess.run(
        [sys.executable, "-m", "nogil_bench.cli", "dead-letters", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def send_what_no_dispatcher_sends(celery: Celery) -> dict[str, str]:
    """Tasks a worker cannot run, to the jobs queue; returns their ids, each with the reason
    a worker keeps it for."""
    some_id = str(uuid.uuid7())
    bad: dict[str, tuple[list[object], str]] = {  # task id: (arguments, reason)
        "unknown-kind": (["report", some_id], "undeliverable"),
        "not-an-id": (["job", "not-a-uuid"], "undeliverable"),
        "batch-whole": (["batch", some_id], "undeliverable"),
        "kind-7": ([7, some_id], "undeliverable"),
        "signature": (["job"], "invalid"),
    }
    for task_id, (args, _) in bad.items():
        celery.send_task(RUN_TASK, args=args, task_id=task_id, queue=JOBS_QUEUE)
    celery.send_task("nogil_bench.no_such_task", task_id="unknown-task", queue=JOBS_QUEUE)
    with celery.connection_for_write() as connection:  # says it is JSON, and is not
        Producer(connection.default_channel).publish(
            b"{not json",
            exchange="",
            routing_key=JOBS_QUEUE,
            content_type="application/json",
            content_encoding="utf-8",
            headers={"task": RUN_TASK, "id": "undecodable-1"},
        )
    return {task_id: reason for task_id, (_, reason) in bad.items()} | {
        "unknown-task": "unknown_task",
        "undecodable-1": "undecodable",
    }


def listed_dead_letters(settings: Settings, count: int) -> list[dict[str, Any]]:
    """`dead-letters list --json`, once the broker holds `count` (watched from here: a
    command a poll would cost a second of start-up each)."""
    broker = settings.broker_kind
    assert broker is not None
    celery = make_celery(settings)
    wait_until(
        lambda: len(dead_letters.list_dead(celery, broker, ["jobs"])) == count,
        f"{count} dead letters",
        timeout_s=WAIT_S,
    )
    found: list[dict[str, Any]] = json.loads(dead_letters_cli(settings, "list", "--json").stdout)
    return found


# What the broker changes does not depend on the database: PostgreSQL only.
@pytest.mark.parametrize("database_kind", ["postgresql"])
def test_tasks_a_worker_cannot_run_are_kept_as_dead_letters_with_why_and_shown_to_admins(
    each_broker_settings: Settings, tmp_path: Path
) -> None:
    settings = each_broker_settings
    with TestClient(create_app(settings)) as api:
        alice = register_and_login(api, "alice@example.com")
        reasons = send_what_no_dispatcher_sends(make_celery(settings))
        job = api.post("/api/v1/jobs", headers=alice, json=synthetic_job()).json()
        process = worker_for(settings, tmp_path / "worker", "worker-1", "--queues", "jobs")
        process.start()
        try:  # the worker goes on
            finished = wait_until_finished(api, f"/api/v1/jobs/{job['id']}", alice)
            listed = listed_dead_letters(settings, len(reasons))
            served = process.metrics()
            refused = api.get("/api/v1/admin/dead-letters", headers=alice)
            engine = make_engine(settings)
            assert set_admin(engine=engine, email="alice@example.com", admin=True)
            engine.dispose()
            shown = api.get("/api/v1/admin/dead-letters?queues=jobs", headers=alice)
            scraped = api.get("/metrics").text
        finally:
            assert process.stop() == 0, process.output()

    assert finished["status"] == "succeeded"
    by_id = {letter["id"]: letter for letter in listed}
    assert set(by_id) == set(reasons)
    assert by_id["not-an-id"]["args"] == ["job", "not-a-uuid"]
    assert {letter["queue"] for letter in listed} == {"jobs"}
    if settings.broker_kind == "redis":  # the worker says why; RabbitMQ's x-death: "rejected"
        assert {task_id: letter["reason"] for task_id, letter in by_id.items()} == reasons
        assert "no kind of work named 'report'" in by_id["unknown-kind"]["detail"]
    else:
        assert {letter["reason"] for letter in listed} == {"rejected"}
    for labels, count in (
        ('kind="unknown",reason="undeliverable"', 2),
        ('kind="batch",reason="undeliverable"', 1),
        ('kind="job",reason="invalid"', 1),
        ('kind="unknown",reason="unknown_task"', 1),
        ('kind="unknown",reason="undecodable"', 1),
    ):
        assert f"nogil_bench_tasks_dead_lettered_total{{{labels}}} {count}.0" in served
    assert (refused.status_code, shown.status_code) == (403, 200)
    assert shown.json()["broker"] == settings.broker_kind
    assert {letter["id"] for letter in shown.json()["dead_letters"]} == set(by_id)
    assert f'nogil_bench_dead_letters{{queue="jobs"}} {len(reasons)}.0' in scraped


@pytest.mark.parametrize("database_kind", ["postgresql"])
def test_requeued_dead_letters_go_back_to_their_queue_and_the_work_still_runs_once(
    each_broker_settings: Settings, tmp_path: Path
) -> None:
    settings = each_broker_settings
    celery = make_celery(settings)
    with TestClient(create_app(settings)) as api:
        alice = register_and_login(api, "alice@example.com")
        job = api.post("/api/v1/jobs", headers=alice, json=synthetic_job()).json()  # dispatched
        # Two copies of its task kept as dead letters (say, by a worker of an older version).
        for copy in ("copy-1", "copy-2"):
            celery.send_task(
                RUN_TASK, args=["job", job["id"]], task_id=copy, queue=dead_queue("jobs")
            )
        celery.send_task(RUN_TASK, args=["job"], task_id="signature", queue=dead_queue("jobs"))
        requeued = dead_letters_cli(settings, "requeue", "copy-1", "copy-2", "signature")
        missing = dead_letters_cli(settings, "requeue", "no-such-id")
        neither = dead_letters_cli(settings, "requeue")
        process = worker_for(settings, tmp_path / "worker", "worker-1")
        process.start()
        try:
            finished = wait_until_finished(api, f"/api/v1/jobs/{job['id']}", alice)
            wait_until(
                lambda: process.output().count("no longer queued") == 2,
                "both requeued copies to be skipped",
                timeout_s=WAIT_S,
            )
            served = process.metrics()
            kept = listed_dead_letters(settings, 1)  # still not runnable: kept again
        finally:
            assert process.stop() == 0, process.output()

    assert requeued.returncode == 0, requeued.stderr
    assert requeued.stdout.splitlines() == [
        f"requeued {task_id} to jobs" for task_id in ("copy-1", "copy-2", "signature")
    ]
    # Its task delivered three times, the job ran once.
    assert (finished["status"], finished["attempts"]) == ("succeeded", 1)
    assert 'nogil_bench_tasks_finished_total{kind="job",outcome="ran"} 1.0' in served
    assert 'nogil_bench_tasks_finished_total{kind="job",outcome="skipped"} 2.0' in served
    assert [letter["id"] for letter in kept] == ["signature"]
    assert (missing.returncode, missing.stderr) == (1, "not found: no-such-id\n")
    assert neither.returncode == 1
    assert "name the task ids to requeue, or --all" in neither.stderr


def test_a_dispatch_pass_with_a_full_page_hands_out_only_what_is_older_than_its_end(
    broker_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Single jobs and a batch's jobs are paged apart; a pass that fills a page must not send
    newer single jobs ahead of the batch jobs it left for the next pass."""
    monkeypatch.setattr(dispatch, "DISPATCH_ROWS", 3)
    with TestClient(create_app(broker_settings)) as client:
        assert client.app.state.executor.stop(timeout_s=10)  # type: ignore[attr-defined]
        alice = register_and_login(client, "alice@example.com")
        job, batch = ("/api/v1/jobs", synthetic_job()), ("/api/v1/batches", synthetic_batch(4, 1))
        submit = [job, batch, job, job, job]
        for path, body in submit:
            assert client.post(path, headers=alice, json=body).status_code == 202
        engine = make_engine(broker_settings)
        celery = make_celery(broker_settings)

        def marked() -> list[bool]:
            with Session(engine) as session:
                jobs = session.exec(select(Job).order_by(col(Job.id))).all()
                return [job.dispatched_at is not None for job in jobs]

        # FIFO: job, 4 batch jobs, 3 jobs. Pages of 3: jobs 1-3 of 4, batch jobs 1-3 of 4.
        assert dispatch_pending(engine, broker_settings, celery) == 4
        assert marked() == [True, True, True, True, False, False, False, False]
        assert dispatch_pending(engine, broker_settings, celery) == 4
        assert all(marked())
        engine.dispose()


def test_the_worker_refuses_to_start_when_an_import_turned_the_gil_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runtime.watch_gil_reenablers()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn(  # what CPython says when it loads such a module
            "The global interpreter lock (GIL) has been enabled to load module 'hiredis.hiredis', "
            "which has not declared that it can run safely without the GIL.",
            RuntimeWarning,
            stacklevel=1,
        )
    monkeypatch.setattr(runtime, "is_free_threaded_build", lambda: True)
    monkeypatch.setattr(runtime, "is_gil_enabled", lambda: True)
    monkeypatch.setattr(runtime, "gil_forced_on_by", lambda: None)

    with pytest.raises(GilEnabledError, match=r"module hiredis\.hiredis turned it back on"):
        check_gil_off()

    monkeypatch.setattr(runtime, "gil_forced_on_by", lambda: "PYTHON_GIL=1")
    check_gil_off()  # GIL=1 asked for: that is how the GIL=1 side is measured


def test_celery_and_the_redis_and_amqp_clients_keep_the_gil_off() -> None:
    import amqp  # noqa: F401, PLC0415
    import celery.backends.rpc  # noqa: PLC0415
    import celery.worker  # noqa: F401, PLC0415
    import kombu.transport.pyamqp  # noqa: PLC0415
    import kombu.transport.redis  # noqa: F401, PLC0415
    import redis.utils  # noqa: PLC0415

    import nogil_bench.distributed.worker  # noqa: F401, PLC0415

    assert not redis.utils.HIREDIS_AVAILABLE, "hiredis is installed: it turns the GIL back on"
    if runtime.is_free_threaded_build() and not runtime.gil_forced_on_by():
        assert not sys._is_gil_enabled()


def test_the_worker_takes_celery_options_without_celerys_shell_modules(
    broker_settings: Settings, tmp_path: Path
) -> None:
    """The production image leaves out click-repl, prompt_toolkit and wcwidth, which only
    `celery shell` and `celery amqp` use: the worker starts, takes Celery's worker options
    and stops warmly without them."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(REFUSE_SHELL_MODULES)
    process = worker_for(broker_settings, tmp_path / "worker", "worker-1", "--concurrency", "2")
    process.env["PYTHONPATH"] = str(hook)
    process.start()
    assert process.stop() == 0, process.output()

    output = process.output()
    assert "concurrency: 2 (thread)" in output  # the option given last wins
    assert "Warm shutdown" in output
    assert "not in the production image" not in output


@pytest.fixture
def each_broker_settings(settings: Settings, any_broker_url: str) -> Settings:
    """`broker_settings` on each broker in turn, Redis and RabbitMQ."""
    return settings.model_copy(
        update={"BROKER_URL": any_broker_url, "LEASE_SECONDS": 3.0, "EXECUTOR_POLL_SECONDS": 0.2}
    )


# What the broker changes does not depend on the database: these run on PostgreSQL only.
@pytest.mark.parametrize("database_kind", ["postgresql"])
def test_readiness_checks_the_broker_and_metrics_show_its_queue(
    each_broker_settings: Settings, any_broker_url: str
) -> None:
    paused = each_broker_settings.model_copy(update={"EXECUTOR_POLL_SECONDS": 3600.0})
    with TestClient(create_app(paused)) as client:
        alice = register_and_login(client, "alice@example.com")
        client.post("/api/v1/batches", headers=alice, json=synthetic_batch(5, 1))  # 2 chunks

        ready = client.get("/health/ready")

        def metrics_with_two_tasks() -> str:
            text = client.get("/metrics").text
            depth = 'nogil_bench_broker_queue_depth{queue="nogil-bench.jobs"} 2.0'
            return text if depth in text else ""

        metrics = wait_until(
            metrics_with_two_tasks, "/metrics to count two tasks in the broker", timeout_s=WAIT_S
        )

    assert (ready.status_code, ready.json()["checks"]["broker"]) == (200, "ok")
    assert "nogil_bench_workers_running 0.0" in metrics
    assert 'nogil_bench_queued{queue="jobs"} 5.0' in metrics  # rows, in the store
    assert 'nogil_bench_queued{queue="benchmarks"} 0.0' in metrics
    assert 'nogil_bench_dead_letters{queue="jobs"} 0.0' in metrics
    waited = metrics.split('nogil_bench_queued_oldest_age_seconds{queue="jobs"} ')[1]
    assert float(waited.split()[0]) > 0

    nobody = (
        "redis://127.0.0.1:9/0" if any_broker_url.startswith("redis") else "amqp://127.0.0.1:9//"
    )
    unreachable = paused.model_copy(update={"BROKER_URL": nobody})
    with TestClient(create_app(unreachable)) as client:
        ready = client.get("/health/ready")
    assert ready.status_code == 503
    assert ready.json()["checks"]["broker"].startswith("not answering")


# Celery's warm shutdown, on the store a fleet shares: ~24 s on each store, and putting work
# back at a drain's deadline is held on every store by tests/api/test_shutdown_and_recovery.py.
@pytest.mark.parametrize("database_kind", ["postgresql"])
def test_sigterm_to_a_worker_puts_its_running_benchmark_back_and_another_worker_finishes_it(
    api: TestClient, broker_settings: Settings, tmp_path: Path
) -> None:
    alice = register_and_login(api, "alice@example.com")
    first = worker_for(broker_settings, tmp_path / "first", "first")
    first.start()
    benchmark = api.post(
        "/api/v1/benchmarks",
        headers=alice,
        json={
            "source": {"count": 4, "width": 64, "height": 64},
            "pipeline": [{"op": "box_blur", "params": {"radius": 1}}],
            "runners": ["sequential", "threads", "processes"],
            "workers": [1, 2],
            "gil": [0],
            "repeats": 6,
            "max_repeats": 6,
            "warmups": 0,
        },
    ).json()
    path = f"/api/v1/benchmarks/{benchmark['id']}"
    wait_until(
        lambda: api.get(path, headers=alice).json()["status"] == "running",
        "the benchmark to run on the first worker",
        timeout_s=WAIT_S,
    )

    assert first.stop() == 0  # Celery's warm shutdown
    stopped = api.get(path, headers=alice).json()
    assert (stopped["status"], stopped["attempts"]) == ("queued", 0), stopped

    second = worker_for(broker_settings, tmp_path / "second", "second")
    second.start()
    try:
        finished = wait_until_finished(api, path, alice)
    finally:
        assert second.stop() == 0
    assert (finished["status"], finished["worker"], finished["attempts"]) == (
        "succeeded",
        "second",
        1,
    ), finished


@pytest.mark.parametrize("database_kind", ["postgresql"])
def test_jobs_and_benchmarks_go_to_their_own_queues_and_each_kind_of_worker_takes_its_own(
    each_broker_settings: Settings, tmp_path: Path
) -> None:
    with TestClient(create_app(each_broker_settings)) as api:
        alice = register_and_login(api, "alice@example.com")
        jobs_worker = worker_for(
            each_broker_settings, tmp_path / "jobs", "jobs-1", "--queues", "jobs"
        )
        jobs_worker.start()
        try:
            benchmark = api.post("/api/v1/benchmarks", headers=alice, json=SMALL_BENCHMARK)
            assert benchmark.status_code == 202, benchmark.text
            benchmark_path = f"/api/v1/benchmarks/{benchmark.json()['id']}"
            job = api.post("/api/v1/jobs", headers=alice, json=synthetic_job()).json()
            batch = api.post("/api/v1/batches", headers=alice, json=synthetic_batch(5)).json()

            # Submitted after the benchmark, both run before it: no worker takes benchmarks.
            ran_job = wait_until_finished(api, f"/api/v1/jobs/{job['id']}", alice)
            ran_batch = wait_until_finished(api, f"/api/v1/batches/{batch['id']}", alice)
            assert (ran_job["worker"], ran_batch["status"]) == ("jobs-1", "succeeded")
            # The GIL as the worker saw it inside the task, with its broker's client loaded.
            assert ran_job["gil_enabled"] is (not runtime.is_free_threaded_build())
            time.sleep(1.0)  # a worker that took it would have started it by now
            waiting = api.get(benchmark_path, headers=alice).json()
            assert waiting["status"] == "queued", waiting
            metrics = api.get("/metrics").text
            assert 'nogil_bench_broker_queue_depth{queue="nogil-bench.benchmarks"} 1.0' in metrics

            benchmarks_worker = worker_for(
                each_broker_settings,
                tmp_path / "benchmarks",
                "benchmarks-1",
                "--queues",
                "benchmarks",
            )
            benchmarks_worker.start()
            try:
                finished = wait_until_finished(api, benchmark_path, alice)
            finally:
                assert benchmarks_worker.stop() == 0, benchmarks_worker.output()
        finally:
            assert jobs_worker.stop() == 0, jobs_worker.output()
    assert (finished["status"], finished["worker"]) == ("succeeded", "benchmarks-1"), finished


@pytest.mark.parametrize(
    ("queues", "why"),
    [
        ("reports", "'reports' is no kind of work; give jobs, benchmarks"),
        ("jobs,,reports", "'reports' is no kind of work"),
        ("", "nothing is no kind of work"),
    ],
)
def test_a_worker_refuses_queues_that_are_no_kind_of_work(queues: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        queues_from(queues)


def test_a_worker_takes_the_kinds_of_work_it_is_given_or_all() -> None:
    assert queues_from("all") == ["jobs", "benchmarks"]
    assert queues_from("benchmarks, jobs,benchmarks") == ["benchmarks", "jobs"]


def test_work_a_restarted_broker_lost_is_handed_out_again_after_redispatch_seconds(
    broker_settings: Settings, redis_server: RedisServer
) -> None:
    paused = broker_settings.model_copy(
        update={"EXECUTOR_POLL_SECONDS": 3600.0, "REDISPATCH_SECONDS": 0.5}
    )
    with TestClient(create_app(paused)) as client:
        alice = register_and_login(client, "alice@example.com")
        job = client.post(
            "/api/v1/jobs",
            headers=alice,
            json={"source": {"width": 8, "height": 8}, "pipeline": [{"op": "invert"}]},
        ).json()
        engine = make_engine(paused)
        celery = make_celery(paused)
        wait_until(
            lambda: redis_server.client().llen(JOBS_QUEUE) == 1,
            "the job's task in the broker",
            timeout_s=WAIT_S,
        )
        # The service's own dispatcher stops here: on a slow host its next pass could come
        # after REDISPATCH_SECONDS and hand the job out in the test's place.
        client.app.state.executor.stop(timeout_s=10)  # type: ignore[attr-defined]

        redis_server.client().flushall()  # Redis restarted without persistence
        assert dispatch_pending(engine, paused, celery) == 0  # too early to tell
        with writing(engine) as session:  # REDISPATCH_SECONDS pass
            stored = session.get(Job, uuid.UUID(job["id"]))
            assert stored is not None
            assert stored.dispatched_at is not None
            stored.dispatched_at -= timedelta(seconds=paused.REDISPATCH_SECONDS)
        assert dispatch_pending(engine, paused, celery) == 1
        assert redis_server.client().llen(JOBS_QUEUE) == 1
        with Session(engine) as session:
            stored = session.get(Job, uuid.UUID(job["id"]))
            assert stored is not None
            assert stored.status is Status.QUEUED
        engine.dispose()


def test_a_task_that_arrives_before_the_dispatch_commits_waits_and_claims_its_job(
    api: TestClient, broker_settings: Settings
) -> None:
    alice = register_and_login(api, "alice@example.com")
    engine = make_engine(broker_settings)
    response = api.get("/api/v1/users/me", headers=alice).json()
    job = Job(owner_id=uuid.UUID(response["id"]), runner="sequential", workers=1, pipeline=[],
              width=8, height=8, seed=1)  # fmt: skip
    with writing(engine) as session:
        session.add(job)
    claimed: list[bool] = []
    with writing(engine) as dispatching:
        locked = dispatching.exec(select(Job).where(Job.id == job.id).with_for_update()).one()
        locked.dispatched_at = locked.queued_at
        dispatching.flush()
        # The worker's claim, while the dispatcher's transaction still holds the row.
        claiming = threading.Thread(
            target=lambda: claimed.append(
                claim_queued(engine, Claim("job", job.id), uuid.uuid7(), 30.0, "worker-1")
            )
        )
        claiming.start()
        claiming.join(0.5)
        assert claiming.is_alive(), "the claim did not wait for the dispatch to commit"
    claiming.join(30)

    assert claimed == [True]
    engine.dispose()


@pytest.mark.parametrize("database_kind", ["sqlite"])  # the database is not reached
def test_a_task_that_raises_is_retried_and_kept_as_a_dead_letter_on_its_last_attempt(
    broker_settings: Settings, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run in this process: the error stands for one outside the work's own handling (a
    database down through every attempt), which no worker process can be made to raise."""
    celery = make_celery(broker_settings)
    celery_worker.register_tasks(celery)
    task = celery.tasks[RUN_TASK]
    engine = make_engine(broker_settings)
    monkeypatch.setattr(
        celery_worker,
        "STATE",
        celery_worker.WorkerState(broker_settings, engine, uuid.uuid7(), "worker-1"),
    )

    def database_down(*_: object) -> int:
        raise ConnectionError("the database does not answer")

    monkeypatch.setattr(celery_worker, "run_delivery", database_down)
    job_id = str(uuid.uuid7())
    outcomes = []
    for attempt in range(broker_settings.MAX_ATTEMPTS):
        task.push_request(
            id="flaky",
            args=["job", job_id],
            kwargs={},
            retries=attempt,
            called_directly=False,
            delivery_info={"routing_key": JOBS_QUEUE},
        )
        try:
            outcomes.append(task("job", job_id))
        except Retry:
            outcomes.append("retried")
        finally:
            task.pop_request()
    engine.dispose()

    assert outcomes == ["retried"] * (broker_settings.MAX_ATTEMPTS - 1) + [0]
    retries = [json.loads(raw) for raw in redis_server.client().lrange(JOBS_QUEUE, 0, -1)]
    assert [message["headers"]["retries"] for message in retries] == [2, 1]  # newest first
    (kept,) = dead_letters.list_dead(celery, "redis", ["jobs"])
    assert (kept.id, kept.args, kept.reason) == ("flaky", ["job", job_id], "failed")
    assert kept.detail == "ConnectionError: the database does not answer"
