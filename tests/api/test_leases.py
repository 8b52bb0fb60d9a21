"""Several processes on one database: each piece of work is claimed once, a live process keeps
what it runs, a dead one's work comes back when its lease runs out, and a process that lost its
claim cannot overwrite the new owner's result. A hung run fails at its deadline.

"Processes" here are boot ids on one engine, as two services on one database would be; the
real two-process run with a kill -9 is in tests/e2e/test_concurrency.py.
"""

import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from nogil_bench.core.config import Settings
from nogil_bench.core.models import Status, utc_now
from nogil_bench.jobs import runs as job_runs
from nogil_bench.jobs.models import Job
from nogil_bench.main import create_app
from nogil_bench.runners.timing import Outcome
from nogil_bench.work.queue import claim_next, fail_claim, recover_expired, renew_leases
from nogil_bench.workloads.images import run_jobs_captured
from tests.utils.api import JOBS, Headers, register_and_login, synthetic_job, wait_until_finished

LEASE_S = 30.0


def engine_of(client: TestClient) -> Engine:
    engine: Engine = client.app.state.engine  # type: ignore[attr-defined]
    return engine


def queue_jobs(client: TestClient, headers: Headers, count: int) -> list[uuid.UUID]:
    return [
        uuid.UUID(client.post(JOBS, headers=headers, json=synthetic_job()).json()["id"])
        for _ in range(count)
    ]


def job_row(engine: Engine, job_id: uuid.UUID) -> Job:
    with Session(engine) as session:
        row = session.get(Job, job_id)
        assert row is not None
        return row


def test_processes_claiming_at_once_never_claim_the_same_job(
    client: TestClient, alice: Headers, paused: Callable[[], None]
) -> None:
    queued = queue_jobs(client, alice, 24)
    engine = engine_of(client)
    processes = [uuid.uuid7() for _ in range(4)]

    def claim_all(boot_id: uuid.UUID) -> list[uuid.UUID]:
        claimed = []
        while (claim := claim_next(engine, boot_id, LEASE_S)) is not None:
            claimed.append(claim.id)
        return claimed

    with ThreadPoolExecutor(len(processes)) as pool:
        claims = list(pool.map(claim_all, processes))

    every_claim = [job_id for claimed in claims for job_id in claimed]
    assert sorted(every_claim) == sorted(queued), "each job claimed exactly once"
    for boot_id, claimed in zip(processes, claims, strict=True):
        assert all(job_row(engine, job_id).boot_id == boot_id for job_id in claimed)


def test_a_live_lease_is_kept_and_an_expired_one_is_requeued(
    client: TestClient, alice: Headers, paused: Callable[[], None]
) -> None:
    [alive_job, dead_job] = queue_jobs(client, alice, 2)
    engine = engine_of(client)
    alive, dead = uuid.uuid7(), uuid.uuid7()
    assert claim_next(engine, alive, LEASE_S) is not None
    assert claim_next(engine, dead, -1) is not None  # a lease that ran out a second ago

    renew_leases(engine, alive, LEASE_S)  # the live process's heartbeat
    assert recover_expired(engine, max_attempts=3) == 1

    kept, requeued = job_row(engine, alive_job), job_row(engine, dead_job)
    assert (kept.status, kept.boot_id) == (Status.RUNNING, alive)
    assert kept.lease_expires_at is not None
    assert kept.lease_expires_at > utc_now()
    assert (requeued.status, requeued.boot_id, requeued.attempts) == (Status.QUEUED, None, 1)


def test_an_expired_lease_on_the_last_attempt_fails_with_the_reason(
    client: TestClient, alice: Headers, paused: Callable[[], None]
) -> None:
    [job_id] = queue_jobs(client, alice, 1)
    engine = engine_of(client)
    dead = uuid.uuid7()
    for _ in range(3):
        assert claim_next(engine, dead, -1.0) is not None  # born expired
        recover_expired(engine, max_attempts=3)

    failed = job_row(engine, job_id)
    assert (failed.status, failed.attempts) == (Status.FAILED, 3)
    assert failed.error is not None
    assert "attempt 3 of 3 (max_attempts)" in failed.error


def test_a_process_that_lost_its_claim_cannot_overwrite_the_new_owners_result(
    client: TestClient, alice: Headers, paused: Callable[[], None], settings: Settings
) -> None:
    [job_id] = queue_jobs(client, alice, 1)
    engine = engine_of(client)
    stalled, successor = uuid.uuid7(), uuid.uuid7()
    claim_next(engine, stalled, -1.0)
    recover_expired(engine, max_attempts=3)
    claim_next(engine, successor, LEASE_S)
    late = Outcome(b"not a png", None, time.time(), 0.01, 0.01)

    job_runs.record_outcomes(engine, settings, [job_row(engine, job_id)], [late], stalled)
    job_runs.fail_jobs(engine, [job_row(engine, job_id)], stalled, "too late")

    row = job_row(engine, job_id)
    assert (row.status, row.boot_id, row.output_path) == (Status.RUNNING, successor, None)
    assert list(settings.outputs_dir.glob("*")) == [], "the late output was removed"


def test_a_run_that_fails_after_losing_its_claim_leaves_the_job_queued_for_its_next_attempt(
    client: TestClient, alice: Headers, paused: Callable[[], None]
) -> None:
    [job_id] = queue_jobs(client, alice, 1)
    engine = engine_of(client)
    stalled = uuid.uuid7()
    claim = claim_next(engine, stalled, -1.0)
    assert claim is not None
    recover_expired(engine, max_attempts=3)  # its lease ran out: back in the queue

    fail_claim(engine, claim, stalled, "RuntimeError: the pool died")

    row = job_row(engine, job_id)
    assert (row.status, row.error, row.attempts) == (Status.QUEUED, None, 1)


def test_a_hung_run_fails_at_its_deadline_and_the_queue_moves_on(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    hang = threading.Event()
    real_run = run_jobs_captured

    def run_or_hang(runner: Any, jobs: Any) -> Any:
        if jobs[0].source.seed == 666:
            hang.wait(60)  # a task that never returns, as far as the deadline can tell
        return real_run(runner, jobs)

    monkeypatch.setattr(job_runs, "run_jobs_captured", run_or_hang)
    bounded = settings.model_copy(update={"EXECUTION_TIMEOUT_SECONDS": 0.5})
    try:
        with TestClient(create_app(bounded)) as client:
            alice = register_and_login(client, "alice@example.com")
            source = {"width": 8, "height": 8}
            hung = client.post(
                JOBS, headers=alice, json=synthetic_job(source=source | {"seed": 666})
            )
            after = client.post(JOBS, headers=alice, json=synthetic_job(source=source))

            failed = wait_until_finished(client, hung.headers["Location"], alice)
            succeeded = wait_until_finished(client, after.headers["Location"], alice)
    finally:
        hang.set()

    assert failed["status"] == "failed"
    assert "longer than the 0.5 s limit (EXECUTION_TIMEOUT_SECONDS)" in failed["error"]
    assert succeeded["status"] == "succeeded"


def test_the_heartbeat_renews_what_this_process_runs(
    client: TestClient, alice: Headers, paused: Callable[[], None]
) -> None:
    queue_jobs(client, alice, 1)
    engine = engine_of(client)
    me = uuid.uuid7()
    claim_next(engine, me, 1.0)
    before = utc_now()

    renew_leases(engine, me, 3600)

    with Session(engine) as session:
        leases = session.exec(select(Job.lease_expires_at).where(col(Job.boot_id) == me)).all()
    assert leases
    assert all(lease is not None and lease > before + timedelta(minutes=59) for lease in leases)
