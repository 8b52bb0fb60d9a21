"""The executor: queued work runs first in, first out, one execution at a time."""

import itertools
from collections.abc import Callable

from fastapi.testclient import TestClient

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
