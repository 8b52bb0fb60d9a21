"""Benchmarks: one workload through several runners, one after another, compared."""

import io
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from nogil_bench.executor import claim_next
from tests.api.conftest import Headers, wait_until_finished

BENCHMARKS = "/api/v1/benchmarks"


def benchmark(**overrides: Any) -> dict[str, Any]:
    return {
        "source": {"count": 4, "width": 24, "height": 16, "seed": 3},
        "pipeline": [{"op": "box_blur", "params": {"radius": 1}}],
        "runners": ["threads", "asyncio", "interpreters"],
        "workers": [1, 2],
    } | overrides


def test_a_benchmark_compares_each_runner_with_sequential(
    client: TestClient, alice: Headers
) -> None:
    response = client.post(BENCHMARKS, headers=alice, json=benchmark())

    assert response.status_code == 202, response.text
    assert response.headers["Location"] == f"{BENCHMARKS}/{response.json()['id']}"
    done = wait_until_finished(client, response.headers["Location"], alice)
    assert done["status"] == "succeeded", done["error"]
    assert done["spec"]["runners"] == ["sequential", "threads", "asyncio", "interpreters"]
    assert done["spec"]["pipeline"] == [{"op": "box_blur", "params": {"radius": 1}}]
    configurations = [(entry["runner"], entry["workers"]) for entry in done["results"]]
    assert configurations == [
        ("sequential", 1),
        ("threads", 1),
        ("threads", 2),
        ("asyncio", 1),
        ("asyncio", 2),
        ("interpreters", 1),
        ("interpreters", 2),
    ]
    baseline = done["results"][0]
    assert baseline["speedup"] == 1.0
    for entry in done["results"]:
        assert entry["outcome"] == "succeeded"
        assert entry["outputs_match"] is True
        assert entry["speedup"] == pytest.approx(baseline["wall_s"] / entry["wall_s"])
        assert entry["efficiency"] == pytest.approx(entry["speedup"] / entry["workers"])
        assert entry["setup_s"] > 0  # starting the pool and every worker takes some time
        assert entry["peak_rss_bytes"] > 0
        assert entry["latency_p50_s"] <= entry["latency_p95_s"]
        assert (entry["karp_flatt"] is None) == (entry["workers"] == 1)
    # Each configuration's set-up and run, one after another, fit in the benchmark's run.
    elapsed_s = (
        datetime.fromisoformat(done["finished_at"]) - datetime.fromisoformat(done["started_at"])
    ).total_seconds()
    assert sum(entry["setup_s"] + entry["wall_s"] for entry in done["results"]) <= elapsed_s


def test_a_runner_that_cannot_run_native_steps_is_reported_unsupported(
    client: TestClient, alice: Headers
) -> None:
    body = benchmark(pipeline=[{"op": "grayscale"}], runners=["interpreters"], workers=[1])

    done = wait_until_finished(
        client, client.post(BENCHMARKS, headers=alice, json=body).headers["Location"], alice
    )

    assert done["status"] == "succeeded"
    interpreters = done["results"][1]
    assert interpreters["outcome"] == "unsupported"
    assert "Pillow cannot be loaded in subinterpreters" in interpreters["error"]
    assert interpreters["speedup"] is None


@pytest.mark.parametrize(
    ("chart_format", "media_type"), [("svg", "image/svg+xml"), ("png", "image/png")]
)
def test_the_chart_draws_speedups(
    client: TestClient, alice: Headers, chart_format: str, media_type: str
) -> None:
    body = benchmark(runners=["threads"])
    location = client.post(BENCHMARKS, headers=alice, json=body).headers["Location"]
    wait_until_finished(client, location, alice)

    chart = client.get(f"{location}/chart", headers=alice, params={"format": chart_format})

    assert chart.status_code == 200
    assert chart.headers["content-type"].startswith(media_type)
    if chart_format == "svg":
        assert chart.text.startswith("<svg")
        assert "threads" in chart.text
    else:
        assert Image.open(io.BytesIO(chart.content)).format == "PNG"


def test_the_chart_is_409_before_results_exist(
    client: TestClient, alice: Headers, paused: Callable[[], None]
) -> None:
    location = client.post(BENCHMARKS, headers=alice, json=benchmark()).headers["Location"]

    response = client.get(f"{location}/chart", headers=alice)

    assert response.status_code == 409
    assert "queued" in response.json()["detail"]


def test_the_defaults_compare_every_runner_at_one_and_all_cpus(
    client: TestClient, alice: Headers, paused: Callable[[], None]
) -> None:
    body = {"source": {"count": 2, "width": 8, "height": 8}, "pipeline": [{"op": "invert"}]}

    spec = client.post(BENCHMARKS, headers=alice, json=body).json()["spec"]

    assert spec["runners"] == ["sequential", "threads", "processes", "asyncio", "interpreters"]
    assert spec["workers"][0] == 1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"runners": ["threads", "greenlets"]}, "unknown runner 'greenlets'"),
        ({"runners": []}, "runners is empty"),
        ({"workers": [1, 99]}, "workers must be between 1 and 8, got 99"),
        ({"workers": []}, "workers is empty"),
        ({"pipeline": [{"op": "box_blur", "params": {"radius": -1}}]}, "box_blur.radius"),
        ({"source": {"count": 10_000, "width": 8, "height": 8}}, "at most 256 images"),
    ],
)
def test_a_bad_benchmark_is_422_and_not_stored(
    client: TestClient, alice: Headers, overrides: dict[str, Any], message: str
) -> None:
    response = client.post(BENCHMARKS, headers=alice, json=benchmark(**overrides))

    assert response.status_code == 422
    assert message in response.json()["detail"]
    assert client.get(BENCHMARKS, headers=alice).json()["count"] == 0


def test_deleting_a_queued_benchmark_cancels_it_and_it_never_runs(
    client: TestClient, alice: Headers, paused: Callable[[], None]
) -> None:
    queued = client.post(BENCHMARKS, headers=alice, json=benchmark(runners=["threads"])).json()
    later = client.post(BENCHMARKS, headers=alice, json=benchmark(runners=["threads"])).json()

    response = client.delete(f"{BENCHMARKS}/{queued['id']}", headers=alice)
    paused()
    wait_until_finished(client, f"{BENCHMARKS}/{later['id']}", alice)

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    after = client.get(f"{BENCHMARKS}/{queued['id']}", headers=alice).json()
    assert (after["status"], after["started_at"], after["results"]) == ("cancelled", None, [])


def test_deleting_a_running_benchmark_is_409(
    client: TestClient, alice: Headers, paused: Callable[[], None]
) -> None:
    location = client.post(BENCHMARKS, headers=alice, json=benchmark()).headers["Location"]
    state = client.app.state  # type: ignore[attr-defined]
    claim_next(state.engine, state.executor.boot_id, 30)  # running, as the executor marks it

    response = client.delete(location, headers=alice)

    assert response.status_code == 409
    assert "is running; it can be deleted once it finishes" in response.json()["detail"]
    assert client.get(location, headers=alice).json()["status"] == "running"


def test_deleting_a_finished_benchmark_removes_it(client: TestClient, alice: Headers) -> None:
    body = benchmark(runners=["threads"], workers=[1])
    location = client.post(BENCHMARKS, headers=alice, json=body).headers["Location"]
    wait_until_finished(client, location, alice)

    response = client.delete(location, headers=alice)

    assert response.status_code == 204
    assert client.get(location, headers=alice).status_code == 404
    assert client.get(BENCHMARKS, headers=alice).json()["count"] == 0
