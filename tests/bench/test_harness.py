"""The engine end to end, on work small enough to take a moment: real worker processes,
paired rounds, the ceiling, and no process left behind whichever way a measurement ends."""

import json
import math
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psutil
import pytest

from nogil_bench.bench import harness
from nogil_bench.bench.config import Config
from nogil_bench.bench.harness import (
    DeadlineExceededError,
    MeasurementStoppedError,
    WorkerFailedError,
    measure_matrix,
)
from nogil_bench.bench.plan import Matrix, Planned, this_interpreter
from nogil_bench.bench.results import Design, StopReason
from nogil_bench.bench.stats import Verdict
from nogil_bench.benchmarks.cli import build_parser, rounds_from
from nogil_bench.runners import get_runner
from nogil_bench.workloads.images import ImageJob, SyntheticSource, digest, run_jobs
from nogil_bench.workloads.model import steps_from_json

NOGIL_BENCH = [sys.executable, "-m", "nogil_bench.cli"]
WORKER = [sys.executable, "-m", "nogil_bench.bench.worker"]
FIB = Config("fib", "sequential", 1, warmups=0, params={"n": 12, "tasks": 2})
PIPELINE: list[dict[str, Any]] = [{"op": "box_blur", "params": {"radius": 1}}, {"op": "invert"}]
IMAGES = Config(
    "images",
    "sequential",
    1,
    warmups=0,
    params={"count": 3, "width": 16, "height": 12, "seed": 5, "pipeline": PIPELINE},
)


ONE_ROUND = Design(min_blocks=1, max_blocks=1, block_rounds=1)


def plan(
    template: Config = FIB, *, runners: list[str], workers: list[int], gil: list[int]
) -> list[Planned]:
    return Matrix([this_interpreter()], gil, [template], runners, workers).plan()


def quiet(line: str) -> None:
    """Progress lines are not the test's business."""


def worker_pids() -> set[int]:
    return {
        process.pid
        for process in psutil.Process().children()
        if "nogil_bench.bench.worker" in " ".join(process.cmdline())
    }


def test_each_block_starts_fresh_processes_whose_rounds_pair_every_configuration() -> None:
    pids_by_block: list[set[int]] = []

    def note(line: str) -> None:
        # The first block's setup lines, then a line once each later block is set up.
        if line.startswith(("[setup   1/", "[block 2] ")):
            pids_by_block.append(worker_pids())

    measurement = measure_matrix(
        plan(runners=["threads"], workers=[2], gil=[0, 1]),
        Design(min_blocks=1, max_blocks=2, block_rounds=2, target_ci=0.0),
        progress=note,
    )

    assert measurement.stop is StopReason.BOUND
    assert (measurement.blocks, measurement.rounds) == (2, 4)
    assert all(row.block_of_runs == [0, 0, 1, 1] for row in measurement.rows)
    first, second = pids_by_block
    assert len(first) == len(second) == 8  # sequential, threads, the ceiling's 2; GIL 0 and 1
    assert first.isdisjoint(second)  # the second block's processes are new ones
    # Each configuration ran in a fresh interpreter with the GIL mode it claims.
    assert all(row.environment["gil_enabled"] is bool(row.gil) for row in measurement.rows)
    assert len({row.output_digest for row in measurement.rows}) == 1
    assert measurement.stop_text.startswith("stopped at the bound of 2 blocks of 4 rounds")


def test_measuring_stops_at_the_minimum_blocks_once_every_interval_is_narrow_enough() -> None:
    measurement = measure_matrix(
        plan(runners=["threads"], workers=[2], gil=[0]),
        # Any interval at all will do: how wide one is after 2 blocks of 2 rounds depends on the
        # host's noise (a t quantile with 1 degree of freedom is 12.7), so a finite target could
        # send a loaded run on to a third block.
        Design(min_blocks=2, max_blocks=4, block_rounds=2, target_ci=math.inf),
        progress=quiet,
    )

    assert (measurement.stop, measurement.blocks, measurement.rounds) == (
        StopReason.CONVERGED,
        2,
        4,
    )
    threads = measurement.rows[1]
    assert threads.speedup is not None
    assert threads.speedup.verdict is not Verdict.UNKNOWN


def test_the_ceiling_runs_its_parts_together_and_gives_the_same_bytes_as_one_process() -> None:
    steps = steps_from_json(PIPELINE)
    jobs = [ImageJob(SyntheticSource(16, 12, seed), steps) for seed in range(5, 8)]
    with get_runner("sequential")(1) as runner:
        expected = digest(run_jobs(runner, jobs))

    measurement = measure_matrix(
        plan(IMAGES, runners=["threads"], workers=[2], gil=[0]), ONE_ROUND, progress=quiet
    )

    assert [row.runner for row in measurement.rows] == ["sequential", "threads", "ceiling"]
    assert {row.output_digest for row in measurement.rows} == {expected}
    assert measurement.rows[1].ceiling_share is not None


def test_a_ceiling_with_more_workers_than_tasks_leaves_a_part_idle_and_still_measures() -> None:
    one_task = replace(FIB, params={"n": 12, "tasks": 1})

    measurement = measure_matrix(
        plan(one_task, runners=["threads"], workers=[2], gil=[0]), ONE_ROUND, progress=quiet
    )

    ceiling = measurement.rows[2]
    assert ceiling.runner == "ceiling"
    assert ceiling.output_digest == measurement.rows[0].output_digest
    # The latency is the busy part's: the idle one had no task to time.
    assert ceiling.runs[0].task_s_p50 > 0


def descendants() -> list[psutil.Process]:
    return psutil.Process().children(recursive=True)


@pytest.fixture
def no_process_left_behind() -> Iterator[Callable[[str], None]]:
    """A progress callback that notes every process the measurement started (a process pool's
    workers among them); after the test, each must be gone."""
    seen: dict[int, psutil.Process] = {}
    # Started by earlier tests in this process (a forkserver, say): not the measurement's.
    before = {process.pid for process in descendants()}

    def note(line: str) -> None:
        seen.update(
            (process.pid, process) for process in descendants() if process.pid not in before
        )

    yield note
    assert seen, "the measurement started no process"
    _, alive = psutil.wait_procs(list(seen.values()), timeout=10)
    assert alive == []


def test_should_stop_ends_the_measurement_and_kills_every_process_it_started(
    no_process_left_behind: Callable[[str], None],
) -> None:
    asked = 0

    def should_stop() -> bool:
        nonlocal asked
        asked += 1
        return asked > 3  # before the last setup, a process pool already running

    with pytest.raises(MeasurementStoppedError, match="stopped on request"):
        measure_matrix(
            plan(runners=["processes"], workers=[2], gil=[0, 1]),
            ONE_ROUND,
            should_stop=should_stop,
            progress=no_process_left_behind,
        )


def test_a_failing_worker_is_named_with_its_error_and_nothing_is_left_running(
    no_process_left_behind: Callable[[str], None],
) -> None:
    melt = {**IMAGES.params, "pipeline": [{"op": "melt"}]}
    broken = replace(IMAGES, params=melt)
    items = plan(runners=["processes"], workers=[2], gil=[0])  # started, then the broken one
    items.append(replace(items[0], config=broken))

    with pytest.raises(WorkerFailedError, match=r"(?s)images sequential w=1 GIL=0.*melt"):
        measure_matrix(items, ONE_ROUND, progress=no_process_left_behind)


def test_a_deadline_that_leaves_no_time_for_a_round_is_an_error() -> None:
    with pytest.raises(DeadlineExceededError, match="before one round"):
        measure_matrix(
            plan(runners=["threads"], workers=[2], gil=[0]), deadline_s=0.0, progress=quiet
        )


class FakeClock:
    """Stands in for the harness's clock: time passes only when the test says so."""

    def __init__(self) -> None:
        self.now_s = 0.0

    def monotonic(self) -> float:
        return self.now_s


def test_a_deadline_ends_the_measurement_dropping_the_unfinished_round(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = FakeClock()
    monkeypatch.setattr(harness, "time", clock)
    asked = 0

    def should_stop() -> bool:
        nonlocal asked
        asked += 1
        # 3 setups (sequential, threads, the ceiling), round 1's 3 runs, round 2's first run:
        # then time is up.
        if asked == 8:
            clock.now_s = 100.0
        return False

    measurement = measure_matrix(
        plan(runners=["threads"], workers=[2], gil=[0]),
        Design(min_blocks=2, max_blocks=3, block_rounds=3),
        deadline_s=50.0,
        should_stop=should_stop,
        progress=quiet,
    )

    assert measurement.stop is StopReason.DEADLINE
    assert measurement.rounds == 1
    assert [len(row.runs) for row in measurement.rows] == [1, 1, 1]  # still paired
    assert measurement.stop_text.startswith("stopped by the deadline after 1 block of 1 round,")


def test_a_budget_cuts_every_blocks_rounds_to_fit_and_starts_no_block_that_would_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = FakeClock()
    monkeypatch.setattr(harness, "time", clock)
    asked = 0

    def should_stop() -> bool:
        # Asked before each of the first block's 3 setups, once before a later block's, and
        # before each run: the first block takes 20 s to set up, a round of 3 runs 10 s.
        nonlocal asked
        asked += 1
        clock.now_s += 20 / 3 if asked <= 3 else 10 / 3
        return False

    measurement = measure_matrix(
        plan(runners=["threads"], workers=[2], gil=[0]),
        Design(min_blocks=2, max_blocks=4, block_rounds=5, target_ci=0.0, budget_s=100.0),
        should_stop=should_stop,
        progress=quiet,
    )

    # After 30 s, 70 are left: a second block's 20 s of set-up leaves room for 5 rounds more,
    # 3 in each block (and after 2 and 3 rounds, still 3). A third block would end at 133 s.
    assert (measurement.stop, measurement.blocks, measurement.rounds) == (StopReason.BUDGET, 2, 6)
    assert all(row.block_of_runs == [0, 0, 0, 1, 1, 1] for row in measurement.rows)
    assert measurement.stop_text.startswith("stopped after 2 blocks of 6 rounds: another block")
    assert measurement.stop_text.endswith("; 3 rounds a block, not 5, to fit the 100 s budget")


def test_a_budget_fits_rounds_to_the_first_blocks_timings_within_bounds() -> None:
    design = Design(min_blocks=2, max_blocks=2, block_rounds=10, budget_s=270.0)

    # A good day here: 56 s to start and set up, 9 s a round: 8 rounds a block fit (2 x 8
    # rounds and a second set-up end at 256 s; 2 x 9 at 274 s).
    assert design.rounds_to_fit(elapsed_s=65.0, block_setup_s=56.0, round_s=9.0) == 8
    # A fast host gets the rounds asked for, no more; a slow one 2, never fewer.
    assert design.rounds_to_fit(elapsed_s=11.0, block_setup_s=10.0, round_s=1.0) == 10
    assert design.rounds_to_fit(elapsed_s=200.0, block_setup_s=150.0, round_s=50.0) == 2
    # The mean round so far decides, and the first block never ends before its rounds done.
    assert design.rounds_to_fit(elapsed_s=93, block_setup_s=56, round_s=10, rounds_done=3) == 7
    assert design.rounds_to_fit(elapsed_s=200, block_setup_s=56, round_s=10, rounds_done=9) == 9
    # Without a budget, the design's rounds.
    assert Design(block_rounds=7).rounds_to_fit(elapsed_s=1e6, block_setup_s=1, round_s=1) == 7
    with pytest.raises(ValueError, match="budget must be positive"):
        Design(budget_s=0.0)


def test_bounds_that_cannot_be_met_are_refused() -> None:
    with pytest.raises(ValueError, match="min_blocks <= max_blocks"):
        Design(min_blocks=5, max_blocks=4)
    with pytest.raises(ValueError, match="at least one round per block"):
        Design(block_rounds=0)


def test_rounds_asked_for_become_whole_blocks() -> None:
    assert Design.of_rounds(10, 30, 5, 0.05) == Design(2, 6, 5, 0.05)
    assert Design.of_rounds(6, 7, 3, 0.05) == Design(2, 3, 3, 0.05)  # 7 rounds: a third block


@pytest.mark.parametrize(
    ("options", "design"),
    [
        # Two blocks of up to 10 rounds, fitted to 255 s: under 5 minutes on a slow day too.
        (["--quick"], Design(2, 2, 10, 0.05, budget_s=255.0)),
        (["--quick", "--budget", "600"], Design(2, 2, 10, 0.05, budget_s=600.0)),
        ([], Design(2, 6, 5, 0.05)),  # no budget unless asked for
        (["--budget", "90"], Design(2, 6, 5, 0.05, budget_s=90.0)),
    ],
)
def test_quick_fits_its_rounds_in_a_budget_and_any_measurement_can(
    options: list[str], design: Design
) -> None:
    args = build_parser().parse_args(["measure", "fib", *options])

    rounds_from(args)

    assert args.design == design


def talk_to_worker(*requests: str) -> tuple[list[dict[str, object]], int]:
    completed = subprocess.run(
        WORKER, input="".join(line + "\n" for line in requests), capture_output=True,
        text=True, check=False, timeout=60,
    )  # fmt: skip
    return [json.loads(line) for line in completed.stdout.splitlines()], completed.returncode


def test_the_worker_sets_up_once_then_runs_on_each_request_and_reports_at_the_end() -> None:
    config = replace(FIB, runner="threads", workers=2, warmups=2)

    replies, status = talk_to_worker(json.dumps(config.to_json()), "run", "run")

    assert status == 0
    assert [reply["event"] for reply in replies] == ["started", "ready", "run", "run", "done"]
    assert len(replies[1]["warmups_s"]) == 2  # type: ignore[arg-type]
    assert replies[2]["digest"] == replies[3]["digest"]
    assert {"wall_s", "cpu_user_s", "ctx_involuntary", "task_s_p95"} <= replies[2].keys()
    assert {"teardown_s", "peak_rss_bytes"} <= replies[4].keys()


def test_the_worker_answers_an_unknown_request_with_an_error_and_exits() -> None:
    replies, status = talk_to_worker(json.dumps(FIB.to_json()), "walk")

    assert status == 1
    assert replies[-1]["event"] == "error"
    assert "unknown request 'walk'" in str(replies[-1]["message"])


def nogil_bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*NOGIL_BENCH, *args], capture_output=True, text=True, check=False)


@dataclass(frozen=True)
class Measured:
    """One `nogil-bench measure` with every output asked for, and what it printed."""

    folder: Path
    stdout: str

    @property
    def document(self) -> Path:
        return self.folder / "result.json"


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory) -> Measured:
    """small-batch on threads at 2 workers and its baseline and ceiling, GIL off and on, in
    two blocks of two rounds (the fewest with an interval): measured once for the tests of
    its outputs."""
    folder = tmp_path_factory.mktemp("measured")
    completed = nogil_bench(
        "measure", "small-batch", "--quick", "--runners", "threads",
        "--workers", "2", "--repeats", "4", "--max-repeats", "4", "--block-rounds", "2",
        "--warmups", "0", "--json", str(folder / "result.json"),
        "--chart", str(folder / "speedup.svg"), "--pyperf-json", str(folder / "suite.json"),
        "--html", str(folder / "report.html"),
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    return Measured(folder, completed.stdout)


def test_measure_writes_the_documented_json_and_re_renders_and_compares_it(
    measured: Measured,
) -> None:
    saved = json.loads(measured.document.read_text())
    assert saved["environment"]["free_threaded"] is True
    assert (saved["rounds"], saved["blocks"]) == (4, 2)
    assert {(c["runner"], c["gil"]) for c in saved["configurations"]} == {
        ("sequential", 0), ("threads", 0), ("ceiling", 0),
        ("sequential", 1), ("threads", 1), ("ceiling", 1),
    }  # fmt: skip
    assert all(len(c["wall_s"]) == 4 for c in saved["configurations"])
    output = measured.stdout
    assert "| 3.14.7t | 0 | threads | 2 |" in output
    assert "Every configuration of a workload produced the same results." in output
    assert "2 blocks of 4 rounds" in output

    report = nogil_bench("report", str(measured.document))
    assert report.stdout.splitlines()[1:] == output.splitlines()[1:]  # all but the timings line
    calibration = nogil_bench("compare", str(measured.document), str(measured.document)).stdout
    # A run compared with itself lands inside its own intervals and agrees with every verdict.
    assert "| vs sequential | 4 of 4 (100.0%) | 4 of 4 (100.0%) | 0 |" in calibration


def test_measure_draws_speedups_with_their_cis_and_the_ceiling(measured: Measured) -> None:
    svg = (measured.folder / "speedup.svg").read_text()

    assert svg.startswith("<svg")
    assert 'class="ceiling"' in svg
    assert 'class="whisker"' in svg


def test_measure_exports_the_rounds_as_a_pyperf_suite(measured: Measured) -> None:
    benchmarks = json.loads((measured.folder / "suite.json").read_text())["benchmarks"]

    assert len(benchmarks) == 6  # sequential, threads and the ceiling, in both GIL modes
    # A pyperf run per block of fresh processes, each with its two rounds.
    assert all(
        [len(run["values"]) for run in benchmark["runs"]] == [2, 2] for benchmark in benchmarks
    )


def test_measure_writes_the_report_page_and_report_draws_it_again_from_the_document(
    measured: Measured,
) -> None:
    page = (measured.folder / "report.html").read_text()

    assert page.startswith("<!doctype html>")
    assert "GIL off: the highest speedup measured is threads with 2 workers" in page
    assert "nogil-bench measure small-batch --quick --runners threads" in page  # how to reproduce
    again = measured.folder / "again.html"
    completed = nogil_bench("report", str(measured.document), "--html", str(again))
    assert completed.returncode == 0, completed.stderr
    # The same page, drawn from the document alone (the command that measured it included).
    assert again.read_text() == page


def test_a_document_of_the_previous_engine_is_refused(tmp_path: Path) -> None:
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"environment": {}, "results": []}))

    completed = nogil_bench("report", str(old))

    assert completed.returncode == 2
    assert "previous engine" in completed.stderr


def test_max_repeats_below_repeats_is_refused() -> None:
    completed = nogil_bench("measure", "fib", "--repeats", "8", "--max-repeats", "6")

    assert completed.returncode == 2
    assert "--max-repeats 6 is below --repeats 8" in completed.stderr


def test_repeat_check_measures_twice_and_prints_how_far_the_rerun_agrees() -> None:
    completed = nogil_bench(
        "measure", "fib", "--param", "n=12", "--param", "tasks=2", "--runners", "threads",
        "--workers", "2", "--gil", "0", "--repeats", "4", "--max-repeats", "4",
        "--block-rounds", "2", "--warmups", "0", "--repeat-check",
    )  # fmt: skip

    assert completed.returncode == 0, completed.stderr
    report, check = completed.stdout.split("## Repeat check: the same measurement again")
    assert "| 3.14.7t | 0 | threads | 2 |" in report  # the first run's report, as usual
    # Threads and the ceiling against sequential, threads against the ceiling: three.
    assert "| **all** | " in check
    assert " of 3 (" in check
    assert "Targets: B inside A's interval >= 90% in every kind" in check
    assert "Between the runs:" in check
    assert completed.stderr.count("[block  2/2]") == 2  # two measurements of two blocks
