"""A broker that stops answering (a Redis or a RabbitMQ frozen with SIGSTOP: its socket
accepts, nothing replies) costs the dispatcher a bounded wait, never the service's writes:
submissions and cancels keep answering while it is frozen, and the queued work runs once it
thaws."""

import os
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from nogil_bench.auth.service import set_admin
from nogil_bench.core.config import Settings
from nogil_bench.core.models import Status
from nogil_bench.distributed.celery_app import make_celery, work_queue
from nogil_bench.distributed.dispatch import dispatch_pending
from nogil_bench.jobs.models import Job
from nogil_bench.main import create_app
from tests.utils.api import Headers, register_and_login
from tests.utils.rabbitmq_server import RabbitMQServer
from tests.utils.redis_server import RedisServer, WorkerProcess
from tests.utils.waiting import wait_until

JOBS_QUEUE = work_queue("jobs")

JOBS = "/api/v1/jobs"
TINY_JOB = {"source": {"width": 8, "height": 8}, "pipeline": [{"op": "invert"}]}
# How long an answer may take while the broker is frozen (a probe of it gives up after a few
# BROKER_TIMEOUT_S): a request that waited on the broker would wait until the thaw.
ANSWER_DEADLINE_S = 30.0
# How long clients keep submitting while the broker is frozen: past the dispatcher's first
# attempt to publish, so that they submit while it waits on the broker.
FROZEN_FOR_S = 3.0
CLIENTS = 4
WAIT_S = 90.0


@dataclass(frozen=True)
class FreezableBroker:
    url: str
    pid: Callable[[], int]  # of the process that answers
    queue_length: Callable[[str], int]


# Redis on every database; RabbitMQ on one, since what it changes is the broker's side.
ON_EACH_BROKER = pytest.mark.parametrize(
    ("database_kind", "broker_kind"),
    [
        ("sqlite", "redis"),
        ("postgresql", "redis"),
        ("mariadb", "redis"),
        ("postgresql", "rabbitmq"),
    ],
)


@pytest.fixture
def broker(request: pytest.FixtureRequest, broker_kind: str) -> Iterator[FreezableBroker]:
    """A Redis of this test's own, or the session's RabbitMQ, emptied (it takes 6 s to start
    one, and it is thawed before the next test)."""
    if broker_kind == "rabbitmq":
        rabbitmq: RabbitMQServer = request.getfixturevalue("rabbitmq_server")
        yield FreezableBroker(
            request.getfixturevalue("amqp_url"),
            lambda: int(rabbitmq.pid_file.read_text()),
            lambda queue: rabbitmq.queue_lengths().get(queue, 0),
        )
        return
    redis_server: RedisServer = request.getfixturevalue("redis_server")
    server = RedisServer(redis_server.binary)
    server.start()
    try:
        yield FreezableBroker(
            server.url,
            lambda: int((server.directory / "redis.pid").read_text()),
            lambda queue: int(server.client().llen(queue)),
        )
    finally:
        server.stop()


@pytest.fixture
def broker_settings(settings: Settings, broker: FreezableBroker) -> Settings:
    return settings.model_copy(
        update={
            "BROKER_URL": broker.url,
            "EXECUTOR_POLL_SECONDS": 0.2,
            "WRITE_LOCK_TIMEOUT_SECONDS": 1.0,
            "SUBMISSION_RATE_LIMIT": "1000/second",
        }
    )


@contextmanager
def frozen(broker: FreezableBroker) -> Iterator[None]:
    """The server stopped (SIGSTOP) for the block: connections open, nothing answers."""
    pid = broker.pid()
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def queued_job_marks(engine: Engine) -> list[bool]:
    """Whether each job (oldest first) is marked dispatched."""
    with Session(engine) as session:
        jobs = session.exec(select(Job).order_by(col(Job.id))).all()
        return [job.dispatched_at is not None for job in jobs]


@ON_EACH_BROKER
def test_a_dispatch_pass_gives_up_on_a_frozen_broker_and_leaves_its_rows_to_the_next(
    broker_settings: Settings, broker: FreezableBroker
) -> None:
    with TestClient(create_app(broker_settings)) as client:
        assert client.app.state.executor.stop(timeout_s=10)  # type: ignore[attr-defined]
        alice = register_and_login(client, "alice@example.com")
        for _ in range(3):
            assert client.post(JOBS, headers=alice, json=TINY_JOB).status_code == 202
        engine: Engine = client.app.state.engine  # type: ignore[attr-defined]
        celery = make_celery(broker_settings)

        with ThreadPoolExecutor(1) as pool, frozen(broker):
            dispatching = pool.submit(dispatch_pending, engine, broker_settings, celery)
            assert dispatching.result(timeout=ANSWER_DEADLINE_S) == 0
            assert queued_job_marks(engine) == [False, False, False]

        assert dispatch_pending(engine, broker_settings, celery) == 3
        assert broker.queue_length(JOBS_QUEUE) == 3
        assert queued_job_marks(engine) == [True, True, True]


def answered_in_time[T](pool: ThreadPoolExecutor, calls: list[Callable[[], T]]) -> list[T]:
    """Runs the calls at once; each answer must come within ANSWER_DEADLINE_S."""
    futures: list[Future[T]] = [pool.submit(call) for call in calls]
    return [future.result(timeout=ANSWER_DEADLINE_S) for future in futures]


def jobs_by_status(engine: Engine) -> dict[str, int]:
    with Session(engine) as session:
        rows = session.exec(select(Job.status, func.count()).group_by(col(Job.status))).all()
    return dict(rows)


@pytest.fixture
def api(broker_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(broker_settings)) as client:
        yield client


@pytest.fixture
def worker(
    broker_settings: Settings, broker: FreezableBroker, tmp_path: Path, api: TestClient
) -> Iterator[WorkerProcess]:
    process = WorkerProcess(
        tmp_path / "worker",
        DATA_DIR=str(broker_settings.DATA_DIR),
        DATABASE_URL=broker_settings.database_url,
        BROKER_URL=broker.url,
        WORKER_NAME="worker-1",
    )
    process.start()
    yield process
    assert process.stop() == 0, process.output()


@ON_EACH_BROKER
def test_writes_answer_while_the_broker_is_frozen_and_the_work_runs_after_it_thaws(
    api: TestClient, broker: FreezableBroker, worker: WorkerProcess
) -> None:
    users = [register_and_login(api, f"user{index}@example.com") for index in range(CLIENTS)]
    engine: Engine = api.app.state.engine  # type: ignore[attr-defined]
    set_admin(engine=engine, email="user0@example.com", admin=True)

    def submit(headers: Headers) -> Callable[[], httpx2.Response]:
        return lambda: api.post(JOBS, headers=headers, json=TINY_JOB)

    answers: list[httpx2.Response] = []
    with ThreadPoolExecutor(CLIENTS) as pool, frozen(broker):
        frozen_at = time.monotonic()
        while time.monotonic() - frozen_at < FROZEN_FOR_S:
            answers += answered_in_time(pool, [submit(headers) for headers in users])
        # The first job is the one the dispatcher took first: cancelling it needs its row.
        first = answers[0].headers["Location"]
        [cancel, ready, dead] = answered_in_time(
            pool,
            [
                lambda: api.delete(first, headers=users[0]),
                lambda: api.get("/health/ready"),
                lambda: api.get("/api/v1/admin/dead-letters", headers=users[0]),
            ],
        )

    refused = [answer for answer in answers if answer.status_code != 202]
    assert all(
        answer.status_code == 503 and int(answer.headers["Retry-After"]) >= 1 for answer in refused
    ), [(answer.status_code, answer.text) for answer in refused]
    accepted = len(answers) - len(refused)
    assert accepted > 0
    assert (cancel.status_code, cancel.json()["status"]) == (200, "cancelled"), cancel.text
    assert ready.status_code == 503, ready.text
    assert ready.json()["checks"]["broker"].startswith("not answering"), ready.text
    assert (dead.status_code, dead.headers["Retry-After"]) == (503, "5"), dead.text
    assert dead.json()["detail"].startswith("the broker does not answer"), dead.text

    expected = {Status.SUCCEEDED: accepted - 1, Status.CANCELLED: 1}
    wait_until(
        lambda: jobs_by_status(engine) == expected,
        f"every accepted job to finish: {expected}",
        timeout_s=WAIT_S,
    )
