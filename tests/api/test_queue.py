"""The executor: queued work runs first in, first out, one execution at a time."""

import itertools
import uuid
from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlmodel import Session

from nogil_bench.core.models import Status
from nogil_bench.executor import requeue_interrupted
from nogil_bench.jobs.models import Job
from tests.api.conftest import Headers, wait_until_finished
from tests.api.test_benchmarks import BENCHMARKS, benchmark
from tests.api.test_jobs import BATCHES, JOBS, synthetic_job


def test_jobs_batches_and_benchmarks_run_in_submission_order_without_overlapping(
    client: TestClient, alice: Headers, paused: Callable[[], None]
) -> None:
    batch_body = {"source": {"count": 8, "width": 16, "height": 16}, "pipeline": [{"op": "sepia"}]}
    locations = [
        client.post(JOBS, headers=alice, json=synthetic_job()).headers["Location"],
        client.post(BATCHES, headers=alice, json=batch_body).headers["Location"],
        client.post(BENCHMARKS, headers=alice, json=benchmark(runners=["threads"])).headers[
            "Location"
        ],
        client.post(BATCHES, headers=alice, json=batch_body).headers["Location"],
        client.post(JOBS, headers=alice, json=synthetic_job()).headers["Location"],
    ]

    paused()
    finished = [wait_until_finished(client, location, alice) for location in locations]

    intervals = [(item["started_at"], item["finished_at"]) for item in finished]
    assert all(item["status"] == "succeeded" for item in finished)
    assert intervals == sorted(intervals)
    for (_, finished_at), (next_started_at, _) in itertools.pairwise(intervals):
        assert finished_at <= next_started_at


def test_work_left_running_by_a_dead_process_is_requeued_at_start(
    client: TestClient, alice: Headers, paused: Callable[[], None]
) -> None:
    location = client.post(JOBS, headers=alice, json=synthetic_job()).headers["Location"]
    engine = client.app.state.engine  # type: ignore[attr-defined]
    with Session(engine) as session:
        job = session.get(Job, uuid.UUID(location.rsplit("/", 1)[1]))
        assert job is not None
        job.status = Status.RUNNING  # as a killed process would have left it
        session.add(job)
        session.commit()

    requeue_interrupted(engine)
    paused()

    assert wait_until_finished(client, location, alice)["status"] == "succeeded"
