"""The HTTP API as the tests use it: routes, request bodies, users logged in through the real
endpoints, and waits for queued work to finish."""

import io
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from PIL import Image

from nogil_bench.core.config import Settings
from nogil_bench.workloads.images import ImageJob, SyntheticSource, run_job, validate_steps
from nogil_bench.workloads.model import Step
from tests.utils.waiting import wait_until

type Headers = dict[str, str]

JOBS = "/api/v1/jobs"
BATCHES = "/api/v1/batches"
BENCHMARKS = "/api/v1/benchmarks"
# What every HTML page of the service sends (reports/responses.py): no script, nothing remote,
# no framing, no <base>, no form posts.
PAGE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
WORKLOADS = "/api/v1/workloads"
FINISHED = {"succeeded", "failed", "cancelled"}
WAIT_TIMEOUT_S = 90.0
PURE_PIPELINE: list[dict[str, Any]] = [{"op": "box_blur", "params": {"radius": 1}}, {"op": "sepia"}]
SMALL_BATCH = {"source": {"count": 3, "width": 8, "height": 8}, "pipeline": [{"op": "invert"}]}
# The cheapest benchmark the API takes: two configurations in one GIL mode, no warm-up.
SMALL_BENCHMARK = {
    "source": {"count": 2, "width": 8, "height": 8},
    "pipeline": [{"op": "invert"}],
    "runners": ["threads"],
    "workers": [1],
    "gil": [0],
    "warmups": 0,
}


def register_and_login(
    client: TestClient, email: str, password: str = "a fine password"
) -> Headers:
    registered = client.post("/api/v1/auth/register", json={"email": email, "password": password})
    assert registered.status_code == 201, registered.text
    token = client.post("/api/v1/auth/token", data={"username": email, "password": password})
    assert token.status_code == 200, token.text
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


def wait_until_finished(client: TestClient, url: str, headers: Headers) -> dict[str, Any]:
    """The job, batch or benchmark at `url` once it has finished, however it finished."""

    def finished() -> dict[str, Any] | None:
        body: dict[str, Any] = client.get(url, headers=headers).json()
        return body if body["status"] in FINISHED else None

    body = wait_until(finished, f"{url} to finish", timeout_s=WAIT_TIMEOUT_S)
    assert body is not None
    return body


def stored_files(settings: Settings) -> list[Path]:
    """Every upload and output file the service has written."""
    return sorted(
        path
        for folder in (settings.uploads_dir, settings.outputs_dir)
        if folder.exists()
        for path in folder.iterdir()
    )


def png(
    width: int = 32, height: int = 24, colour: str = "teal", image_format: str = "PNG"
) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, format=image_format)
    return buffer.getvalue()


def served_dependants(app: FastAPI) -> list[Dependant]:
    """Each API route's dependency tree as FastAPI serves it. `app.routes` holds the routers
    the app includes, not their routes, and FastAPI serves an included route through a
    dependant of its own, with what including it added."""
    found = (getattr(context, "dependant", None) for context in iter_route_contexts(app.routes))
    return [dependant for dependant in found if isinstance(dependant, Dependant)]


def synthetic_job(**overrides: Any) -> dict[str, Any]:
    return {
        "source": {"width": 48, "height": 32, "seed": 7},
        "pipeline": PURE_PIPELINE,
        "runner": "threads",
        "workers": 2,
    } | overrides


def benchmark(**overrides: Any) -> dict[str, Any]:
    """Small images, in the fewest rounds with an interval (two blocks of two)."""
    return {
        "source": {"count": 4, "width": 24, "height": 16, "seed": 3},
        "pipeline": [{"op": "box_blur", "params": {"radius": 1}}],
        "runners": ["threads", "asyncio", "interpreters"],
        "workers": [1, 2],
        "repeats": 4,
        "max_repeats": 4,
        "block_rounds": 2,
    } | overrides


def workload_benchmark(**overrides: Any) -> dict[str, Any]:
    """An installed workload by name, measured in seconds: fib(15) x 4 tasks, one GIL mode,
    the fewest rounds with an interval (two blocks of two), no warm-up."""
    return {
        "workload": {"name": "fib", "params": {"n": 15, "tasks": 4}},
        "runners": ["threads", "asyncio", "processes"],
        "workers": [1, 2],
        "gil": [0],
        "repeats": 4,
        "max_repeats": 4,
        "block_rounds": 2,
        "warmups": 0,
    } | overrides


def expected_png(width: int, height: int, seed: int, pipeline: list[dict[str, Any]]) -> bytes:
    """What running `pipeline` on the synthetic image directly, in this process, makes."""
    steps = validate_steps([Step(step["op"], step.get("params", {})) for step in pipeline])
    return run_job(ImageJob(SyntheticSource(width, height, seed), steps))
