"""A running benchmark's `GET` carries how far it is (`progress`: rounds done of the bound, the
rounds the adaptive stop is expected to need, elapsed, an estimate of the time left), written
by the measuring thread at most every couple of seconds and at every block's end; a finished
benchmark carries none."""

import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine
from sqlmodel import Session

from nogil_bench.bench.progress import Progress
from nogil_bench.benchmarks import runs as benchmark_runs
from nogil_bench.benchmarks.models import Benchmark
from nogil_bench.benchmarks.runs import ProgressWriter, measure
from nogil_bench.core.models import Status
from tests.utils.api import (
    BENCHMARKS,
    FINISHED,
    WAIT_TIMEOUT_S,
    Headers,
    wait_until_finished,
    workload_benchmark,
)
from tests.utils.waiting import wait_until

# Two blocks of two rounds of fib(5) twice, sequential against 2 threads (and the ceiling's
# 2 processes, one task each): seconds, mostly starting worker processes.
TINY = workload_benchmark(
    workload={"name": "fib", "params": {"n": 5, "tasks": 2}}, runners=["threads"], workers=[2]
)


def progress(**overrides: Any) -> Progress:
    fields: dict[str, Any] = {
        "phase": "rounds",
        "setups_done": 3,
        "setups": 3,
        "rounds_done": 1,
        "rounds_bound": 4,
        "rounds_expected": 4,
        "blocks_done": 0,
        "block_rounds": 2,
        "elapsed_s": 1.0,
        "left_s": 3.0,
        "widest_ci": None,
        "target_ci": 0.05,
    }
    return Progress(**(fields | overrides))


def test_a_running_benchmark_shows_its_progress_and_a_finished_one_none(
    client: TestClient, alice: Headers, monkeypatch: pytest.MonkeyPatch
) -> None:
    first_block, release = threading.Event(), threading.Event()

    def held_after_the_first_block(
        *args: Any, on_progress: Callable[[Progress], None], **kwargs: Any
    ) -> Any:
        """The service's own measuring, held still once the first block is reported (and so
        written), so that the test reads the benchmark while it runs."""

        def report(progress: Progress) -> None:
            on_progress(progress)
            if progress.at_block_end and progress.blocks_done == 1:
                first_block.set()
                assert release.wait(timeout=60), "the test never released the benchmark"

        return measure(*args, on_progress=report, **kwargs)

    monkeypatch.setattr(benchmark_runs, "measure", held_after_the_first_block)
    location = client.post(BENCHMARKS, headers=alice, json=TINY).headers["Location"]
    try:
        wait_until(
            lambda: (
                first_block.is_set()
                or client.get(location, headers=alice).json()["status"] in FINISHED
            ),
            "the benchmark's first block",
            timeout_s=WAIT_TIMEOUT_S,
        )

        running = client.get(location, headers=alice).json()
        page = client.get(f"{location}/report", headers=alice).text
    finally:
        release.set()
    done = wait_until_finished(client, location, alice)

    assert running["status"] == "running", running["error"]
    shown = running["progress"]
    assert shown is not None
    assert {key: shown[key] for key in ("phase", "rounds_done", "rounds_bound")} == {
        "phase": "rounds",
        "rounds_done": 2,  # the first block's two rounds
        "rounds_bound": 4,
    }
    assert shown["rounds_expected"] == 4  # repeats: no interval yet to say otherwise
    assert shown["widest_ci"] is None  # an interval needs two blocks
    assert shown["elapsed_s"] > 0
    # Two rounds and the second block's set-up are left.
    assert shown["left_s"] is not None
    assert shown["left_s"] > 0
    # The report page of the running benchmark says so, and how far it is.
    words = " ".join(page.split())
    assert "Benchmark running" in words
    assert "2 of 4 rounds expected (at most 4)" in words
    assert done["status"] == "succeeded", done["error"]
    assert done["progress"] is None


def test_progress_is_written_at_most_every_couple_of_seconds_but_at_every_block_end() -> None:
    now = [0.0]
    written: list[dict[str, Any] | None] = []

    class Recording(ProgressWriter):
        def store(self, progress: dict[str, Any] | None) -> None:
            written.append(progress)

    writer = Recording(create_engine("sqlite://"), uuid.uuid4(), uuid.uuid4(), clock=lambda: now[0])

    writer(progress(phase="setup", setups_done=1, rounds_done=0))  # the first: at once
    now[0] = 1.0
    writer(progress(rounds_done=1))  # 1 s later: skipped
    now[0] = 1.5
    writer(progress(rounds_done=2, blocks_done=1))  # a block's end: always
    now[0] = 3.0
    writer(progress(rounds_done=3, blocks_done=1))  # 1.5 s after the last write: skipped
    now[0] = 3.6
    writer(progress(rounds_done=3, blocks_done=1, elapsed_s=3.6))  # 2.1 s after: written

    assert [(entry or {}).get("rounds_done") for entry in written] == [0, 2, 3]
    assert written[-1] == progress(rounds_done=3, blocks_done=1, elapsed_s=3.6).to_json()


def test_a_failed_progress_write_never_fails_the_measurement() -> None:
    unreachable = create_engine("sqlite:////nonexistent/directory/nogil_bench.db")
    writer = ProgressWriter(unreachable, uuid.uuid4(), uuid.uuid4())

    writer(progress())  # logged, not raised
    writer.clear()


def test_progress_is_written_only_to_a_row_this_boot_runs(
    client: TestClient, alice: Headers, paused: Callable[[], None]
) -> None:
    # The executor paused: the benchmark stays queued.
    location = client.post(BENCHMARKS, headers=alice, json=TINY).headers["Location"]
    benchmark_id = uuid.UUID(location.rsplit("/", 1)[1])
    engine = client.app.state.engine  # type: ignore[attr-defined]
    boot_id = client.app.state.executor.boot_id  # type: ignore[attr-defined]

    ProgressWriter(engine, benchmark_id, boot_id)(progress())

    with Session(engine) as session:
        row = session.get(Benchmark, benchmark_id)
        assert row is not None
        assert (row.status, row.progress) == (Status.QUEUED, None)
        # Marked running by this boot (as claiming it does), it takes the progress; a GET
        # then shows it.
        row.status, row.boot_id = Status.RUNNING, boot_id
        session.add(row)
        session.commit()
    ProgressWriter(engine, benchmark_id, boot_id)(progress(rounds_done=1))

    shown = client.get(location, headers=alice).json()["progress"]
    assert (shown["rounds_done"], shown["left_s"]) == (1, 3.0)
