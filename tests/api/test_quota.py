"""Queue quotas hold under concurrency: submitters that arrive at once never queue more than
the per-user and the service-wide limits, on every database."""

import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from nogil_bench.benchmarks import service as benchmarks_service
from nogil_bench.benchmarks.models import Benchmark
from nogil_bench.benchmarks.schemas import BenchmarkSpec
from nogil_bench.core.config import Settings
from nogil_bench.core.errors import AppError
from nogil_bench.core.models import QueuedWork, Status
from nogil_bench.jobs import service as jobs_service
from nogil_bench.jobs.models import Job
from nogil_bench.jobs.schemas import StepIn, SyntheticSource
from nogil_bench.main import create_app
from nogil_bench.workloads.model import Step
from tests.utils.api import register_and_login

PER_USER = 5
IN_ALL = 8
USERS = 2
SUBMITTERS_PER_USER = 16
# What the refused submissions answer: the user's quota (429) or the service's (503).
QUOTA_REFUSALS = {429, 503}
# A submitter that never reached the start breaks the barrier instead of hanging the rest.
BARRIER_TIMEOUT_S = 30.0


@pytest.fixture
def service(settings: Settings) -> Iterator[tuple[Engine, Settings, list[uuid.UUID]]]:
    """The service's engine and settings, with tight queues, its executor stopped (so queued
    work stays queued), and the ids of USERS registered users."""
    tight = settings.model_copy(
        update={
            "MAX_QUEUED_JOBS_PER_USER": PER_USER,
            "MAX_QUEUED_JOBS": IN_ALL,
            "MAX_QUEUED_BENCHMARKS_PER_USER": PER_USER,
            "MAX_QUEUED_BENCHMARKS": IN_ALL,
        }
    )
    with TestClient(create_app(tight)) as client:
        assert client.app.state.executor.stop(timeout_s=30)  # type: ignore[attr-defined]
        owners = []
        for index in range(USERS):
            headers = register_and_login(client, f"user{index}@example.com")
            owners.append(uuid.UUID(client.get("/api/v1/users/me", headers=headers).json()["id"]))
        yield client.app.state.engine, tight, owners  # type: ignore[attr-defined]


def submit_job(engine: Engine, settings: Settings, owner_id: uuid.UUID) -> None:
    jobs_service.submit(
        engine=engine,
        settings=settings,
        owner_id=owner_id,
        route="/api/v1/jobs",
        key=None,
        spec=jobs_service.ExecutionSpec("sequential", 1, (Step("invert"),)),
        sources=[SyntheticSource(width=8, height=8)],
        as_batch=False,
    )


def submit_benchmark(engine: Engine, settings: Settings, owner_id: uuid.UUID) -> None:
    spec = BenchmarkSpec(
        count=1,
        width=8,
        height=8,
        seed=0,
        pipeline=[StepIn(op="invert")],
        runners=["sequential"],
        workers=[1],
    )
    benchmarks_service.submit(
        engine=engine,
        settings=settings,
        owner_id=owner_id,
        route="/api/v1/benchmarks",
        key=None,
        spec=spec,
    )


def submit_all_at_once(
    submit: Callable[[Engine, Settings, uuid.UUID], None],
    engine: Engine,
    settings: Settings,
    owners: list[uuid.UUID],
) -> list[int]:
    """SUBMITTERS_PER_USER threads per user, released together; each one's status code."""
    submitters = [owner for owner in owners for _ in range(SUBMITTERS_PER_USER)]
    start = threading.Barrier(len(submitters), timeout=BARRIER_TIMEOUT_S)

    def submit_one(owner_id: uuid.UUID) -> int:
        start.wait()
        try:
            submit(engine, settings, owner_id)
        except AppError as error:
            return error.status_code
        return 202

    with ThreadPoolExecutor(len(submitters)) as pool:
        return list(pool.map(submit_one, submitters))


def queued_per_owner(engine: Engine, table: type[QueuedWork]) -> dict[uuid.UUID, int]:
    owner = col(getattr(table, "owner_id"))  # noqa: B009 - both tables have an owner
    with Session(engine) as session:
        rows = session.exec(
            select(owner, func.count())
            .select_from(table)
            .where(col(table.status) == Status.QUEUED)
            .group_by(owner)
        ).all()
    return dict(rows)


@pytest.mark.parametrize(
    ("submit", "table"),
    [(submit_job, Job), (submit_benchmark, Benchmark)],
    ids=["jobs", "benchmarks"],
)
def test_submitters_arriving_at_once_queue_no_more_than_each_limit(
    service: tuple[Engine, Settings, list[uuid.UUID]],
    submit: Callable[[Engine, Settings, uuid.UUID], None],
    table: type[QueuedWork],
) -> None:
    engine, settings, owners = service

    answers = submit_all_at_once(submit, engine, settings, owners)

    queued = queued_per_owner(engine, table)
    assert max(queued.values()) <= PER_USER, queued
    assert sum(queued.values()) == IN_ALL, queued  # exactly: every refusal had a reason
    assert answers.count(202) == IN_ALL, answers
    assert set(answers) - {202} <= QUOTA_REFUSALS, answers
