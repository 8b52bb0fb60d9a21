"""Benchmarks of installed workloads, by name: the API runs the workloads installed beside the
service (GET /api/v1/workloads lists them), never code that a request names."""

import sys
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from nogil_bench.benchmarks.models import Benchmark
from tests.utils.api import (
    BENCHMARKS,
    WORKLOADS,
    Headers,
    benchmark,
    wait_until_finished,
    workload_benchmark,
)
from tests.utils.database import sqlite_only

BUILT_IN_WORKLOADS = ["fib", "images", "native", "pure-python", "small-batch"]
# Built-ins first, then every other package's: the examples are installed in a checkout.
PLUGINS = ["examples-contended", "examples-hash", "examples-pure"]
INSTALLED = f"installed workloads: {', '.join(BUILT_IN_WORKLOADS + PLUGINS)}"


def test_the_installed_workloads_are_listed_with_their_parameters_schemas_and_defaults(
    client: TestClient, alice: Headers
) -> None:
    response = client.get(WORKLOADS, headers=alice)

    assert response.status_code == 200
    listed = {workload["name"]: workload for workload in response.json()}
    assert list(listed) == BUILT_IN_WORKLOADS + PLUGINS
    assert listed["examples-hash"]["defaults"] == {"tasks": 16, "mebibytes": 32}
    fib = listed["fib"]
    assert "fib(n)" in fib["description"]
    assert fib["defaults"] == {"n": 32, "tasks": 4}
    assert fib["params_schema"]["properties"]["n"] == {
        "default": 32,
        "maximum": 40,
        "minimum": 1,
        "title": "N",
        "type": "integer",
    }
    for name in ("images", "native", "pure-python", "small-batch"):
        assert set(listed[name]["params_schema"]["properties"]) == {
            "count",
            "width",
            "height",
            "seed",
            "pipeline",
        }
    assert listed["native"]["defaults"]["width"] == 768
    assert listed["images"]["defaults"]["pipeline"] == [
        {"op": "box_blur", "params": {"radius": 2}},
        {"op": "sepia", "params": {}},
    ]


def test_listing_the_workloads_needs_a_token(client: TestClient) -> None:
    response = client.get(WORKLOADS)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


@sqlite_only
def test_an_installed_workload_is_measured_by_name_on_every_runner_and_compared(
    client: TestClient, alice: Headers
) -> None:
    response = client.post(BENCHMARKS, headers=alice, json=workload_benchmark())

    assert response.status_code == 202, response.text
    done = wait_until_finished(client, response.headers["Location"], alice)
    assert done["status"] == "succeeded", done["error"]
    spec = done["spec"]
    assert (spec["workload"], spec["params"], spec["count"], spec["pipeline"]) == (
        "fib",
        {"n": 15, "tasks": 4},
        None,
        None,
    )
    configurations = {(entry["runner"], entry["workers"]) for entry in done["results"]}
    parallel = {(runner, 1) for runner in ("threads", "asyncio", "processes")} | {
        (runner, 2) for runner in ("threads", "asyncio", "processes", "ceiling")
    }
    assert configurations == {("sequential", 1), *parallel}
    for entry in done["results"]:
        assert entry["outcome"] == "succeeded", entry
        assert entry["gil"] == 0
        assert entry["outputs_match"] is True
        assert len(entry["runs_wall_s"]) == done["rounds"]
        assert entry["throughput_images_per_s"] is None
        if entry["runner"] != "sequential":
            assert entry["speedup_verdict"].startswith(("faster by", "slower by", "no significant"))
    kinds = {comparison["kind"] for comparison in done["comparisons"]}
    assert kinds == {"vs sequential", "share of ceiling", "vs threads"}
    assert all(comparison["candidate"].startswith("fib ") for comparison in done["comparisons"])
    chart = client.get(f"{response.headers['Location']}/chart", headers=alice)
    assert "fib n=15 tasks=4" in chart.text


def test_the_parameters_a_workload_is_given_go_over_its_defaults(
    client: TestClient, alice: Headers, paused: Callable[[], None]
) -> None:
    body = workload_benchmark(workload={"name": "small-batch", "params": {"count": 3}})

    spec = client.post(BENCHMARKS, headers=alice, json=body).json()["spec"]

    assert (spec["workload"], spec["params"]) == (
        "small-batch",
        {
            "count": 3,
            "width": 24,
            "height": 24,
            "seed": 0,
            "pipeline": [
                {"op": "box_blur", "params": {"radius": 2}},
                {"op": "sepia", "params": {}},
            ],
        },
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"workload": {"name": "quicksort"}}, f"unknown workload 'quicksort'; {INSTALLED}"),
        (
            {"workload": {"name": "fib"}, **benchmark()},
            "give either source and pipeline (synthetic images) or workload",
        ),
        ({"workload": None}, "nothing to measure: give source and pipeline"),
        (
            {"workload": None, "source": {"count": 2, "width": 8, "height": 8}},
            "pipeline is missing",
        ),
        (
            {"workload": {"name": "fib", "params": {"n": 99}}},
            "workload 'fib': n: Input should be less than or equal to 40",
        ),
        (
            {"workload": {"name": "fib", "params": {"depth": 3}}},
            "workload 'fib' takes no parameter 'depth'; its parameters: n, tasks",
        ),
        # Read as strictly as the rest of a body: JSON's true is not the number 1.
        (
            {"workload": {"name": "fib", "params": {"n": True}}},
            "workload 'fib': n: Input should be a valid integer",
        ),
        (
            {"workload": {"name": "images", "params": {"pipeline": [{"op": "melt"}]}}},
            "melt: unknown operation",
        ),
        # The service's own limits on images hold when the images are a workload's.
        (
            {"workload": {"name": "small-batch", "params": {"count": 1000}}},
            "a batch holds at most 256 images, got 1000",
        ),
        (
            {"workload": {"name": "native", "params": {"width": 8000, "height": 8000}}},
            "synthetic images are at most",
        ),
    ],
)
def test_a_bad_workload_benchmark_is_422_naming_the_problem_and_not_stored(
    client: TestClient, alice: Headers, overrides: dict[str, Any], message: str
) -> None:
    body = {
        key: value
        for key, value in (workload_benchmark() | overrides).items()
        if value is not None  # None: left out
    }

    response = client.post(BENCHMARKS, headers=alice, json=body)

    assert response.status_code == 422
    assert message in response.json()["detail"]
    assert client.get(BENCHMARKS, headers=alice).json()["count"] == 0


@pytest.mark.parametrize("name", ["this:s", "this", "os:system", "mypkg.mod:fn"])
def test_a_module_path_is_an_unknown_workload_and_nothing_is_imported(
    client: TestClient, alice: Headers, name: str
) -> None:
    # `this` prints the Zen of Python when imported: were a name ever imported, it would be.
    assert "this" not in sys.modules

    response = client.post(
        BENCHMARKS, headers=alice, json=workload_benchmark(workload={"name": name})
    )

    assert response.status_code == 422
    assert response.json()["detail"] == f"unknown workload {name!r}; {INSTALLED}"
    assert "this" not in sys.modules
    assert client.get(BENCHMARKS, headers=alice).json()["count"] == 0


def test_a_benchmark_stored_before_workloads_reads_as_images(
    client: TestClient, alice: Headers, paused: Callable[[], None]
) -> None:
    location = client.post(BENCHMARKS, headers=alice, json=benchmark()).headers["Location"]
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        stored = session.get_one(Benchmark, uuid.UUID(location.rsplit("/", 1)[1]))
        stored.spec = {
            key: value for key, value in stored.spec.items() if key not in {"workload", "params"}
        }
        session.add(stored)
        session.commit()

    spec = client.get(location, headers=alice).json()["spec"]

    assert (spec["workload"], spec["params"], spec["count"]) == (None, {}, 4)
