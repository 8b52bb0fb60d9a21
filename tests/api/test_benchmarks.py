"""Benchmarks: one workload through several runners, one after another, compared."""

import io
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyperf
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from nogil_bench.work.queue import claim_next
from tests.utils.api import BENCHMARKS, Headers, benchmark, wait_until_finished
from tests.utils.database import sqlite_only


def test_a_benchmark_measures_every_configuration_in_both_gil_modes_in_paired_rounds(
    client: TestClient, alice: Headers
) -> None:
    response = client.post(BENCHMARKS, headers=alice, json=benchmark(runners=["threads"]))

    assert response.status_code == 202, response.text
    assert response.headers["Location"] == f"{BENCHMARKS}/{response.json()['id']}"
    done = wait_until_finished(client, response.headers["Location"], alice)
    assert done["status"] == "succeeded", done["error"]
    spec = done["spec"]
    assert (spec["runners"], spec["gil"], spec["repeats"], spec["block_rounds"]) == (
        ["sequential", "threads"],
        [0, 1],
        4,
        2,
    )
    configurations = {
        (entry["runner"], entry["workers"], entry["gil"]) for entry in done["results"]
    }
    assert configurations == {
        (runner, workers, gil)
        for gil in (0, 1)
        for runner, workers in [("sequential", 1), ("threads", 1), ("threads", 2), ("ceiling", 2)]
    }
    # Two blocks of two rounds, each block in fresh worker processes.
    assert (done["blocks"], done["rounds"]) == (2, 4)
    assert done["stop"]
    by_key = {(entry["runner"], entry["workers"], entry["gil"]): entry for entry in done["results"]}
    for entry in done["results"]:
        assert entry["outcome"] == "succeeded"
        assert entry["outputs_match"] is True
        assert len(entry["runs_wall_s"]) == done["rounds"]
        assert len(entry["warmups_s"]) == 1
        assert entry["wall_s"] == pytest.approx(statistics.median(entry["runs_wall_s"]))
        assert entry["setup_s"] > 0
        assert entry["peak_rss_bytes"] > 0
        if entry["runner"] == "sequential":
            assert (entry["speedup"], entry["speedup_ci"]) == (1.0, None)
            continue
        # The speedup is the geometric mean of per-round ratios against sequential in the same
        # mode (each block's rounds weigh alike, and the blocks are of one size).
        baseline = by_key[("sequential", 1, entry["gil"])]["runs_wall_s"]
        ratios = [b / c for b, c in zip(baseline, entry["runs_wall_s"], strict=True)]
        assert entry["speedup"] == pytest.approx(statistics.geometric_mean(ratios))
        low, high = entry["speedup_ci"]
        assert low <= entry["speedup"] <= high
        assert entry["speedup_verdict"].startswith(("faster by", "slower by", "no significant"))
        assert entry["efficiency"] == pytest.approx(entry["speedup"] / entry["workers"])
        if entry["runner"] == "threads" and entry["workers"] == 2:
            assert entry["ceiling_share"] is not None
    kinds = {comparison["kind"] for comparison in done["comparisons"]}
    assert {"vs sequential", "GIL=0 vs GIL=1", "share of ceiling"} <= kinds
    for comparison in done["comparisons"]:
        assert (comparison["pairs"], comparison["blocks"]) == (done["rounds"], done["blocks"])
        # The verdict is what the interval says: above 1 faster, below 1 slower, else no difference.
        low, high = comparison["ci"]
        expected = "faster" if low > 1 else "slower" if high < 1 else "no significant difference"
        assert comparison["verdict"] == expected, comparison
        assert comparison["text"].startswith(expected), comparison


@sqlite_only
def test_a_runner_that_cannot_run_native_steps_is_reported_unsupported(
    client: TestClient, alice: Headers
) -> None:
    body = benchmark(pipeline=[{"op": "grayscale"}], runners=["interpreters"], workers=[1], gil=[0])

    done = wait_until_finished(
        client, client.post(BENCHMARKS, headers=alice, json=body).headers["Location"], alice
    )

    assert done["status"] == "succeeded", done["error"]
    interpreters = [entry for entry in done["results"] if entry["runner"] == "interpreters"]
    assert [(entry["outcome"], entry["speedup"]) for entry in interpreters] == [
        ("unsupported", None)
    ]
    assert "Pillow cannot be loaded in subinterpreters" in interpreters[0]["error"]


@sqlite_only
@pytest.mark.parametrize(
    ("chart_format", "media_type"), [("svg", "image/svg+xml"), ("png", "image/png")]
)
def test_the_chart_draws_speedups_with_their_intervals_and_the_host_ceiling(
    client: TestClient, alice: Headers, chart_format: str, media_type: str
) -> None:
    body = benchmark(runners=["threads"], gil=[0])
    location = client.post(BENCHMARKS, headers=alice, json=body).headers["Location"]
    wait_until_finished(client, location, alice)

    chart = client.get(f"{location}/chart", headers=alice, params={"format": chart_format})

    assert chart.status_code == 200
    assert chart.headers["content-type"].startswith(media_type)
    if chart_format == "svg":
        assert chart.text.startswith("<svg")
        assert "threads" in chart.text
        assert 'class="whisker"' in chart.text
        assert 'class="ceiling"' in chart.text
    else:
        assert Image.open(io.BytesIO(chart.content)).format == "PNG"


@sqlite_only
def test_a_finished_benchmark_reads_as_a_pyperf_suite(
    client: TestClient, alice: Headers, tmp_path: Path
) -> None:
    body = benchmark(runners=["threads"], workers=[2], gil=[0])
    location = client.post(BENCHMARKS, headers=alice, json=body).headers["Location"]
    done = wait_until_finished(client, location, alice)

    response = client.get(location, headers=alice, params={"format": "pyperf"})

    assert response.status_code == 200
    path = tmp_path / "suite.json"
    path.write_bytes(response.content)
    suite = pyperf.BenchmarkSuite.load(str(path))
    assert sorted(suite.get_benchmark_names()) == [
        "ceiling w=2 GIL=0",
        "sequential w=1 GIL=0",
        "threads w=2 GIL=0",
    ]
    threads = suite.get_benchmark("threads w=2 GIL=0")
    stored = next(entry for entry in done["results"] if entry["runner"] == "threads")
    assert list(threads.get_values()) == pytest.approx(stored["runs_wall_s"])


def test_pyperf_format_is_409_before_results_exist(
    client: TestClient, alice: Headers, paused: Callable[[], None]
) -> None:
    location = client.post(BENCHMARKS, headers=alice, json=benchmark()).headers["Location"]

    response = client.get(location, headers=alice, params={"format": "pyperf"})

    assert response.status_code == 409
    assert "no results yet" in response.json()["detail"]


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
    assert (spec["gil"], spec["repeats"], spec["max_repeats"], spec["warmups"]) == (
        [0, 1],
        6,
        6,
        1,
    )
    assert spec["block_rounds"] == 3  # 2 blocks of fresh processes


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"runners": ["threads", "greenlets"]}, "unknown runner 'greenlets'"),
        ({"runners": []}, "runners is empty"),
        ({"workers": [1, 99]}, "workers must be between 1 and 8, got 99"),
        ({"workers": []}, "workers is empty"),
        ({"pipeline": [{"op": "box_blur", "params": {"radius": -1}}]}, "box_blur.radius"),
        ({"source": {"count": 10_000, "width": 8, "height": 8}}, "at most 256 images"),
        ({"gil": []}, "gil is empty"),
        ({"repeats": 10, "max_repeats": 8}, "max_repeats (8) is below repeats (10)"),
        (
            {"repeats": 6, "max_repeats": 6, "block_rounds": 6},
            "block_rounds (6) leaves fewer than 2 blocks in repeats (6): an interval needs 2 "
            "blocks of fresh processes; ask for block_rounds below repeats",
        ),
        (
            {"runners": ["celery-threads"], "gil": [0]},
            "the celery-threads runner maps tasks over Celery task workers, and this service "
            "has no broker: set NOGIL_BENCH_BROKER_URL",
        ),
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
