"""The executor: queued work runs first in, first out, one execution at a time."""

import itertools
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from multiprocessing import forkserver

import pytest
from fastapi.testclient import TestClient

from nogil_bench.core.config import Settings
from nogil_bench.jobs import runs as job_runs
from nogil_bench.runners import BaseRunner
from nogil_bench.runners.timing import Outcome
from nogil_bench.workloads.images import ImageJob, run_jobs_captured
from tests.utils.api import (
    BATCHES,
    BENCHMARKS,
    JOBS,
    Headers,
    benchmark,
    synthetic_job,
    wait_until_finished,
)


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


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread nice values are Linux's")
def test_the_work_runs_at_a_lower_priority_than_the_requests(
    client: TestClient, alice: Headers, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[int, int]] = []
    real_run = run_jobs_captured

    def note_priorities(runner: BaseRunner, jobs: Sequence[ImageJob]) -> list[Outcome[bytes]]:
        worker = runner.map(priority_here, [0])[0]  # a thread of the threads runner's pool
        seen.append((priority_here(0), worker))
        return real_run(runner, jobs)

    monkeypatch.setattr(job_runs, "run_jobs_captured", note_priorities)
    location = client.post(JOBS, headers=alice, json=synthetic_job()).headers["Location"]
    assert wait_until_finished(client, location, alice)["status"] == "succeeded"

    assert seen == [(settings.EXECUTOR_NICENESS, settings.EXECUTOR_NICENESS)]
    assert priority_here(0) == 0, "the test's (a request's) thread keeps its priority"


def priority_here(_: int) -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


@pytest.fixture
def fresh_forkserver() -> None:
    """Pool processes fork from this process's one forkserver, which keeps the signal mask of
    the thread that started it: another test (in the main thread) may have started it already.
    The service starts it from the executor's thread only; so does this test, after a stop."""
    forkserver._forkserver._stop()  # type: ignore[attr-defined]  # no public way to stop it


@pytest.mark.skipif(not hasattr(signal, "pthread_sigmask"), reason="no signal masks here")
def test_a_process_pool_worker_cannot_be_interrupted_by_the_terminals_ctrl_c(
    client: TestClient, alice: Headers, monkeypatch: pytest.MonkeyPatch, fresh_forkserver: None
) -> None:
    seen: list[tuple[bool, bool]] = []
    real_run = run_jobs_captured

    def note_masks(runner: BaseRunner, jobs: Sequence[ImageJob]) -> list[Outcome[bytes]]:
        in_pool = runner.map(sigint_blocked_here, [0])[0]  # a process of the pool
        seen.append((sigint_blocked_here(0), in_pool))
        return real_run(runner, jobs)

    monkeypatch.setattr(job_runs, "run_jobs_captured", note_masks)
    body = synthetic_job() | {"runner": "processes"}
    location = client.post(JOBS, headers=alice, json=body).headers["Location"]
    assert wait_until_finished(client, location, alice)["status"] == "succeeded"

    # Blocked from the worker's first instruction, not from an initializer that runs later.
    assert seen == [(True, True)]
    assert not sigint_blocked_here(0), "the test's (a request's) thread still takes Ctrl+C"


def sigint_blocked_here(_: int) -> bool:
    return signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, [])
