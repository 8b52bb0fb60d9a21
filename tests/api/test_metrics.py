"""GET /metrics speaks Prometheus: requests by route and status class, jobs by state and
runner, job durations by runner, queue depth, running jobs, the GIL, process CPU and RSS."""

import sys
from collections.abc import Callable

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.api.conftest import Headers, wait_until_finished
from tests.api.test_jobs import JOBS, synthetic_job


def samples(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_requests_are_counted_by_route_template_and_status_class(
    client: TestClient, alice: Headers
) -> None:
    route = (("method", "GET"), ("route", "/api/v1/jobs/{job_id}"), ("status_class", "4xx"))
    before = samples(client).get(("nogil_bench_http_requests_total", route), 0.0)

    client.get(f"{JOBS}/01a20000-0000-7000-8000-000000000000", headers=alice)
    client.get(f"{JOBS}/01a20000-0000-7000-8000-000000000001", headers=alice)

    after = samples(client)
    assert after[("nogil_bench_http_requests_total", route)] == before + 2
    assert after[("nogil_bench_http_request_duration_seconds_count", route)] >= 2


def test_jobs_queue_and_durations_are_reported(client: TestClient, alice: Headers) -> None:
    runner_label = (("runner", "threads"),)
    before = samples(client).get(("nogil_bench_job_duration_seconds_count", runner_label), 0.0)
    location = client.post(JOBS, headers=alice, json=synthetic_job()).headers["Location"]
    wait_until_finished(client, location, alice)

    after = samples(client)

    assert after[("nogil_bench_jobs", (("runner", "threads"), ("state", "succeeded")))] >= 1
    assert after[("nogil_bench_job_duration_seconds_count", runner_label)] == before + 1
    assert after[("nogil_bench_queue_depth", ())] == 0
    assert after[("nogil_bench_running_jobs", ())] == 0
    assert after[("nogil_bench_gil_enabled", ())] == (1.0 if sys._is_gil_enabled() else 0.0)
    assert after[("process_resident_memory_bytes", ())] > 0
    assert ("process_cpu_seconds_total", ()) in after


def test_queue_depth_counts_waiting_jobs(
    client: TestClient, alice: Headers, paused: Callable[[], None]
) -> None:
    for _ in range(3):
        client.post(JOBS, headers=alice, json=synthetic_job())

    assert samples(client)[("nogil_bench_queue_depth", ())] == 3
