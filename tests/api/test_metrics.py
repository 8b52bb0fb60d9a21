"""GET /metrics speaks Prometheus: requests by route and status class, jobs by state and
runner, job durations by runner, queue depth, running jobs, the GIL, process CPU and RSS. Its
database reads are reused for METRICS_CACHE_SECONDS; with METRICS_TOKEN, it needs the token."""

import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy import Engine, event

from nogil_bench.core.config import Settings
from nogil_bench.main import create_app
from nogil_bench.work.registry import WORK_KINDS
from tests.utils.api import JOBS, Headers, synthetic_job, wait_until_finished

SCRAPE_TOKEN = "a-scrape-token-" + "t" * 24


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Every scrape reads the store, so that a figure counts what the test just did."""
    settings.METRICS_CACHE_SECONDS = 0
    return settings


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
    runner_label = (("gil", "1" if sys._is_gil_enabled() else "0"), ("runner", "threads"))
    before = samples(client).get(("nogil_bench_job_duration_seconds_count", runner_label), 0.0)
    location = client.post(JOBS, headers=alice, json=synthetic_job()).headers["Location"]
    wait_until_finished(client, location, alice)

    after = samples(client)

    assert after[("nogil_bench_jobs", (("runner", "threads"), ("state", "succeeded")))] >= 1
    assert after[("nogil_bench_job_duration_seconds_count", runner_label)] == before + 1
    assert after[("nogil_bench_queue_depth", ())] == 0
    assert after[("nogil_bench_running_jobs", ())] == 0
    for queue in ("jobs", "benchmarks"):  # every queue, waiting or not
        assert after[("nogil_bench_queued", (("queue", queue),))] == 0
        assert after[("nogil_bench_queued_oldest_age_seconds", (("queue", queue),))] == 0
        assert after[("nogil_bench_leases", (("queue", queue),))] == 0
    assert after[("nogil_bench_gil_enabled", ())] == (1.0 if sys._is_gil_enabled() else 0.0)
    assert after[("process_resident_memory_bytes", ())] > 0
    assert ("process_cpu_seconds_total", ()) in after


def test_queue_depth_counts_waiting_jobs(
    client: TestClient, alice: Headers, paused: Callable[[], None]
) -> None:
    for _ in range(3):
        client.post(JOBS, headers=alice, json=synthetic_job())

    assert samples(client)[("nogil_bench_queue_depth", ())] == 3


def store_reads(engine: Engine) -> list[str]:
    """The aggregate queries run on `engine` from now on (the collector's are its only ones
    with count() or sum(), while nothing is submitted)."""
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "count(" in statement or "sum(" in statement:
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    return statements


@pytest.fixture
def cached_client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings.model_copy(update={"METRICS_CACHE_SECONDS": 60}))) as c:
        yield c


def test_scrapes_within_the_cache_window_read_the_store_once(cached_client: TestClient) -> None:
    reads = store_reads(cached_client.app.state.engine)  # type: ignore[attr-defined]

    first = samples(cached_client)
    read_by_the_first = len(reads)
    second = samples(cached_client)

    # Jobs by state and runner; processes holding leases; each kind of work's queue.
    assert read_by_the_first == 2 + len(WORK_KINDS)
    assert len(reads) == read_by_the_first
    assert second[("nogil_bench_queue_depth", ())] == first[("nogil_bench_queue_depth", ())]


def test_a_scrape_after_the_cache_window_reads_the_store_again(
    cached_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = store_reads(cached_client.app.state.engine)  # type: ignore[attr-defined]
    samples(cached_client)
    later = time.monotonic() + 61
    monkeypatch.setattr("nogil_bench.core.metrics.monotonic", lambda: later)

    samples(cached_client)

    assert len(reads) == 2 * (2 + len(WORK_KINDS))


@pytest.fixture
def guarded_client(settings: Settings) -> Iterator[TestClient]:
    token = SecretStr(SCRAPE_TOKEN)
    with TestClient(create_app(settings.model_copy(update={"METRICS_TOKEN": token}))) as c:
        yield c


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer not-the-token", f"Basic {SCRAPE_TOKEN}", f"Bearer {SCRAPE_TOKEN}x"],
    ids=["none", "wrong", "not-bearer", "longer"],
)
def test_with_a_metrics_token_a_scrape_without_it_is_401_naming_the_scheme(
    guarded_client: TestClient, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}

    response = guarded_client.get("/metrics", headers=headers)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert "NOGIL_BENCH_METRICS_TOKEN" in response.json()["detail"]


def test_with_a_metrics_token_a_scrape_bearing_it_gets_the_metrics(
    guarded_client: TestClient,
) -> None:
    response = guarded_client.get("/metrics", headers={"Authorization": f"Bearer {SCRAPE_TOKEN}"})

    assert response.status_code == 200
    assert "nogil_bench_gil_enabled" in response.text


def test_a_metrics_token_shorter_than_16_characters_is_refused() -> None:
    with pytest.raises(ValueError, match="METRICS_TOKEN"):
        Settings(METRICS_TOKEN="short", _env_file=None)  # type: ignore[arg-type, call-arg]
